import {
  ACCESS_READ,
  ACCESS_WRITE,
  CAUSE_ILLEGAL_INSTRUCTION,
  CAUSE_MISALIGNED_LOAD,
  CAUSE_MISALIGNED_STORE,
} from "./constants.js";
import type { Hart } from "./hart.js";
import { STEP_DONE, STEP_TRAP } from "./hart.js";
import { pairToNumber } from "./int64.js";
import { entryFor, failedAccessStatus } from "./memory-access.js";

/**
 * The A extension. Guest memory is a SharedArrayBuffer that harts on other
 * workers use at the same time, so every AMO is one JavaScript Atomics
 * operation (or a compare-and-swap loop for min/max) on the host word. SC is a
 * compare-and-swap against the value LR loaded, as QEMU implements it: it
 * fails whenever another hart changed that value in between.
 */

const AMO_ADD = 0x00;
const AMO_SWAP = 0x01;
const LR = 0x02;
const SC = 0x03;
const AMO_XOR = 0x04;
const AMO_OR = 0x08;
const AMO_AND = 0x0c;
const AMO_MIN = 0x10;
const AMO_MAX = 0x14;
const AMO_MINU = 0x18;
const AMO_MAXU = 0x1c;

function isKnownOperation(op: number): boolean {
  switch (op) {
    case AMO_ADD:
    case AMO_SWAP:
    case LR:
    case SC:
    case AMO_XOR:
    case AMO_OR:
    case AMO_AND:
    case AMO_MIN:
    case AMO_MAX:
    case AMO_MINU:
    case AMO_MAXU:
      return true;
    default:
      return false;
  }
}

function amoWord(mem: Int32Array, index: number, op: number, value: number): number {
  switch (op) {
    case AMO_ADD:
      return Atomics.add(mem, index, value);
    case AMO_SWAP:
      return Atomics.exchange(mem, index, value);
    case AMO_XOR:
      return Atomics.xor(mem, index, value);
    case AMO_OR:
      return Atomics.or(mem, index, value);
    case AMO_AND:
      return Atomics.and(mem, index, value);
  }
  for (;;) {
    const old = Atomics.load(mem, index);
    let next: number;
    if (op === AMO_MIN) next = old < value ? old : value;
    else if (op === AMO_MAX) next = old > value ? old : value;
    else if (op === AMO_MINU) next = old >>> 0 < value >>> 0 ? old : value;
    else next = old >>> 0 > value >>> 0 ? old : value;
    if (Atomics.compareExchange(mem, index, old, next) === old) return old;
  }
}

function amoDouble(mem: BigInt64Array, index: number, op: number, value: bigint): bigint {
  switch (op) {
    case AMO_ADD:
      return Atomics.add(mem, index, value);
    case AMO_SWAP:
      return Atomics.exchange(mem, index, value);
    case AMO_XOR:
      return Atomics.xor(mem, index, value);
    case AMO_OR:
      return Atomics.or(mem, index, value);
    case AMO_AND:
      return Atomics.and(mem, index, value);
  }
  const unsignedValue = BigInt.asUintN(64, value);
  for (;;) {
    const old = Atomics.load(mem, index);
    const unsignedOld = BigInt.asUintN(64, old);
    let next: bigint;
    if (op === AMO_MIN) next = old < value ? old : value;
    else if (op === AMO_MAX) next = old > value ? old : value;
    else if (op === AMO_MINU) next = unsignedOld < unsignedValue ? old : value;
    else next = unsignedOld > unsignedValue ? old : value;
    if (Atomics.compareExchange(mem, index, old, next) === old) return old;
  }
}

function toBig(lo: number, hi: number): bigint {
  return (BigInt(hi) << 32n) | BigInt(lo >>> 0);
}

export function executeAtomic(hart: Hart, inst: number): number {
  const f3 = (inst >> 12) & 7;
  const op = inst >>> 27;
  const rs2 = (inst >> 20) & 31;
  if ((f3 !== 2 && f3 !== 3) || !isKnownOperation(op) || (op === LR && rs2 !== 0)) {
    hart.raiseException(CAUSE_ILLEGAL_INSTRUCTION, inst, 0);
    return STEP_TRAP;
  }
  const x = hart.x;
  const rd = (inst >> 7) & 31;
  const rs1 = (inst >> 15) & 31;
  const size = f3 === 2 ? 4 : 8;
  const lo = x[2 * rs1];
  const hi = x[2 * rs1 + 1];
  if ((lo & (size - 1)) !== 0) {
    hart.raiseException(op === LR ? CAUSE_MISALIGNED_LOAD : CAUSE_MISALIGNED_STORE, lo, hi);
    return STEP_TRAP;
  }
  const e = entryFor(hart, lo, hi, op === LR ? ACCESS_READ : ACCESS_WRITE);
  if (e < 0) {
    const f = hart.fault;
    f.size = size;
    f.atomic = true;
    f.rd = rd;
    return failedAccessStatus(hart);
  }
  const tlb = hart.tlb;
  const offset = tlb.offset[e] + (lo & 4095);
  const address = pairToNumber(lo, hi);
  const vlo = x[2 * rs2];
  const vhi = x[2 * rs2 + 1];
  let rlo: number;
  let rhi: number;

  if (size === 4) {
    const mem = tlb.i32[e];
    const index = offset >> 2;
    if (op === LR) {
      rlo = Atomics.load(mem, index);
      hart.reservation = address;
      hart.reservationSize = 4;
      hart.reservedLo = rlo;
    } else if (op === SC) {
      const ok =
        hart.reservation === address &&
        hart.reservationSize === 4 &&
        Atomics.compareExchange(mem, index, hart.reservedLo, vlo) === hart.reservedLo;
      hart.reservation = -1;
      rlo = ok ? 0 : 1;
    } else {
      rlo = amoWord(mem, index, op, vlo);
    }
    rhi = op === SC ? 0 : rlo >> 31;
  } else {
    const mem = hart.regionBigInt64(tlb.region[e]);
    const index = offset >> 3;
    let old: bigint;
    if (op === LR) {
      old = Atomics.load(mem, index);
      hart.reservation = address;
      hart.reservationSize = 8;
      hart.reservedDouble = old;
    } else if (op === SC) {
      const ok =
        hart.reservation === address &&
        hart.reservationSize === 8 &&
        Atomics.compareExchange(mem, index, hart.reservedDouble, toBig(vlo, vhi)) ===
          hart.reservedDouble;
      hart.reservation = -1;
      old = ok ? 0n : 1n;
    } else {
      old = amoDouble(mem, index, op, toBig(vlo, vhi));
    }
    rlo = Number(BigInt.asIntN(32, old));
    rhi = Number(BigInt.asIntN(32, old >> 32n));
  }
  if (rd !== 0) {
    x[2 * rd] = rlo;
    x[2 * rd + 1] = rhi;
  }
  hart.pc += 4;
  return STEP_DONE;
}
