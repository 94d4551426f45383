import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { assemble } from "../../src/riscv/asm/index.js";
import { physicalEntry } from "../../src/riscv/elf/index.js";
import { Machine } from "../../src/vmm/machine.js";

function guest(name: string) {
  const path = new URL(`../../../test/vmm/guests/${name}.s`, import.meta.url);
  return assemble(readFileSync(path, "utf8"), { fileName: `${name}.s` }).image;
}

describe("SMP guests, one worker thread per vCPU", () => {
  for (const vcpus of [2, 4]) {
    test(`${vcpus} vCPUs: HSM start/stop/status, amoadd and an LR/SC spinlock`, async () => {
      const image = guest("smp");
      const machine = new Machine({
        memBytes: 16 << 20,
        vcpus,
        backing: "guest_memfd",
        pageSize: 4096,
      });
      machine.load(image);
      const count = new Uint8Array(4);
      new DataView(count.buffer).setUint32(0, vcpus, true);
      machine.ram.write(Number(image.symbols.get("hart_count")), count);
      const result = await machine.run(physicalEntry(image), 0);
      assert.equal(result.end, "ucall", result.message);
      assert.equal(result.ucall?.type, "done", `aborted: ${String(result.ucall?.args[0])}`);
      const expected = BigInt((vcpus - 1) * 20000);
      assert.equal(result.ucall?.args[0], expected, "lock-protected plain counter");
      assert.equal(result.ucall?.args[1], expected, "amoadd counter");
    });
  }

  test("an IPI from another vCPU and the SBI timer wake a hart sleeping in WFI", async () => {
    const image = guest("interrupts");
    const machine = new Machine({
      memBytes: 16 << 20,
      vcpus: 2,
      backing: "anonymous",
      pageSize: 4096,
    });
    machine.load(image);
    const started = process.cpuUsage();
    const result = await machine.run(physicalEntry(image), 0);
    assert.equal(result.end, "ucall", result.message);
    assert.equal(result.ucall?.type, "done");
    assert.equal(result.ucall?.args[0], 1n, "one software interrupt taken");
    const ticks = Number(result.ucall?.args[1]);
    assert.ok(ticks >= 20000, `slept until the 2 ms deadline (${ticks} ticks)`);
    const cpu = process.cpuUsage(started);
    assert.ok(cpu.user + cpu.system < 1_000_000, "the waits did not spin");
  });
});
