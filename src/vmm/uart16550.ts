/**
 * A 16550A UART at the guest's console address, emulated by the VMM on MMIO
 * exits: transmit goes to the console sink, the receiver is always empty, and
 * the line status always says the transmitter is idle, so a polling driver
 * (OpenSBI's, Linux's earlycon) writes as fast as it likes. Register state is
 * in a SharedArrayBuffer because every vCPU thread emulates the same device.
 * There is no interrupt controller on the platform yet, so IER is stored but
 * raises nothing.
 */

export const UART_BASE = 0x1000_0000;
export const UART_SIZE = 0x100;

const RBR_THR_DLL = 0;
const IER_DLM = 1;
const IIR_FCR = 2;
const LCR = 3;
const MCR = 4;
const LSR = 5;
const MSR = 6;
const SCR = 7;

const LCR_DLAB = 0x80;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;
const IIR_NO_INTERRUPT = 0x01;
const IIR_FIFO_ENABLED = 0xc0;

// Words of the shared state.
const S_IER = 0;
const S_LCR = 1;
const S_MCR = 2;
const S_SCR = 3;
const S_DLL = 4;
const S_DLM = 5;
const S_FCR = 6;

export function createUartState(): SharedArrayBuffer {
  return new SharedArrayBuffer(8 * 4);
}

/** The registers a migration carries (the receiver is always empty, the transmitter idle). */
export interface UartSavedState {
  ier: number;
  lcr: number;
  mcr: number;
  scr: number;
  dll: number;
  dlm: number;
  fcr: number;
}

const SAVED_WORDS: [keyof UartSavedState, number][] = [
  ["ier", S_IER],
  ["lcr", S_LCR],
  ["mcr", S_MCR],
  ["scr", S_SCR],
  ["dll", S_DLL],
  ["dlm", S_DLM],
  ["fcr", S_FCR],
];

export function saveUartState(state: SharedArrayBuffer): UartSavedState {
  const words = new Int32Array(state);
  const saved = {} as UartSavedState;
  for (const [key, index] of SAVED_WORDS) saved[key] = Atomics.load(words, index);
  return saved;
}

/** Load saved registers; a RangeError names the first value that is not a byte. */
export function restoreUartState(state: SharedArrayBuffer, saved: UartSavedState): void {
  for (const [key] of SAVED_WORDS) {
    const value: unknown = saved?.[key];
    if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 0xff) {
      throw new RangeError(`malformed UART state: ${key} is ${String(value)}`);
    }
  }
  const words = new Int32Array(state);
  for (const [key, index] of SAVED_WORDS) Atomics.store(words, index, saved[key]);
}

export class Uart16550 {
  private readonly state: Int32Array;

  constructor(
    state: SharedArrayBuffer,
    private readonly transmit: (byte: number) => void,
  ) {
    this.state = new Int32Array(state);
  }

  private get dlab(): boolean {
    return (Atomics.load(this.state, S_LCR) & LCR_DLAB) !== 0;
  }

  read(offset: number): number {
    const s = this.state;
    switch (offset) {
      case RBR_THR_DLL:
        return this.dlab ? Atomics.load(s, S_DLL) : 0;
      case IER_DLM:
        return this.dlab ? Atomics.load(s, S_DLM) : Atomics.load(s, S_IER);
      case IIR_FCR:
        return IIR_NO_INTERRUPT | (Atomics.load(s, S_FCR) & 1 ? IIR_FIFO_ENABLED : 0);
      case LCR:
        return Atomics.load(s, S_LCR);
      case MCR:
        return Atomics.load(s, S_MCR);
      case LSR:
        return LSR_THRE | LSR_TEMT;
      case MSR:
        return 0;
      case SCR:
        return Atomics.load(s, S_SCR);
      default:
        return 0;
    }
  }

  write(offset: number, value: number): void {
    const s = this.state;
    const byte = value & 0xff;
    switch (offset) {
      case RBR_THR_DLL:
        if (this.dlab) Atomics.store(s, S_DLL, byte);
        else this.transmit(byte);
        return;
      case IER_DLM:
        Atomics.store(s, this.dlab ? S_DLM : S_IER, this.dlab ? byte : byte & 0x0f);
        return;
      case IIR_FCR:
        Atomics.store(s, S_FCR, byte);
        return;
      case LCR:
        Atomics.store(s, S_LCR, byte);
        return;
      case MCR:
        Atomics.store(s, S_MCR, byte & 0x1f);
        return;
      case SCR:
        Atomics.store(s, S_SCR, byte);
        return;
    }
  }
}
