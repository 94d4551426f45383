/** Integer register names: x0..x31 and the psABI names (fp is s0). */

// Index = register number.
const ABI_NAMES = (
  "zero ra sp gp tp t0 t1 t2 s0 s1 a0 a1 a2 a3 a4 a5 " +
  "a6 a7 s2 s3 s4 s5 s6 s7 s8 s9 s10 s11 t3 t4 t5 t6"
).split(" ");

const REGISTERS: ReadonlyMap<string, number> = new Map([
  ...ABI_NAMES.map((name, i) => [name, i] as const),
  ...ABI_NAMES.map((_, i) => [`x${i}`, i] as const),
  ["fp", 8],
]);

export const ZERO = 0;
export const RA = 1;
/** t1: the scratch register GNU as uses for `tail`. */
export const T1 = 6;

/** The register number for `name`, or undefined if it is not a register name. */
export function registerNumber(name: string): number | undefined {
  return REGISTERS.get(name);
}
