import { FAULT_WRITE } from "../../host/address-space.js";
import type { Host } from "../../host/host.js";
import { PAGE_SIZE } from "../../host/host-memory.js";

const CHUNK_FRAME_SHIFT = 18; // 1 GiB chunks of 4 KiB frames (HostMemory)
const FRAME_MASK = (1 << CHUNK_FRAME_SHIFT) - 1;

/**
 * The VMM's page install: copy the remote page of test page `page` into the
 * VMM's mapping of guest memory at `fillHva` (the slot's own mapping, or an
 * alias of the memfd / guest_memfd), faulting the host page in for writing
 * as a store through the mapping would. The copy is one typed-array `set`
 * into the frame from a view made up front: the hot path allocates nothing.
 */
export class PageInstaller {
  private readonly chunks: Uint8Array[];
  private readonly views: Uint8Array[];
  private readonly mask: number;

  constructor(
    private readonly host: Host,
    remote: SharedArrayBuffer,
    remotePages: number,
    private readonly fillHva: number,
    /** Tests only: this page gets its neighbour's contents, so the guest must see a wrong page. */
    private readonly corruptPage = -1,
  ) {
    this.chunks = host.memory.chunkU8;
    this.mask = remotePages - 1;
    this.views = [];
    for (let r = 0; r < remotePages; r++) {
      this.views.push(new Uint8Array(remote, r * PAGE_SIZE, PAGE_SIZE));
    }
  }

  /** Install test page `page` (4 KiB index). */
  install(page: number): void {
    const pfn = this.host.faultIn(this.fillHva + page * PAGE_SIZE, FAULT_WRITE);
    this.chunks[pfn >>> CHUNK_FRAME_SHIFT].set(
      this.views[(page === this.corruptPage ? page + 1 : page) & this.mask],
      (pfn & FRAME_MASK) * PAGE_SIZE,
    );
  }
}
