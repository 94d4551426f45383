import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  createUartState,
  restoreUartState,
  saveUartState,
  Uart16550,
  type UartSavedState,
} from "../../src/vmm/uart16550.js";

const LCR = 3;
const SCR = 7;

describe("the 16550A UART's state, as a migration carries it", () => {
  test("the registers a driver set read back the same from a restored UART", () => {
    const sourceState = createUartState();
    const source = new Uart16550(sourceState, () => undefined);
    const state = createUartState();
    const sent: number[] = [];
    source.write(LCR, 0x83); // DLAB: the divisor latch
    source.write(0, 0x01);
    source.write(1, 0x00);
    source.write(LCR, 0x03);
    source.write(1, 0x05); // IER
    source.write(SCR, 0xa5);
    const saved = saveUartState(sourceState);
    restoreUartState(state, JSON.parse(JSON.stringify(saved)) as UartSavedState);
    const target = new Uart16550(state, (byte) => sent.push(byte));
    assert.equal(target.read(LCR), 0x03);
    assert.equal(target.read(SCR), 0xa5);
    assert.equal(target.read(1), 0x05);
    target.write(LCR, 0x83);
    assert.equal(target.read(0), 0x01, "divisor latch low");
    target.write(LCR, 0x03);
    target.write(0, 0x41);
    assert.deepEqual(sent, [0x41], "it transmits on the restored side");
  });

  test("malformed state is refused and changes nothing", () => {
    const state = createUartState();
    const uart = new Uart16550(state, () => undefined);
    uart.write(SCR, 0x11);
    const good = saveUartState(state);
    for (const bad of [
      { ...good, scr: 256 },
      { ...good, lcr: -1 },
      { ...good, ier: undefined },
      null,
    ]) {
      assert.throws(() => restoreUartState(state, bad as UartSavedState), RangeError);
      assert.equal(uart.read(SCR), 0x11);
    }
  });
});
