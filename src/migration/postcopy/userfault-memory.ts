import { ErrnoError } from "../../host/errno.js";
import { PAGE_SIZE } from "../../host/host-memory.js";
import {
  CAP_USERFAULT,
  MEMORY_ATTRIBUTE_USERFAULT,
  USERFAULT_ASYNC_ALL,
  USERFAULT_DISABLE,
  USERFAULT_ENABLE,
} from "../../kvm/uapi.js";
import type { MemoryAttributesDeltaArgs } from "../../kvm/vm.js";
import type { MigratableVm } from "../machine/migratable-vm.js";
import type { PostcopyMemory } from "./postcopy-memory.js";

/**
 * Post-copy over KVM Userfault (the RFC's mechanism, on guest_memfd or any
 * memslot): every missing page has the USERFAULT attribute; a vCPU that
 * touches one exits with MEMORY_FAULT, a hypervisor access that cannot
 * unwind queues an asynchronous fault (readUserfault + eventfd). A page is
 * installed through the file's page cache, then released by clearing its
 * bit, which wakes its waiters; pages already here are released in bulk.
 */
export class UserfaultMemory implements PostcopyMemory {
  readonly name = "userfault";
  private eventfd = -1;
  private watching = false;
  private finished = false;
  /** Reused for every release: the install path allocates nothing. */
  private readonly release: MemoryAttributesDeltaArgs = {
    address: 0,
    size: PAGE_SIZE,
    set: 0,
    clear: MEMORY_ATTRIBUTE_USERFAULT,
  };

  constructor(
    private readonly vm: MigratableVm,
    /** USERFAULT_ASYNC_ALL: vCPU faults go to the asynchronous queue as well. */
    private readonly asyncAll = false,
  ) {}

  arm(): void {
    const { host, vm, spec } = this.vm;
    this.eventfd = host.eventfd(0);
    vm.enableCap({
      cap: CAP_USERFAULT,
      flags: 0,
      args: [USERFAULT_ENABLE | (this.asyncAll ? USERFAULT_ASYNC_ALL : 0), this.eventfd],
    });
    vm.setMemoryAttributes({
      address: this.vm.ramBase,
      size: spec.memBytes,
      attributes: MEMORY_ATTRIBUTE_USERFAULT,
      flags: 0,
    });
  }

  place(page: number, data: Buffer, at: number): void {
    this.install(page, data, at);
    this.releaseRun(page, 1);
  }

  /** The page's bit stays set: nothing sees the page until releaseRun. */
  readonly install = (page: number, data: Buffer, at: number): void => {
    if (at >= 0) this.vm.pages.install(page, data, at);
    else this.vm.pages.zero(page);
  };

  releaseRun(first: number, count: number): void {
    this.release.address = this.vm.ramBase + first * PAGE_SIZE;
    this.release.size = count * PAGE_SIZE;
    this.vm.vm.setMemoryAttributesDelta(this.release);
  }

  watchAsyncFaults(onFault: (page: number, thread: number) => void): void {
    if (this.watching) return;
    this.watching = true;
    const { host, vm } = this.vm;
    const loop = async () => {
      while (!this.finished) {
        await host.eventfds.readAsync(this.eventfd);
        for (;;) {
          if (this.finished) return;
          let gpa: number;
          try {
            gpa = vm.readUserfault().gpa;
          } catch (error) {
            if (error instanceof ErrnoError && error.errno === "ENOENT") break;
            throw error;
          }
          onFault((gpa - this.vm.ramBase) / PAGE_SIZE, 0);
        }
      }
    };
    void loop().finally(() => this.vm.host.close(this.eventfd));
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    const { host, vm, spec } = this.vm;
    vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [USERFAULT_DISABLE] });
    vm.collapsePageTables({ address: this.vm.ramBase, size: spec.memBytes });
    if (this.watching) host.eventfds.write(this.eventfd, 1);
    else host.close(this.eventfd);
  }
}
