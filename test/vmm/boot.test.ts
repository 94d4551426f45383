import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { assemble } from "../../src/riscv/asm/index.js";
import { physicalEntry } from "../../src/riscv/elf/index.js";
import { decodeCells, decodeStrings, findNode, parseDeviceTree } from "../../src/vmm/fdt/reader.js";
import { RAM_BASE } from "../../src/vmm/guest-ram.js";
import { Machine } from "../../src/vmm/machine.js";
import { UCALL_DONE, ucallAsm } from "../../src/vmm/ucall.js";

/** Reports a0, a1 and the first two big-endian words at a1 (magic, totalsize) with a done ucall. */
const REPORT_BOOT_REGISTERS = `
_start: mv      t0, a1
        lbu     a2, 0(t0)
        lbu     t1, 1(t0)
        slli    a2, a2, 8
        or      a2, a2, t1
        lbu     t1, 2(t0)
        slli    a2, a2, 8
        or      a2, a2, t1
        lbu     t1, 3(t0)
        slli    a2, a2, 8
        or      a2, a2, t1
        lbu     a3, 4(t0)
        lbu     t1, 5(t0)
        slli    a3, a3, 8
        or      a3, a3, t1
        lbu     t1, 6(t0)
        slli    a3, a3, 8
        or      a3, a3, t1
        lbu     t1, 7(t0)
        slli    a3, a3, 8
        or      a3, a3, t1
        ${ucallAsm(UCALL_DONE)}
`;

function machine(memBytes: number, vcpus = 2): Machine {
  return new Machine({ memBytes, vcpus, backing: "guest_memfd", pageSize: 4096 });
}

describe("boot: the device tree in a1", () => {
  test("vCPU 0 starts with a0 = 0 and a1 = a device tree at the top of RAM describing the machine", async () => {
    const memBytes = 32 << 20;
    const vm = machine(memBytes, 3);
    const { image } = assemble(REPORT_BOOT_REGISTERS, { fileName: "boot.s" });
    vm.load(image);
    const dtbAddress = vm.loadDeviceTree();
    const result = await vm.run(physicalEntry(image), dtbAddress);
    assert.equal(result.end, "ucall", result.message);
    const [a0, a1, magic, totalSize] = result.ucall?.args ?? [];
    assert.equal(a0, 0n);
    assert.equal(a1, BigInt(dtbAddress));
    assert.equal(magic, 0xd00dfeedn, "the guest reads the FDT magic at a1");
    assert.ok(dtbAddress % 4096 === 0 && dtbAddress + Number(totalSize) <= RAM_BASE + memBytes);
    assert.ok(dtbAddress > RAM_BASE + memBytes - (1 << 20), "placed high in RAM");

    const fdt = parseDeviceTree(vm.ram.read(dtbAddress, Number(totalSize)));
    const memory = findNode(fdt, `/memory@${RAM_BASE.toString(16)}`);
    assert.ok(memory);
    assert.deepEqual(decodeCells(memory.properties.get("reg") ?? new Uint8Array()), [
      0,
      RAM_BASE,
      0,
      memBytes,
    ]);
    for (let hart = 0; hart < 3; hart++) assert.ok(findNode(fdt, `/cpus/cpu@${hart}`));
    assert.equal(findNode(fdt, "/cpus/cpu@3"), undefined);
    const chosen = findNode(fdt, "/chosen");
    assert.deepEqual(decodeStrings(chosen?.properties.get("stdout-path") ?? new Uint8Array()), [
      "/soc/serial@10000000",
    ]);
  });

  test("a program reaching into the top of RAM leaves no room: a clear error", () => {
    const vm = machine(4 << 20);
    const { image } = assemble(`_start: j _start\n.data\n.space ${(2 << 20) - 0x1000}\n`, {
      fileName: "big.s",
    });
    vm.load(image);
    assert.throws(() => vm.loadDeviceTree(), /no room for the \d+-byte device tree/);
  });
});
