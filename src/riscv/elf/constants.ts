/**
 * ELF64 constants used by the writer and the parser (System V gABI and the
 * RISC-V ELF psABI). Only what faultline reads or writes is listed.
 */

export const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46] as const; // "\x7fELF"

// e_ident indices and values.
export const EI_CLASS = 4;
export const EI_DATA = 5;
export const EI_VERSION = 6;
export const EI_OSABI = 7;
export const ELFCLASS32 = 1;
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const EV_CURRENT = 1;
export const ELFOSABI_SYSV = 0;

// e_type.
export const ET_NONE = 0;
export const ET_REL = 1;
export const ET_EXEC = 2;
export const ET_DYN = 3;
export const ET_CORE = 4;

export const EM_RISCV = 243;

// e_flags: the RISC-V psABI's "uses compressed instructions" bit.
export const EF_RISCV_RVC = 0x1;

// Structure sizes for ELF64.
export const ELF64_EHDR_SIZE = 64;
export const ELF64_PHDR_SIZE = 56;
export const ELF64_SHDR_SIZE = 64;
export const ELF64_SYM_SIZE = 24;

// Program header types and flags.
export const PT_LOAD = 1;
export const PT_DYNAMIC = 2;
export const PT_INTERP = 3;
export const PF_X = 0x1;
export const PF_W = 0x2;
export const PF_R = 0x4;
/** e_phnum value meaning "the real count is in section header 0" (not supported). */
export const PN_XNUM = 0xffff;

// Section header types, flags and special indices.
export const SHT_NULL = 0;
export const SHT_PROGBITS = 1;
export const SHT_SYMTAB = 2;
export const SHT_STRTAB = 3;
export const SHT_NOBITS = 8;
export const SHF_WRITE = 0x1;
export const SHF_ALLOC = 0x2;
export const SHF_EXECINSTR = 0x4;
export const SHN_UNDEF = 0;
export const SHN_ABS = 0xfff1;

// Symbol binding and type (st_info = bind << 4 | type).
export const STB_LOCAL = 0;
export const STB_GLOBAL = 1;
export const STB_WEAK = 2;
export const STT_NOTYPE = 0;
export const STT_SECTION = 3;
export const STT_FILE = 4;

/** Page size used for segment alignment: p_offset ≡ p_vaddr (mod this). */
export const ELF_PAGE_SIZE = 0x1000;
