/** Guest program images: ELF64 writer, parser and loader. */
export * from "./constants.js";
export type { ImageSection, LoadSegment, ProgramImage } from "./image.js";
export { writeElf } from "./write.js";
export { ElfFormatError, parseElf } from "./parse.js";
export {
  RAW_IMAGE_LOAD_ADDRESS,
  ProgramLoadError,
  loadElf,
  loadProgram,
  loadRawBinary,
  physicalEntry,
  rawImage,
  type LoadTarget,
} from "./load.js";
