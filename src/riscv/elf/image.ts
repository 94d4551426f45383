/**
 * A loadable guest program: what the assembler emits and what the ELF parser
 * returns. Addresses are numbers (safe integers); anything beyond 2^53 cannot
 * be guest memory and is rejected by the parser.
 */
export interface LoadSegment {
  /** Guest-physical load address (p_paddr). */
  physAddr: number;
  /** Virtual address the program was linked at (p_vaddr). */
  virtAddr: number;
  /** Bytes taken from the file; the remaining memSize - data.length bytes are zero. */
  data: Uint8Array;
  memSize: number;
  /** PF_X | PF_W | PF_R. */
  flags: number;
}

/**
 * A named region of a segment, kept so that the ELF writer can emit section
 * headers that objdump and readelf understand. Purely descriptive: loading
 * uses the segments only.
 */
export interface ImageSection {
  name: string;
  /** Virtual address of the first byte. */
  address: number;
  size: number;
  /** Power of two. */
  alignment: number;
  /** True for .bss-like sections that occupy memory but no file bytes. */
  noBits: boolean;
  executable: boolean;
  writable: boolean;
}

export interface ProgramImage {
  entry: number;
  segments: LoadSegment[];
  /** Symbol table (may be empty), values as in st_value. */
  symbols: Map<string, bigint>;
  /** Optional section layout; the ELF writer derives one from the segments if absent. */
  sections?: ImageSection[];
  /** Names in `symbols` that have global (or weak) binding; the others are local. */
  globalSymbols?: ReadonlySet<string>;
}
