/**
 * Materialising a 64-bit constant in a register, instruction for instruction
 * as GNU as does it (load_const in gas/config/tc-riscv.c), so that our output
 * matches binutils byte for byte:
 *
 * - a sign-extended 32-bit value is `lui` (upper 20 bits, if non-zero) and/or
 *   `addiw` (low 12 bits, sign-extended, if non-zero or if there is no lui);
 * - anything wider drops its low 12 bits (to be added back with `addi`),
 *   shifts the rest right past its trailing zeros, builds that recursively
 *   and shifts it back with `slli`.
 */

export type ConstantStep =
  | { op: "lui"; imm: bigint }
  /** `addiw rd, rd, imm`, or `addiw rd, zero, imm` if it is the first step. */
  | { op: "addiw"; imm: bigint }
  | { op: "slli"; imm: bigint }
  | { op: "addi"; imm: bigint };

/**
 * The steps that leave `value` (a 64-bit two's-complement number) in register
 * `rd`. `rd` matters only for x0: gas decides whether to emit the addiw by
 * testing the register the lui wrote against 0, so for x0 it always does.
 */
export function constantSteps(value: bigint, rd: number): ConstantStep[] {
  const x = BigInt.asIntN(64, value);
  const lower = BigInt.asIntN(12, x);
  const upper = BigInt.asIntN(64, x - lower);

  if (!fitsSigned32(x)) {
    let shift = 12n;
    while (((upper >> shift) & 1n) === 0n) shift++;
    return [
      ...constantSteps(upper >> shift, rd),
      { op: "slli", imm: shift },
      ...(lower !== 0n ? [{ op: "addi" as const, imm: lower }] : []),
    ];
  }
  const steps: ConstantStep[] = [];
  let upperRegister = 0;
  // lui takes the upper 20 bits of the (32-bit) upper part as an unsigned field.
  if (upper !== 0n) {
    steps.push({ op: "lui", imm: BigInt.asUintN(32, upper) >> 12n });
    upperRegister = rd;
  }
  if (lower !== 0n || upperRegister === 0) steps.push({ op: "addiw", imm: lower });
  return steps;
}

export function fitsSigned32(x: bigint): boolean {
  return x >= -(1n << 31n) && x < 1n << 31n;
}
