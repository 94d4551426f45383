/** The guest-program assembler: RV64IMA + Zicsr + Zifencei source to a loadable image and ELF. */
export {
  assemble,
  DEFAULT_FILE_NAME,
  DEFAULT_TEXT_ADDRESS,
  type AssembleOptions,
  type AssembledProgram,
} from "./assembler.js";
export { AssemblerError, formatDiagnostic, type Diagnostic } from "./errors.js";
