import type { HostMemory } from "../host/host-memory.js";
import { MAX_MEMSLOTS } from "./uapi.js";
import {
  MEMSLOT_FIELDS,
  MS_BASE_GFN,
  MS_DIRTY_BITMAP,
  MS_FLAGS,
  MS_GMEM,
  MS_GMEM_FD,
  MS_GMEM_OFFSET,
  MS_NPAGES,
  MS_PRESENT,
  MS_USERFAULT_BITMAP,
  MS_USERSPACE_ADDR,
  VM_MEMSLOT_SEQ,
  VM_MEMSLOTS,
} from "./vm-layout.js";

/** One memslot as read from the table (a snapshot; the table may change after). */
export class Memslot {
  id = -1;
  flags = 0;
  baseGfn = 0;
  npages = 0;
  userspaceAddr = 0;
  gmem = 0;
  gmemFd = -1;
  gmemOffset = 0;
  dirtyBitmap = 0;
  userfaultBitmap = 0;

  contains(gfn: number): boolean {
    return gfn >= this.baseGfn && gfn < this.baseGfn + this.npages;
  }
}

/**
 * The memslot table of a VM, in the arena as float64 fields so that every
 * thread reads it without messages. Writers (under the VM's slots lock) bump
 * a seqlock around each change; readers on the fault path retry if it moved.
 */
export class MemslotTable {
  private readonly f64: Float64Array;
  private readonly slotBase: number;

  constructor(
    host: HostMemory,
    private readonly words: Int32Array,
    private readonly vmWordBase: number,
  ) {
    this.f64 = host.arenaF64;
    this.slotBase = (vmWordBase + VM_MEMSLOTS) >> 1;
  }

  private field(id: number, field: number): number {
    return this.f64[this.slotBase + id * MEMSLOT_FIELDS + field];
  }

  get sequence(): number {
    return Atomics.load(this.words, this.vmWordBase + VM_MEMSLOT_SEQ);
  }

  private readInto(id: number, out: Memslot): void {
    out.id = id;
    out.flags = this.field(id, MS_FLAGS);
    out.baseGfn = this.field(id, MS_BASE_GFN);
    out.npages = this.field(id, MS_NPAGES);
    out.userspaceAddr = this.field(id, MS_USERSPACE_ADDR);
    out.gmem = this.field(id, MS_GMEM);
    out.gmemFd = this.field(id, MS_GMEM_FD);
    out.gmemOffset = this.field(id, MS_GMEM_OFFSET);
    out.dirtyBitmap = this.field(id, MS_DIRTY_BITMAP);
    out.userfaultBitmap = this.field(id, MS_USERFAULT_BITMAP);
  }

  /** Find the slot holding gfn; fills `out` and returns true, consistently with writers. */
  find(gfn: number, out: Memslot): boolean {
    for (;;) {
      const seq = this.sequence;
      if ((seq & 1) === 0) {
        let found = false;
        for (let id = 0; id < MAX_MEMSLOTS; id++) {
          if (this.field(id, MS_PRESENT) === 0) continue;
          const base = this.field(id, MS_BASE_GFN);
          if (gfn >= base && gfn < base + this.field(id, MS_NPAGES)) {
            this.readInto(id, out);
            found = true;
            break;
          }
        }
        if (this.sequence === seq) return found;
      }
      Atomics.wait(this.words, this.vmWordBase + VM_MEMSLOT_SEQ, seq);
    }
  }

  /** Read slot `id` if present (callers hold the slots lock). */
  get(id: number, out: Memslot): boolean {
    if (this.field(id, MS_PRESENT) === 0) return false;
    this.readInto(id, out);
    return true;
  }

  /** Write or delete slot `id` (callers hold the slots lock). */
  write(id: number, slot: Memslot | null): void {
    const seq = this.vmWordBase + VM_MEMSLOT_SEQ;
    Atomics.add(this.words, seq, 1);
    const at = this.slotBase + id * MEMSLOT_FIELDS;
    if (slot === null) {
      this.f64.fill(0, at, at + MEMSLOT_FIELDS);
    } else {
      this.f64[at + MS_FLAGS] = slot.flags;
      this.f64[at + MS_BASE_GFN] = slot.baseGfn;
      this.f64[at + MS_NPAGES] = slot.npages;
      this.f64[at + MS_USERSPACE_ADDR] = slot.userspaceAddr;
      this.f64[at + MS_GMEM] = slot.gmem;
      this.f64[at + MS_GMEM_FD] = slot.gmemFd;
      this.f64[at + MS_GMEM_OFFSET] = slot.gmemOffset;
      this.f64[at + MS_DIRTY_BITMAP] = slot.dirtyBitmap;
      this.f64[at + MS_USERFAULT_BITMAP] = slot.userfaultBitmap;
      this.f64[at + MS_PRESENT] = 1;
    }
    Atomics.add(this.words, seq, 1);
    Atomics.notify(this.words, seq);
  }

  /** Every present slot except `exceptId` (for overlap checks). */
  others(exceptId: number): Memslot[] {
    const result: Memslot[] = [];
    for (let id = 0; id < MAX_MEMSLOTS; id++) {
      if (id === exceptId) continue;
      const slot = new Memslot();
      if (this.get(id, slot)) result.push(slot);
    }
    return result;
  }
}
