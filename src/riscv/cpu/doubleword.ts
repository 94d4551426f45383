/**
 * Aligned doubleword loads and stores must be single-copy atomic: another
 * hart must never see half of an SD. JavaScript has no plain 64-bit integer
 * access that does not allocate (BigInt), but a Float64Array element is one
 * 8-byte machine access, and V8 moves float64 bit patterns through typed
 * arrays unchanged (NaN payloads included). So a doubleword goes between
 * guest memory and the (lo, hi) register halves through this scratch slot.
 */
export const scratchDouble = new Float64Array(1);
export const scratchWords = new Int32Array(scratchDouble.buffer);

function preservesBitPatterns(): boolean {
  const memory = new Float64Array(2);
  const words = new Int32Array(memory.buffer);
  // A signalling NaN with a payload: the pattern an engine would canonicalize.
  scratchWords[0] = 0x12345678;
  scratchWords[1] = 0x7ff00001;
  memory[1] = scratchDouble[0];
  return words[2] === 0x12345678 && words[3] === 0x7ff00001;
}

if (!preservesBitPatterns()) {
  throw new Error("this JavaScript engine canonicalizes NaNs in Float64Array: faultline needs V8");
}
