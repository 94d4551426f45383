import { CAP_MANUAL_DIRTY_LOG_PROTECT2, MEM_LOG_DIRTY_PAGES } from "../kvm/uapi.js";
import type { UserMemoryRegion2, Vm } from "../kvm/vm.js";
import { PageBitmap } from "./page-bitmap.js";

/**
 * The source's dirty tracking through the KVM UAPI, as QEMU's
 * ram_save_setup / migration_bitmap_sync do it: LOG_DIRTY_PAGES on the RAM
 * memslot with manual protection (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2), then
 * per round KVM_GET_DIRTY_LOG and KVM_CLEAR_DIRTY_LOG before the pages are
 * read, so that a write racing the copy is logged again for the next round.
 */
export class DirtyLog {
  private logging = false;

  constructor(
    private readonly vm: Vm,
    private readonly region: UserMemoryRegion2,
    readonly pages: number,
  ) {}

  start(): void {
    if (this.logging) return;
    this.vm.enableCap({ cap: CAP_MANUAL_DIRTY_LOG_PROTECT2, flags: 0, args: [1] });
    this.vm.setUserMemoryRegion2({
      ...this.region,
      flags: this.region.flags | MEM_LOG_DIRTY_PAGES,
    });
    this.logging = true;
  }

  /**
   * Pages written since the last sync, ORed into `into`; returns how many.
   * They are re-protected (KVM_CLEAR_DIRTY_LOG) unless `reprotect` is false:
   * the final sync, with the vCPUs stopped, need not pay for it in the downtime.
   */
  sync(into: PageBitmap, reprotect = true): number {
    if (!this.logging) return 0;
    const log = this.vm.getDirtyLog(this.region.slot);
    const dirty = PageBitmap.fromDirtyLog(this.pages, log);
    const count = dirty.count();
    if (!reprotect) {
      into.or(dirty);
      return count;
    }
    if (count > 0) {
      this.vm.clearDirtyLog({
        slot: this.region.slot,
        firstPage: 0,
        numPages: this.pages,
        bitmap: log,
      });
      into.or(dirty);
    }
    return count;
  }

  stop(): void {
    if (!this.logging) return;
    this.logging = false;
    this.vm.setUserMemoryRegion2({ ...this.region, flags: this.region.flags });
  }
}
