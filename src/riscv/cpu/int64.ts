/**
 * 64-bit integer arithmetic on (lo, hi) pairs of int32, the register form the
 * interpreter uses so that no BigInt is created on the hot path. Results are
 * written to `result` ([lo, hi]) to avoid allocating.
 */

export const result = new Int32Array(2);

const TWO32 = 4294967296;

/** Full 64-bit product of two unsigned 32-bit values. */
function mulu32(a: number, b: number): void {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const p00 = a0 * b0;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  result[0] = (p00 & 0xffff) | (mid << 16);
  result[1] = (a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) | 0;
}

/** Low 64 bits of a 64 x 64 product (MUL). */
export function mul64(aLo: number, aHi: number, bLo: number, bHi: number): void {
  mulu32(aLo, bLo);
  result[1] = (result[1] + Math.imul(aHi, bLo) + Math.imul(aLo, bHi)) | 0;
}

/** High 64 bits of the unsigned 128-bit product (MULHU). */
export function mulhu64(aLo: number, aHi: number, bLo: number, bHi: number): void {
  mulu32(aLo, bLo);
  const llHi = result[1] >>> 0;
  mulu32(aLo, bHi);
  const lhLo = result[0] >>> 0;
  const lhHi = result[1] >>> 0;
  mulu32(aHi, bLo);
  const hlLo = result[0] >>> 0;
  const hlHi = result[1] >>> 0;
  mulu32(aHi, bHi);
  const hhLo = result[0] >>> 0;
  const hhHi = result[1] >>> 0;
  // Column sums stay below 2^53, so plain doubles carry exactly.
  const col1 = llHi + lhLo + hlLo;
  const col2 = hhLo + lhHi + hlHi + Math.floor(col1 / TWO32);
  const col3 = hhHi + Math.floor(col2 / TWO32);
  result[0] = col2 | 0;
  result[1] = col3 | 0;
}

/** Subtract (bLo, bHi) from result in place, modulo 2^64. */
function subtractFromResult(bLo: number, bHi: number): void {
  const lo = result[0];
  const newLo = (lo - bLo) | 0;
  const borrow = lo >>> 0 < bLo >>> 0 ? 1 : 0;
  result[0] = newLo;
  result[1] = (result[1] - bHi - borrow) | 0;
}

/** High 64 bits of the signed x signed product (MULH). */
export function mulh64(aLo: number, aHi: number, bLo: number, bHi: number): void {
  mulhu64(aLo, aHi, bLo, bHi);
  if (aHi < 0) subtractFromResult(bLo, bHi);
  if (bHi < 0) subtractFromResult(aLo, aHi);
}

/** High 64 bits of the signed x unsigned product (MULHSU). */
export function mulhsu64(aLo: number, aHi: number, bLo: number, bHi: number): void {
  mulhu64(aLo, aHi, bLo, bHi);
  if (aHi < 0) subtractFromResult(bLo, bHi);
}

function toBigSigned(lo: number, hi: number): bigint {
  return (BigInt(hi) << 32n) | BigInt(lo >>> 0);
}

function toBigUnsigned(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

function storeBig(v: bigint): void {
  result[0] = Number(BigInt.asIntN(32, v));
  result[1] = Number(BigInt.asIntN(32, v >> 32n));
}

/** Values whose high word is the sign extension of the low word fit in an int32. */
function isInt32(lo: number, hi: number): boolean {
  return hi === lo >> 31;
}

/** DIV and REM (signed); the RISC-V rules for zero divisors and overflow. */
export function divrem64(
  aLo: number,
  aHi: number,
  bLo: number,
  bHi: number,
  wantRemainder: boolean,
): void {
  if (bLo === 0 && bHi === 0) {
    if (wantRemainder) {
      result[0] = aLo;
      result[1] = aHi;
    } else {
      result[0] = -1;
      result[1] = -1;
    }
    return;
  }
  if (isInt32(aLo, aHi) && isInt32(bLo, bHi)) {
    // Quotients of int32 operands are exact in doubles; only -2^31 / -1 leaves int32.
    const v = wantRemainder ? aLo % bLo : Math.trunc(aLo / bLo);
    result[0] = v | 0;
    result[1] = v < 0 ? -1 : 0;
    if (v === 2147483648) result[1] = 0;
    return;
  }
  if (aLo === 0 && aHi === -2147483648 && bLo === -1 && bHi === -1) {
    result[0] = wantRemainder ? 0 : aLo;
    result[1] = wantRemainder ? 0 : aHi;
    return;
  }
  const a = toBigSigned(aLo, aHi);
  const b = toBigSigned(bLo, bHi);
  storeBig(wantRemainder ? a % b : a / b);
}

/** DIVU and REMU. */
export function divremu64(
  aLo: number,
  aHi: number,
  bLo: number,
  bHi: number,
  wantRemainder: boolean,
): void {
  if (bLo === 0 && bHi === 0) {
    if (wantRemainder) {
      result[0] = aLo;
      result[1] = aHi;
    } else {
      result[0] = -1;
      result[1] = -1;
    }
    return;
  }
  if (aHi === 0 && bHi === 0) {
    const a = aLo >>> 0;
    const b = bLo >>> 0;
    result[0] = (wantRemainder ? a % b : Math.floor(a / b)) | 0;
    result[1] = 0;
    return;
  }
  const a = toBigUnsigned(aLo, aHi);
  const b = toBigUnsigned(bLo, bHi);
  storeBig(wantRemainder ? a % b : a / b);
}

/** DIVW/REMW/DIVUW/REMUW on the low words; the result is sign-extended by the caller. */
export function divrem32(a: number, b: number, unsigned: boolean, wantRemainder: boolean): number {
  if (b === 0) return wantRemainder ? a : -1;
  if (unsigned) {
    const ua = a >>> 0;
    const ub = b >>> 0;
    return (wantRemainder ? ua % ub : Math.floor(ua / ub)) | 0;
  }
  if (a === -2147483648 && b === -1) return wantRemainder ? 0 : a;
  return (wantRemainder ? a % b : Math.trunc(a / b)) | 0;
}

/** A 64-bit pair as a double, exact while |value| < 2^53 (callers check the range). */
export function pairToNumber(lo: number, hi: number): number {
  return hi * TWO32 + (lo >>> 0);
}

/** True when the pair's value is within what `pairToNumber` represents exactly. */
export function pairIsSafe(hi: number): boolean {
  return hi >= -0x200000 && hi < 0x200000;
}
