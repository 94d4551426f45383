/**
 * Sv39 paging (RISC-V privileged spec, "Sv39: Page-Based 39-bit
 * Virtual-Memory System"): the walk, its faults, A/D updates, SUM/MXR,
 * U-mode, and when the TLB must forget. Page tables are built in flat RAM
 * by the test; RAM itself stays mapped by an identity gigapage so the code
 * runs on once satp is written.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ACCESS_READ, ACCESS_WRITE } from "../../../src/riscv/cpu/constants.js";
import { EXIT_GUEST_PAGE_FAULT } from "../../../src/riscv/cpu/hart.js";
import { type Guest, hex, makeGuest, RAM_BASE } from "./guest.js";

const V = 1n << 0n;
const R = 1n << 1n;
const W = 1n << 2n;
const X = 1n << 3n;
const U = 1n << 4n;
const A = 1n << 6n;
const D = 1n << 7n;
const RWXAD = R | W | X | A | D;

const SATP_SV39 = 8n << 60n;
const SUM = 1n << 18n;
const MXR = 1n << 19n;

const CAUSE_LOAD_ACCESS = 5n;
const CAUSE_FETCH_PAGE_FAULT = 12n;
const CAUSE_LOAD_PAGE_FAULT = 13n;
const CAUSE_STORE_PAGE_FAULT = 15n;

/** Where the tables and the data pages live in the test's 16 MiB of RAM. */
const TABLES = RAM_BASE + 0x80_0000;
const DATA = RAM_BASE + 0xa0_0000; // 2 MiB aligned
const OTHER = RAM_BASE + 0xc0_0000;
/** A virtual region away from RAM's identity mapping. */
const VA = 0x4000_0000n;

/** Page tables written straight into the guest's RAM. */
class PageTables {
  private next: number;
  readonly root: number;

  constructor(private readonly guest: Guest) {
    this.root = TABLES;
    this.next = TABLES + 0x1000;
    // RAM identity-mapped by a gigapage (RWX, A and D set, not U).
    this.map(BigInt(RAM_BASE), BigInt(RAM_BASE), RWXAD, 2);
  }

  get satp(): bigint {
    return SATP_SV39 | BigInt(this.root >>> 12);
  }

  /** Address of the PTE that maps `va` at `level`, making pointer tables on the way. */
  pteAddress(va: bigint, level: number): number {
    let table = this.root;
    for (let l = 2; l > level; l--) {
      const at = table + Number((va >> BigInt(12 + 9 * l)) & 0x1ffn) * 8;
      let pte = this.guest.load64(at);
      if ((pte & V) === 0n) {
        pte = (BigInt(this.next >>> 12) << 10n) | V;
        this.guest.store64(at, pte);
        this.next += 0x1000;
      }
      table = Number(pte >> 10n) * 0x1000;
    }
    return table + Number((va >> BigInt(12 + 9 * level)) & 0x1ffn) * 8;
  }

  /** Map `va` to `pa` with a leaf at `level` (0: 4 KiB, 1: 2 MiB, 2: 1 GiB) and PTE `flags`. */
  map(va: bigint, pa: bigint, flags: bigint, level = 0): number {
    const at = this.pteAddress(va, level);
    this.guest.store64(at, ((pa >> 12n) << 10n) | flags | V);
    return at;
  }

  /** Write a PTE exactly as given (for reserved encodings). */
  setPte(va: bigint, level: number, pte: bigint): number {
    const at = this.pteAddress(va, level);
    this.guest.store64(at, pte);
    return at;
  }
}

/** The test's code after paging is on: `a0` holds satp, so the body starts with it written. */
function pagedGuest(body: string): { guest: Guest; tables: PageTables } {
  const guest = makeGuest(`
    csrw satp, a0
    sfence.vma
    ${body}
  `);
  const tables = new PageTables(guest);
  guest.hart.setRegister(10, tables.satp);
  return { guest, tables };
}

function expectFault(guest: Guest, cause: bigint, tval: bigint): void {
  guest.run();
  const trap = guest.expectTrap();
  assert.equal(hex(trap.cause), hex(cause), guest.describe());
  assert.equal(hex(trap.tval), hex(BigInt.asUintN(64, tval)), guest.describe());
}

void describe("Sv39 translation", () => {
  void test("satp takes Sv39: the code runs on through the identity gigapage; ASID bits read 0", () => {
    const { guest, tables } = pagedGuest(`
      csrr a1, satp
      li t0, 0xffff00000000000
      or t0, t0, a0
      csrw satp, t0            # ASID 0xffff: ASIDLEN is 0
      csrr a2, satp
      li a3, 7
    `);
    guest.run();
    guest.expectEnd();
    assert.equal(hex(guest.reg("a1")), hex(tables.satp));
    assert.equal(hex(guest.reg("a2")), hex(tables.satp));
    assert.equal(guest.reg("a3"), 7n);
    assert.ok(guest.hart.pagingEnabled());
  });

  void test("4 KiB, 2 MiB and 1 GiB leaves alias the same bytes", () => {
    const { guest, tables } = pagedGuest(`
      li t0, 0x40000010
      li t1, 0x1234
      sd t1, 0(t0)             # through the 4 KiB page
      li t0, 0x40200010
      ld a1, 0(t0)             # through the 2 MiB page
      li t0, 0x100a00010
      ld a2, 0(t0)             # through the 1 GiB page
      li t1, 0x5678
      sd t1, 8(t0)
    `);
    tables.map(VA, BigInt(DATA), R | W | A | D);
    tables.map(VA + 0x20_0000n, BigInt(DATA), R | W | A | D, 1);
    tables.map(0x1_0000_0000n, BigInt(RAM_BASE), R | W | A | D, 2);
    guest.run();
    guest.expectEnd();
    assert.equal(guest.reg("a1"), 0x1234n);
    assert.equal(guest.reg("a2"), 0x1234n);
    assert.equal(guest.load64(DATA + 0x10), 0x1234n);
    assert.equal(guest.load64(DATA + 0x18), 0x5678n);
  });

  void test("an upper-half (negative) virtual address runs code", () => {
    // A gigapage at 0xffffffffc0000000 aliasing RAM: jump to the alias of `high`.
    const { guest, tables } = pagedGuest(`
      la t0, high
      li t1, 0x80000000
      sub t0, t0, t1
      li t1, 0xffffffffc0000000
      add t0, t0, t1
      jalr ra, 0(t0)
      j done
    high:
      auipc a1, 0
      ret
    done:
    `);
    tables.map(0xffff_ffff_c000_0000n, BigInt(RAM_BASE), RWXAD, 2);
    guest.run();
    guest.expectEnd();
    const high = BigInt(guest.sym("high") - RAM_BASE) + 0xffff_ffff_c000_0000n;
    assert.equal(hex(guest.reg("a1")), hex(high));
  });

  void test("A is set by any access, D by a write, atomically in the PTE", () => {
    const { guest, tables } = pagedGuest(`
      li t0, 0x40000000
      ld a1, 0(t0)
      ld a2, 0(s2)             # the PTE after a load
      sd a1, 8(t0)
      ld a3, 0(s2)             # after a store
    `);
    const pte = tables.map(VA, BigInt(DATA), R | W);
    guest.hart.setRegister(18, BigInt(pte));
    guest.run();
    guest.expectEnd();
    const flags = (v: bigint) => v & 0xffn;
    assert.equal(hex(flags(guest.reg("a2"))), hex(V | R | W | A), "a load sets A only");
    assert.equal(hex(flags(guest.reg("a3"))), hex(V | R | W | A | D), "a store sets D");
    assert.equal(guest.reg("a2") >> 10n, BigInt(DATA >>> 12), "the PPN is kept");
  });

  void test("sfence.vma makes a changed leaf take effect", () => {
    const { guest, tables } = pagedGuest(`
      li t0, 0x40000000
      ld a1, 0(t0)
      sd s3, 0(s2)             # point the leaf at the other page
      sfence.vma
      ld a2, 0(t0)
    `);
    const pte = tables.map(VA, BigInt(DATA), R | A);
    guest.store64(DATA, 0x1111n);
    guest.store64(OTHER, 0x2222n);
    guest.hart.setRegister(18, BigInt(pte));
    guest.hart.setRegister(19, (BigInt(OTHER >>> 12) << 10n) | R | A | V);
    guest.run();
    guest.expectEnd();
    assert.equal(guest.reg("a1"), 0x1111n);
    assert.equal(guest.reg("a2"), 0x2222n);
  });
});

void describe("Sv39 page faults: cause, and stval the virtual address", () => {
  const load = `li t0, 0x40000008\n ld a1, 0(t0)`;
  const store = `li t0, 0x40000008\n sd a1, 0(t0)`;
  const cases: {
    name: string;
    code: string;
    setup: (t: PageTables) => void;
    cause: bigint;
    tval?: bigint;
  }[] = [
    {
      name: "V clear",
      code: load,
      setup: (t) => t.setPte(VA, 0, (BigInt(DATA >>> 12) << 10n) | R | A),
      cause: CAUSE_LOAD_PAGE_FAULT,
    },
    {
      name: "a store to a read-only page",
      code: store,
      setup: (t) => t.map(VA, BigInt(DATA), R | A | D),
      cause: CAUSE_STORE_PAGE_FAULT,
    },
    {
      name: "an AMO to a read-only page (store/AMO fault)",
      code: `li t0, 0x40000008\n amoadd.d a1, a1, (t0)`,
      setup: (t) => t.map(VA, BigInt(DATA), R | A | D),
      cause: CAUSE_STORE_PAGE_FAULT,
    },
    {
      name: "W without R (reserved)",
      code: load,
      setup: (t) => t.map(VA, BigInt(DATA), W | A | D),
      cause: CAUSE_LOAD_PAGE_FAULT,
    },
    {
      name: "reserved PTE bit 54 (no Svpbmt)",
      code: load,
      setup: (t) => t.map(VA, BigInt(DATA), R | A | (1n << 54n)),
      cause: CAUSE_LOAD_PAGE_FAULT,
    },
    {
      name: "reserved PTE bit 63 (no Svnapot)",
      code: load,
      setup: (t) => t.map(VA, BigInt(DATA), R | A | (1n << 63n)),
      cause: CAUSE_LOAD_PAGE_FAULT,
    },
    {
      name: "a misaligned 2 MiB superpage",
      code: load,
      setup: (t) => t.map(VA, BigInt(DATA + 0x1000), R | A, 1),
      cause: CAUSE_LOAD_PAGE_FAULT,
    },
    {
      name: "a pointer at the last level",
      code: load,
      setup: (t) => t.setPte(VA, 0, (BigInt(DATA >>> 12) << 10n) | V),
      cause: CAUSE_LOAD_PAGE_FAULT,
    },
    {
      name: "a non-canonical address (bit 38 set, bits 63:39 clear)",
      code: `li t0, 0x4000000000\n ld a1, 0(t0)`,
      setup: () => undefined,
      cause: CAUSE_LOAD_PAGE_FAULT,
      tval: 0x40_0000_0000n,
    },
    {
      name: "a fetch from a page without X",
      code: `li t0, 0x40000000\n jalr ra, 0(t0)`,
      setup: (t) => t.map(VA, BigInt(DATA), R | W | A | D),
      cause: CAUSE_FETCH_PAGE_FAULT,
      tval: VA,
    },
    {
      name: "a load from an execute-only page with MXR clear",
      code: load,
      setup: (t) => t.map(VA, BigInt(DATA), X | A),
      cause: CAUSE_LOAD_PAGE_FAULT,
    },
    {
      name: "an S-mode load from a U page with SUM clear",
      code: load,
      setup: (t) => t.map(VA, BigInt(DATA), R | U | A),
      cause: CAUSE_LOAD_PAGE_FAULT,
    },
    {
      name: "an S-mode fetch from a U page, even with SUM set",
      code: `li t0, ${SUM}\n csrs sstatus, t0\n li t0, 0x40000000\n jalr ra, 0(t0)`,
      setup: (t) => t.map(VA, BigInt(DATA), R | X | U | A),
      cause: CAUSE_FETCH_PAGE_FAULT,
      tval: VA,
    },
    {
      name: "a leaf beyond the physical addresses there can be (access fault)",
      code: load,
      setup: (t) => t.map(VA, 1n << 55n, R | A),
      cause: CAUSE_LOAD_ACCESS,
    },
  ];
  for (const c of cases) {
    void test(c.name, () => {
      const { guest, tables } = pagedGuest(c.code);
      c.setup(tables);
      expectFault(guest, c.cause, c.tval ?? VA + 8n);
      assert.equal(guest.load64(DATA + 8), 0n, "nothing was stored");
    });
  }

  void test("SUM lets S-mode load and store a U page; MXR lets it load an execute-only page", () => {
    const { guest, tables } = pagedGuest(`
      li t0, ${SUM | MXR}
      csrs sstatus, t0
      li t0, 0x40000000
      ld a1, 0(t0)
      sd a1, 8(t0)
      li t0, 0x40001000
      ld a2, 0(t0)
    `);
    tables.map(VA, BigInt(DATA), R | W | U | A | D);
    tables.map(VA + 0x1000n, BigInt(OTHER), X | A);
    guest.store64(DATA, 0x77n);
    guest.store64(OTHER, 0x99n);
    guest.run();
    guest.expectEnd();
    assert.equal(guest.reg("a1"), 0x77n);
    assert.equal(guest.load64(DATA + 8), 0x77n);
    assert.equal(guest.reg("a2"), 0x99n);
  });
});

void describe("Sv39 and the TLB's permissions", () => {
  void test("clearing SUM takes effect at once: a U page loaded before faults after", () => {
    const { guest, tables } = pagedGuest(`
      li t0, ${SUM}
      csrs sstatus, t0
      li t0, 0x40010008
      ld a1, 0(t0)
      li t1, ${SUM}
      csrc sstatus, t1
      ld a2, 0(t0)
    `);
    // An entry the code pages do not use, so the TLB would keep it.
    tables.map(VA + 0x1_0000n, BigInt(DATA), R | U | A);
    expectFault(guest, CAUSE_LOAD_PAGE_FAULT, VA + 0x1_0008n);
  });

  void test("U-mode runs from U pages and faults on a page S-mode has just used", () => {
    // S-mode loads the supervisor page (the TLB now holds it: its entry is
    // not one the code pages use), then U-mode code, at a U alias of its own
    // code page, loads the same address.
    const { guest, tables } = pagedGuest(`
      li t0, 0x40010008
      ld a1, 0(t0)
      la t1, user
      li t2, 0xfff
      and t1, t1, t2
      li t2, 0x40100000
      add t1, t1, t2
      csrw sepc, t1
      li t1, 0x100
      csrc sstatus, t1
      sret
      .balign 4096
    user:
      addi a3, zero, 1
      ld a2, 0(t0)
    `);
    tables.map(VA + 0x1_0000n, BigInt(DATA), R | W | A | D);
    const user = guest.sym("user");
    tables.map(VA + 0x10_0000n, BigInt(user), R | X | U | A);
    expectFault(guest, CAUSE_LOAD_PAGE_FAULT, VA + 0x1_0008n);
    assert.equal(guest.reg("a3"), 1n, "U-mode ran");
    assert.equal(guest.hart.sstatus & 0x100, 0, "the trap came from U-mode");
  });

  void test("U-mode may not fetch from a page without U", () => {
    const { guest, tables } = pagedGuest(`
      li t1, 0x40000000
      csrw sepc, t1
      li t1, 0x100
      csrc sstatus, t1
      sret
    `);
    tables.map(VA, BigInt(DATA), R | X | A);
    expectFault(guest, CAUSE_FETCH_PAGE_FAULT, VA);
  });
});

void describe("Sv39 walks through the translation hook", () => {
  void test("a page table the hook does not have: an exit on the PTE's address, never MMIO", () => {
    const { guest, tables } = pagedGuest(`
      li t0, 0x40000008
      ld a1, 0(t0)
    `);
    // The level-1 pointer names a table outside RAM.
    tables.setPte(VA, 2, ((0x1000_0000n >> 12n) << 10n) | V);
    assert.equal(guest.run(), EXIT_GUEST_PAGE_FAULT);
    const f = guest.hart.fault;
    assert.equal(hex(f.gpa), hex(0x1000_0000 + 8 * 0)); // VPN[1] of 0x40000008 is 0
    assert.equal(f.access, ACCESS_READ);
    assert.equal(f.pageTableWalk, true);
    assert.equal(BigInt(f.accessFaultCause), CAUSE_LOAD_ACCESS);
    assert.equal(hex(f.tvalLo >>> 0), hex(0x4000_0008));
  });

  void test("a leaf outside RAM: an exit on the translated address, as MMIO", () => {
    const { guest, tables } = pagedGuest(`
      li t0, 0x40000005
      sb a1, 0(t0)
    `);
    tables.map(VA, 0x1000_0000n, R | W | A | D);
    assert.equal(guest.run(), EXIT_GUEST_PAGE_FAULT);
    const f = guest.hart.fault;
    assert.equal(hex(f.gpa), hex(0x1000_0005));
    assert.equal(f.access, ACCESS_WRITE);
    assert.equal(f.pageTableWalk, false);
    assert.equal(f.size, 1);
  });
});
