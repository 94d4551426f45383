import { PAGE_SIZE } from "../../host/host-memory.js";
import {
  UFFD_API,
  UFFD_FEATURE_MINOR_SHMEM,
  UFFD_FEATURE_MISSING_SHMEM,
  UFFD_FEATURE_THREAD_ID,
  type UffdioContinue,
  type UffdioCopy,
  UFFDIO_REGISTER_MODE_MINOR,
  UFFDIO_REGISTER_MODE_MISSING,
} from "../../host/userfaultfd.js";
import type { MigratableVm } from "../machine/migratable-vm.js";
import type { PostcopyMemory } from "./postcopy-memory.js";

const ZERO_PAGE = Buffer.alloc(PAGE_SIZE);

/**
 * Post-copy over userfaultfd on traditional memory, as QEMU does it: the
 * guest RAM mapping of the VMM is registered MISSING (and MINOR on shared
 * memory). The hypervisor reaches a traditional memslot through that
 * mapping, so a vCPU (or the hypervisor itself) touching a missing page
 * sleeps in the host's fault path while a message naming the address and
 * the faulting thread waits on the userfaultfd; the VMM reads it, requests
 * the page, and resolves the fault with UFFDIO_COPY (a page the file does
 * not have) or by writing the page cache and UFFDIO_CONTINUE (a page
 * pre-copy left there that was dirtied again). Pre-copied pages that stayed
 * clean are mapped in bulk with UFFDIO_CONTINUE, copying nothing.
 *
 * On anonymous memory only MISSING exists, and a pre-copied page dirtied
 * again could only be dropped with MADV_DONTNEED (not modelled): that case
 * is refused at setup (post-copy without pre-copy works).
 */
export class UffdMemory implements PostcopyMemory {
  readonly name = "uffd";
  /** UFFDIO_COPY installs and maps in one step. */
  readonly install = null;
  private uffd = -1;
  private finished = false;
  private readonly shared: boolean;
  private readonly hva: number;
  /** Reused ioctl arguments: the install path allocates nothing. */
  private readonly copyArgs: UffdioCopy = {
    dst: 0,
    src: ZERO_PAGE,
    srcOffset: 0,
    len: PAGE_SIZE,
    mode: 0,
  };
  private readonly continueArgs: UffdioContinue = { start: 0, len: PAGE_SIZE, mode: 0 };

  constructor(private readonly vm: MigratableVm) {
    this.shared = vm.spec.backing === "shmem";
    this.hva = vm.ram.share.hva;
  }

  arm(): void {
    const { host, spec } = this.vm;
    this.uffd = host.userfaultfd(0);
    host.userfaultfds.api(this.uffd, {
      api: UFFD_API,
      features:
        UFFD_FEATURE_THREAD_ID |
        (this.shared ? UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM : 0),
    });
    host.userfaultfds.register(this.uffd, {
      start: this.hva,
      len: spec.memBytes,
      mode: UFFDIO_REGISTER_MODE_MISSING | (this.shared ? UFFDIO_REGISTER_MODE_MINOR : 0),
    });
  }

  place(page: number, data: Buffer, at: number): void {
    const uffds = this.vm.host.userfaultfds;
    if (this.shared && this.vm.pages.pfn(page) !== 0) {
      // Pre-copied, then dirtied: new contents into the file, then map it.
      if (at >= 0) this.vm.pages.install(page, data, at);
      else this.vm.pages.zero(page);
      this.continueArgs.start = this.hva + page * PAGE_SIZE;
      this.continueArgs.len = PAGE_SIZE;
      uffds.continue(this.uffd, this.continueArgs);
      return;
    }
    const copy = this.copyArgs;
    copy.dst = this.hva + page * PAGE_SIZE;
    copy.src = at >= 0 ? data : ZERO_PAGE;
    copy.srcOffset = at >= 0 ? at : 0;
    uffds.copy(this.uffd, copy);
  }

  releaseRun(first: number, count: number): void {
    if (!this.shared) return; // anonymous: pre-copied pages are mapped already
    // Pages the file has are mapped with CONTINUE; pages pre-copy sent as
    // zeros were never allocated and get ZEROPAGE: neither copies anything.
    const end = first + count;
    let start = first;
    while (start < end) {
      const present = this.vm.pages.pfn(start) !== 0;
      let stop = start + 1;
      while (stop < end && (this.vm.pages.pfn(stop) !== 0) === present) stop++;
      const range = {
        start: this.hva + start * PAGE_SIZE,
        len: (stop - start) * PAGE_SIZE,
        mode: 0,
      };
      if (present) this.vm.host.userfaultfds.continue(this.uffd, range);
      else
        this.vm.host.userfaultfds.zeropage(this.uffd, {
          dst: range.start,
          len: range.len,
          mode: 0,
        });
      start = stop;
    }
  }

  watchAsyncFaults(onFault: (page: number, thread: number) => void): void {
    const { host } = this.vm;
    const loop = async () => {
      while (!this.finished) {
        const msg = await host.userfaultfds.readAsync(this.uffd);
        if (this.finished) return;
        onFault(Math.floor((msg.address - this.hva) / PAGE_SIZE), msg.ptid);
      }
    };
    // The last read stays pending once the range is unregistered; it holds
    // nothing the process needs (a pending wait keeps no event loop alive).
    void loop().catch(() => undefined);
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    const { host, spec } = this.vm;
    host.userfaultfds.unregister(this.uffd, { start: this.hva, len: spec.memBytes });
    host.close(this.uffd);
  }
}
