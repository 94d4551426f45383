import { HostMemory, PAGE_SIZE } from "../host/host-memory.js";
import { ACCESS_WRITE, type AccessType } from "../riscv/cpu/constants.js";
import type { GuestPhysicalMemory, Translation } from "../riscv/cpu/physical-memory.js";
import { type Stage2, Stage2Walk } from "./stage2.js";

/**
 * The CPU's translation hook for one vCPU: a walk of the VM's stage-2 table.
 * A miss (or a write to a write-protected mapping) makes the hart exit with a
 * guest page fault, which the vCPU's fault handler resolves outside guest
 * mode. Runs on every TLB miss, so it allocates nothing.
 */
export class Stage2Mmu implements GuestPhysicalMemory {
  private readonly walkResult = new Stage2Walk();

  constructor(
    private readonly memory: HostMemory,
    private readonly stage2: Stage2,
  ) {}

  translate(gpa: number, access: AccessType, out: Translation): boolean {
    const walk = this.walkResult;
    if (!this.stage2.walk(Math.floor(gpa / PAGE_SIZE), walk)) return false;
    if (access === ACCESS_WRITE && !walk.writable) return false;
    out.region = HostMemory.chunkOf(walk.pfn);
    out.offset = HostMemory.offsetOf(walk.pfn);
    out.writable = walk.writable;
    return true;
  }

  regionBuffer(region: number): ArrayBufferLike {
    return this.memory.chunks[region];
  }
}
