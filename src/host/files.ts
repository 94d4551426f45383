import { fail } from "./errno.js";
import type { Host } from "./host.js";
import type { HostMemory } from "./host-memory.js";
import { lock, unlock } from "./sync.js";

/**
 * The process's file descriptor table and the reference counting of the
 * kernel objects it names (eventfds, memfds, guest_memfds, userfaultfds, VMs,
 * vCPUs). Both live in the arena, so every thread sees the same descriptors.
 *
 * Every file object starts with a common header of four words: its type, its
 * reference count, the arena offset of its page cache (0 when it has none)
 * and header flags (FILE_MAPPABLE: mmap may map its page cache). A
 * descriptor holds one reference; so does a mapping of the file, or a
 * hypervisor object that keeps the file (a memslot's guest_memfd, the
 * userfault context's eventfd). When the last reference goes, the type's
 * release function runs, on whatever thread dropped it.
 */

export const FILE_EVENTFD = 1;
export const FILE_MEMFD = 2;
export const FILE_GUEST_MEMFD = 3;
export const FILE_USERFAULTFD = 4;
export const FILE_KVM = 5;
export const FILE_VM = 6;
export const FILE_VCPU = 7;

/** Words of the common file object header. */
export const OBJ_TYPE = 0;
export const OBJ_REFS = 1;
export const OBJ_PAGE_CACHE = 2;
export const OBJ_FLAGS = 3;
export const FILE_HEADER_BYTES = 16;
/** OBJ_FLAGS: mmap may map this file's page cache (memfd; guest_memfd with MMAP). */
export const FILE_MAPPABLE = 1;

/** Descriptors 0, 1 and 2 are never handed out, as stdin/stdout/stderr own them in Linux. */
export const FIRST_FD = 3;
export const DEFAULT_MAX_FILES = 1024;

export type ReleaseFile = (host: Host, object: number) => void;

interface FileTypeInfo {
  name: string;
  release: ReleaseFile;
}

const fileTypes = new Map<number, FileTypeInfo>();

/**
 * Declare a file type and what to do when its last reference goes. Each
 * module that defines a type calls this when it is loaded; every thread that
 * may drop a last reference must have loaded it (importing the module that
 * creates such files is enough).
 */
export function registerFileType(type: number, name: string, release: ReleaseFile): void {
  fileTypes.set(type, { name, release });
}

export function fileTypeName(type: number): string {
  return fileTypes.get(type)?.name ?? `type ${type}`;
}

/** Fill in the header of a new file object, holding one reference. */
export function initFileObject(
  memory: HostMemory,
  object: number,
  type: number,
  pageCache: number,
  flags: number,
): void {
  const w = object >> 2;
  const i32 = memory.arenaI32;
  i32[w + OBJ_TYPE] = type;
  i32[w + OBJ_PAGE_CACHE] = pageCache;
  i32[w + OBJ_FLAGS] = flags;
  Atomics.store(i32, w + OBJ_REFS, 1);
}

/** Take one more reference to a live object; false if it is already released. */
export function tryGetFile(memory: HostMemory, object: number): boolean {
  const i32 = memory.arenaI32;
  const at = (object >> 2) + OBJ_REFS;
  for (;;) {
    const refs = Atomics.load(i32, at);
    if (refs <= 0) return false;
    if (Atomics.compareExchange(i32, at, refs, refs + 1) === refs) return true;
  }
}

/** Drop one reference; the last one releases the object. */
export function putFile(host: Host, object: number): void {
  const i32 = host.memory.arenaI32;
  const w = object >> 2;
  const left = Atomics.sub(i32, w + OBJ_REFS, 1) - 1;
  if (left > 0) return;
  if (left < 0) throw new Error(`file object ${object} released twice`);
  const type = i32[w + OBJ_TYPE];
  const info = fileTypes.get(type);
  if (!info) {
    throw new Error(`no release function for file type ${type} on this thread (module not loaded)`);
  }
  info.release(host, object);
}

// Words of the table: a lock, the count of open descriptors, then two words
// (type, object) per descriptor.
const F_LOCK = 0;
const F_CAPACITY = 1;
const F_OPEN = 2;
const F_ENTRIES = 4;

export class FileTable {
  private readonly i32: Int32Array;
  private readonly base: number;
  readonly capacity: number;

  constructor(
    private readonly host: Host,
    /** Arena offset of the table (from `FileTable.allocate`). */
    readonly offset: number,
  ) {
    this.i32 = host.memory.arenaI32;
    this.base = offset >> 2;
    this.capacity = this.i32[this.base + F_CAPACITY];
  }

  static allocate(memory: HostMemory, capacity = DEFAULT_MAX_FILES): number {
    const offset = memory.arenaAllocate((F_ENTRIES + 2 * capacity) * 4, 64);
    memory.arenaI32[(offset >> 2) + F_CAPACITY] = capacity;
    return offset;
  }

  /**
   * Give `object` the lowest free descriptor. The descriptor takes over the
   * caller's reference; if the table is full (EMFILE) that reference is
   * dropped, so a failed install leaks nothing.
   */
  install(type: number, object: number): number {
    const i32 = this.i32;
    let fd = -1;
    lock(i32, this.base + F_LOCK);
    try {
      for (let i = FIRST_FD; i < this.capacity; i++) {
        const at = this.base + F_ENTRIES + 2 * i;
        if (i32[at] === 0) {
          Atomics.store(i32, at + 1, object);
          Atomics.store(i32, at, type);
          i32[this.base + F_OPEN]++;
          fd = i;
          break;
        }
      }
    } finally {
      unlock(i32, this.base + F_LOCK);
    }
    if (fd < 0) {
      putFile(this.host, object);
      fail("EMFILE", `no free file descriptor (${this.capacity} open)`);
    }
    return fd;
  }

  /** Type of the file open at `fd`, 0 when none is. */
  typeOf(fd: number): number {
    if (!(fd >= FIRST_FD && fd < this.capacity) || (fd | 0) !== fd) return 0;
    return Atomics.load(this.i32, this.base + F_ENTRIES + 2 * fd);
  }

  /**
   * The object behind `fd`, which must be of `type` (EBADF otherwise), without
   * taking a reference: for use while the caller knows the file stays open.
   */
  lookup(fd: number, type: number): number {
    if (this.typeOf(fd) !== type) this.badFd(fd, type);
    const object = Atomics.load(this.i32, this.base + F_ENTRIES + 2 * fd + 1);
    if (object === 0) this.badFd(fd, type); // closed just now
    return object;
  }

  /** Like `lookup`, and takes a reference that the caller drops with `putFile`. */
  get(fd: number, type: number): number {
    for (;;) {
      const object = this.lookup(fd, type);
      if (tryGetFile(this.host.memory, object)) return object;
      // Closed and released between the lookup and the reference: look again.
    }
  }

  /** The object behind `fd` whatever its type, with a reference (EBADF when none). */
  getAny(fd: number): number {
    for (;;) {
      const type = this.typeOf(fd);
      if (type === 0) this.badFd(fd, 0);
      const object = Atomics.load(this.i32, this.base + F_ENTRIES + 2 * fd + 1);
      if (Atomics.load(this.i32, this.base + F_ENTRIES + 2 * fd) !== type) continue;
      if (tryGetFile(this.host.memory, object)) return object;
    }
  }

  /** Close `fd`: the descriptor is free at once; the object goes with its last reference. */
  close(fd: number): void {
    const i32 = this.i32;
    let object = 0;
    lock(i32, this.base + F_LOCK);
    try {
      if (this.typeOf(fd) !== 0) {
        const at = this.base + F_ENTRIES + 2 * fd;
        object = i32[at + 1];
        Atomics.store(i32, at, 0);
        Atomics.store(i32, at + 1, 0);
        i32[this.base + F_OPEN]--;
      }
    } finally {
      unlock(i32, this.base + F_LOCK);
    }
    if (object === 0) fail("EBADF", `fd ${fd} is not open`);
    putFile(this.host, object);
  }

  /** Number of open descriptors. */
  get openCount(): number {
    return Atomics.load(this.i32, this.base + F_OPEN);
  }

  private badFd(fd: number, type: number): never {
    const open = this.typeOf(fd);
    if (open === 0) fail("EBADF", `fd ${fd} is not open`);
    fail("EBADF", `fd ${fd} is a ${fileTypeName(open)}, not a ${fileTypeName(type)}`);
  }
}
