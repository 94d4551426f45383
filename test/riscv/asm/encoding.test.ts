/**
 * Encodings of every real instruction. The expected words were computed from
 * the field layouts in the RISC-V unprivileged and privileged manuals
 * (R: funct7|rs2|rs1|funct3|rd|opcode, I: imm[11:0]|rs1|funct3|rd|opcode,
 * S/B/U/J with their immediate scrambles, AMO: funct5|aq|rl|rs2|rs1|funct3|rd|opcode),
 * independently of the assembler's tables, and cross-checked once with GNU as.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { hex32, hexWords } from "./helpers.js";

const CASES: [string, number][] = [
  ["lui a0, 0x12345", 0x12345537],
  ["lui t6, 0xfffff", 0xffffffb7],
  ["auipc t0, 0x80000", 0x80000297],
  ["jal ra, .+2048", 0x001000ef],
  ["jal zero, .-4", 0xffdff06f],
  ["jalr ra, 16(a0)", 0x010500e7],
  ["jalr zero, -1(t1)", 0xfff30067],
  ["beq a0, a1, .+16", 0x00b50863],
  ["bne a0, a1, .+16", 0x00b51863],
  ["blt a0, a1, .+16", 0x00b54863],
  ["bge a0, a1, .+16", 0x00b55863],
  ["bltu a0, a1, .+16", 0x00b56863],
  ["bgeu a0, a1, .+16", 0x00b57863],
  ["beq t0, t1, .-4096", 0x80628063],
  ["bne s0, s1, .+4092", 0x7e941ee3],
  ["lb a0, -8(sp)", 0xff810503],
  ["lh a0, -8(sp)", 0xff811503],
  ["lw a0, -8(sp)", 0xff812503],
  ["ld a0, -8(sp)", 0xff813503],
  ["lbu a0, -8(sp)", 0xff814503],
  ["lhu a0, -8(sp)", 0xff815503],
  ["lwu a0, -8(sp)", 0xff816503],
  ["sb a1, 2047(a0)", 0x7eb50fa3],
  ["sh a1, 2047(a0)", 0x7eb51fa3],
  ["sw a1, 2047(a0)", 0x7eb52fa3],
  ["sd a1, 2047(a0)", 0x7eb53fa3],
  ["sd ra, -2048(sp)", 0x80113023],
  ["addi a0, a1, -2048", 0x80058513],
  ["slti a0, a1, -2048", 0x8005a513],
  ["sltiu a0, a1, -2048", 0x8005b513],
  ["xori a0, a1, -2048", 0x8005c513],
  ["ori a0, a1, -2048", 0x8005e513],
  ["andi a0, a1, -2048", 0x8005f513],
  ["addi a0, a1, 2047", 0x7ff58513],
  ["slli a0, a1, 63", 0x03f59513],
  ["srli a0, a1, 1", 0x0015d513],
  ["srai a0, a1, 63", 0x43f5d513],
  ["addiw a0, a1, -1", 0xfff5851b],
  ["slliw a0, a1, 31", 0x01f5951b],
  ["srliw a0, a1, 31", 0x01f5d51b],
  ["sraiw a0, a1, 31", 0x41f5d51b],
  ["add a0, a1, a2", 0x00c58533],
  ["sub a0, a1, a2", 0x40c58533],
  ["sll a0, a1, a2", 0x00c59533],
  ["slt a0, a1, a2", 0x00c5a533],
  ["sltu a0, a1, a2", 0x00c5b533],
  ["xor a0, a1, a2", 0x00c5c533],
  ["srl a0, a1, a2", 0x00c5d533],
  ["sra a0, a1, a2", 0x40c5d533],
  ["or a0, a1, a2", 0x00c5e533],
  ["and a0, a1, a2", 0x00c5f533],
  ["addw t0, t1, t6", 0x01f302bb],
  ["subw t0, t1, t6", 0x41f302bb],
  ["sllw t0, t1, t6", 0x01f312bb],
  ["srlw t0, t1, t6", 0x01f352bb],
  ["sraw t0, t1, t6", 0x41f352bb],
  ["fence", 0x0ff0000f],
  ["fence rw, rw", 0x0330000f],
  ["fence i, o", 0x0840000f],
  ["fence.tso", 0x8330000f],
  ["ecall", 0x00000073],
  ["ebreak", 0x00100073],
  ["fence.i", 0x0000100f],
  ["sret", 0x10200073],
  ["mret", 0x30200073],
  ["wfi", 0x10500073],
  ["sfence.vma a0, a1", 0x12b50073],
  ["sfence.vma", 0x12000073],
  ["mul a0, a1, a2", 0x02c58533],
  ["mulh a0, a1, a2", 0x02c59533],
  ["mulhsu a0, a1, a2", 0x02c5a533],
  ["mulhu a0, a1, a2", 0x02c5b533],
  ["div a0, a1, a2", 0x02c5c533],
  ["divu a0, a1, a2", 0x02c5d533],
  ["rem a0, a1, a2", 0x02c5e533],
  ["remu a0, a1, a2", 0x02c5f533],
  ["mulw a0, a1, a2", 0x02c5853b],
  ["divw a0, a1, a2", 0x02c5c53b],
  ["divuw a0, a1, a2", 0x02c5d53b],
  ["remw a0, a1, a2", 0x02c5e53b],
  ["remuw a0, a1, a2", 0x02c5f53b],
  ["lr.w a0, (a1)", 0x1005a52f],
  ["sc.w a0, a2, (a1)", 0x18c5a52f],
  ["amoswap.w t0, t1, (t2)", 0x0863a2af],
  ["amoadd.w t0, t1, (t2)", 0x0063a2af],
  ["amoxor.w t0, t1, (t2)", 0x2063a2af],
  ["amoand.w t0, t1, (t2)", 0x6063a2af],
  ["amoor.w t0, t1, (t2)", 0x4063a2af],
  ["amomin.w t0, t1, (t2)", 0x8063a2af],
  ["amomax.w t0, t1, (t2)", 0xa063a2af],
  ["amominu.w t0, t1, (t2)", 0xc063a2af],
  ["amomaxu.w t0, t1, (t2)", 0xe063a2af],
  ["lr.d a0, (a1)", 0x1005b52f],
  ["sc.d a0, a2, (a1)", 0x18c5b52f],
  ["amoswap.d t0, t1, (t2)", 0x0863b2af],
  ["amoadd.d t0, t1, (t2)", 0x0063b2af],
  ["amoxor.d t0, t1, (t2)", 0x2063b2af],
  ["amoand.d t0, t1, (t2)", 0x6063b2af],
  ["amoor.d t0, t1, (t2)", 0x4063b2af],
  ["amomin.d t0, t1, (t2)", 0x8063b2af],
  ["amomax.d t0, t1, (t2)", 0xa063b2af],
  ["amominu.d t0, t1, (t2)", 0xc063b2af],
  ["amomaxu.d t0, t1, (t2)", 0xe063b2af],
  ["amoadd.d.aq a0, a1, (a2)", 0x04b6352f],
  ["lr.w.aq a0, (a2)", 0x1406252f],
  ["sc.d.aq a0, a1, (a2)", 0x1cb6352f],
  ["amoadd.d.rl a0, a1, (a2)", 0x02b6352f],
  ["lr.w.rl a0, (a2)", 0x1206252f],
  ["sc.d.rl a0, a1, (a2)", 0x1ab6352f],
  ["amoadd.d.aqrl a0, a1, (a2)", 0x06b6352f],
  ["lr.w.aqrl a0, (a2)", 0x1606252f],
  ["sc.d.aqrl a0, a1, (a2)", 0x1eb6352f],
  ["csrrw a0, sstatus, a1", 0x10059573],
  ["csrrs a0, sie, a1", 0x1045a573],
  ["csrrc a0, stvec, a1", 0x1055b573],
  ["csrrwi a0, sscratch, 31", 0x140fd573],
  ["csrrsi a0, sepc, 1", 0x1410e573],
  ["csrrci a0, scause, 0", 0x14207573],
  ["csrrw zero, 4095, t0", 0xfff29073],
  ["csrrs a0, scounteren, zero", 0x10602573],
  ["csrrs a0, senvcfg, zero", 0x10a02573],
  ["csrrs a0, stval, zero", 0x14302573],
  ["csrrs a0, sip, zero", 0x14402573],
  ["csrrs a0, satp, zero", 0x18002573],
  ["csrrs a0, cycle, zero", 0xc0002573],
  ["csrrs a0, time, zero", 0xc0102573],
  ["csrrs a0, instret, zero", 0xc0202573],
  ["csrrs a0, hpmcounter3, zero", 0xc0302573],
  ["csrrs a0, hpmcounter31, zero", 0xc1f02573],
  ["csrrs a0, mstatus, zero", 0x30002573],
  ["csrrs a0, mhartid, zero", 0xf1402573],
  ["csrrs a0, mepc, zero", 0x34102573],
];

describe("instruction encodings match the spec", () => {
  for (const [source, expected] of CASES) {
    test(source, () => {
      assert.deepEqual(hexWords(source), [hex32(expected)]);
    });
  }

  test("every mnemonic in the table is covered", () => {
    const covered = new Set(CASES.map(([source]) => source.split(" ")[0]));
    const mnemonics = (
      "lui auipc jal jalr beq bne blt bge bltu bgeu lb lh lw ld lbu lhu lwu sb sh sw sd " +
      "addi slti sltiu xori ori andi slli srli srai addiw slliw srliw sraiw add sub sll slt " +
      "sltu xor srl sra or and addw subw sllw srlw sraw fence fence.tso ecall ebreak " +
      "fence.i sret mret wfi sfence.vma mul mulh mulhsu mulhu div divu rem remu mulw divw " +
      "divuw remw remuw lr.w sc.w lr.d sc.d amoswap.w amoadd.w amoxor.w amoand.w amoor.w " +
      "amomin.w amomax.w amominu.w amomaxu.w amoswap.d amoadd.d amoxor.d amoand.d amoor.d " +
      "amomin.d amomax.d amominu.d amomaxu.d csrrw csrrs csrrc csrrwi csrrsi csrrci"
    ).split(" ");
    for (const mnemonic of mnemonics) {
      assert.ok(covered.has(mnemonic), mnemonic);
    }
  });
});
