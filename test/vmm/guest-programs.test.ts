/**
 * The guest programs of test/riscv/programs, built for QEMU's virt machine
 * behind OpenSBI, run unchanged through the whole stack (VMM, hypervisor,
 * stage-2, SBI in the hypervisor, a vCPU worker thread) and print exactly
 * what QEMU printed for them. Backings rotate so each kind serves some.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { parseElf, physicalEntry } from "../../src/riscv/elf/index.js";
import { Machine } from "../../src/vmm/machine.js";
import type { RamBacking } from "../../src/vmm/guest-ram.js";
import { assertSameOutput } from "../riscv/programs/compare.js";
import { buildGuest, expectedPath, programNames } from "../riscv/programs/guest-programs.js";

const BACKINGS: { backing: RamBacking; pageSize: 4096 | 2097152 }[] = [
  { backing: "guest_memfd", pageSize: 4096 },
  { backing: "anonymous", pageSize: 4096 },
  { backing: "shmem", pageSize: 2097152 },
  { backing: "guest_memfd", pageSize: 2097152 },
];

async function runsAsOnQemu(name: string, backing: RamBacking, pageSize: 4096 | 2097152) {
  const image = parseElf(buildGuest(name));
  const machine = new Machine({ memBytes: 64 << 20, vcpus: 1, backing, pageSize });
  machine.load(image);
  let console = "";
  const result = await machine.run(physicalEntry(image), 0, {
    console: (text) => (console += text),
  });
  assertSameOutput(console, readFileSync(expectedPath(name), "latin1"), "faultline", "QEMU");
  assert.equal(result.end, "shutdown", result.message);
  assert.equal(result.reason, 0);
}

describe("QEMU virt guests on the full VMM", { concurrency: 2 }, () => {
  programNames().forEach((name, i) => {
    const { backing, pageSize } = BACKINGS[i % BACKINGS.length];
    test(`${name} (${backing}, ${pageSize / 1024} KiB pages)`, () =>
      runsAsOnQemu(name, backing, pageSize));
  });
});

// Its page-table walks go through stage 2 like any guest access: every backing and page size.
describe("the Sv39 guest on every backing", { concurrency: 2 }, () => {
  for (const { backing, pageSize } of BACKINGS) {
    test(`paging (${backing}, ${pageSize / 1024} KiB pages)`, () =>
      runsAsOnQemu("paging", backing, pageSize));
  }
});
