import { fail } from "./errno.js";
import {
  FILE_HEADER_BYTES,
  FILE_MAPPABLE,
  FILE_MEMFD,
  initFileObject,
  OBJ_PAGE_CACHE,
  putFile,
  registerFileType,
} from "./files.js";
import type { Host } from "./host.js";
import { HostMemory, PAGE_SIZE } from "./host-memory.js";
import { type BackingPageSize, PAGE_SIZE_4K, PageCache } from "./page-cache.js";

/**
 * memfd: an anonymous shared file whose pages live in a page cache, for the
 * VMM's shared guest memory. `mmap` of a memfd (MAP_SHARED) maps its page
 * cache, so every mapping of one memfd sees the same memory; pread/pwrite
 * give the VMM access without a mapping. A memfd may be backed by huge pages
 * (MFD_HUGETLB, like hugetlbfs): then its size is a multiple of the huge size.
 *
 * Unlike memfd_create(2), the size is given at creation and the page cache's
 * table is sized once for `maxSize` (default: the size): ftruncate and pwrite
 * may move the size anywhere up to it (EFBIG beyond).
 */

export const MFD_CLOEXEC = 0x1;
export const MFD_ALLOW_SEALING = 0x2;
export const MFD_HUGETLB = 0x4;
const KNOWN_MFD_FLAGS = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB;

export const FALLOC_FL_KEEP_SIZE = 0x1;
export const FALLOC_FL_PUNCH_HOLE = 0x2;

/** memfd names are at most 249 bytes, as in Linux. */
export const MEMFD_NAME_MAX = 249;

export interface MemfdOptions {
  /** Backing page size; 2 MiB or 1 GiB make a huge memfd. MFD_HUGETLB alone means 2 MiB. */
  hugePageSize?: BackingPageSize;
  /** The size the file may later grow to (default: its size). */
  maxSize?: number;
  /** MFD_* flags. */
  flags?: number;
}

// Layout after the common header: the name's length in bytes, then the name.
const M_NAME_LENGTH = FILE_HEADER_BYTES;
const M_NAME = FILE_HEADER_BYTES + 4;

registerFileType(FILE_MEMFD, "memfd", (host, object) => {
  host.pageCache(host.memory.arenaI32[(object >> 2) + OBJ_PAGE_CACHE]).destroy();
});

export class Memfds {
  constructor(private readonly host: Host) {}

  /** memfd_create(2) and ftruncate(size) in one: a new memfd of `size` bytes. */
  create(name: string, size: number, options: MemfdOptions = {}): number {
    const object = this.createObject(name, size, options);
    return this.host.files.install(FILE_MEMFD, object);
  }

  /**
   * A memfd object holding one reference, with no descriptor: the file
   * behind a MAP_SHARED | MAP_ANONYMOUS mapping (shmem).
   */
  createObject(name: string, size: number, options: MemfdOptions = {}): number {
    const flags = options.flags ?? 0;
    if ((flags & ~KNOWN_MFD_FLAGS) !== 0) fail("EINVAL", `unknown memfd flags ${flags}`);
    const encoded = new TextEncoder().encode(name);
    if (encoded.length > MEMFD_NAME_MAX) fail("EINVAL", `memfd name longer than ${MEMFD_NAME_MAX}`);
    let pageSize = options.hugePageSize ?? PAGE_SIZE_4K;
    if (options.hugePageSize === undefined && (flags & MFD_HUGETLB) !== 0) pageSize = 2 ** 21;
    const cache = PageCache.create(this.host, size, pageSize, options.maxSize ?? size);
    const memory = this.host.memory;
    let object: number;
    try {
      // File objects are never reused (a stale number must not name a new file): keep them small.
      object = memory.arenaAllocate(M_NAME + encoded.length, 8);
    } catch (error) {
      this.host.pageCache(cache).destroy();
      throw error;
    }
    memory.arenaI32[(object + M_NAME_LENGTH) >> 2] = encoded.length;
    memory.arenaU8.set(encoded, object + M_NAME);
    initFileObject(memory, object, FILE_MEMFD, cache, FILE_MAPPABLE);
    return object;
  }

  /** The page cache of memfd `fd` (EBADF if `fd` is not a memfd). */
  pageCache(fd: number): PageCache {
    const object = this.host.files.lookup(fd, FILE_MEMFD);
    return this.host.pageCache(this.host.memory.arenaI32[(object >> 2) + OBJ_PAGE_CACHE]);
  }

  /** The name given at creation (Linux shows it as "memfd:NAME"). */
  name(fd: number): string {
    const object = this.host.files.lookup(fd, FILE_MEMFD);
    const memory = this.host.memory;
    const length = memory.arenaI32[(object + M_NAME_LENGTH) >> 2];
    // Copy out: TextDecoder refuses views of shared memory.
    return new TextDecoder().decode(
      memory.arenaU8.slice(object + M_NAME, object + M_NAME + length),
    );
  }

  size(fd: number): number {
    return this.pageCache(fd).size;
  }

  ftruncate(fd: number, size: number): void {
    this.withCache(fd, (cache) => cache.setSize(size));
  }

  /**
   * pread(2): up to `length` bytes from `offset`, fewer at the end of the file.
   * Holes read as zeros and stay holes (nothing is allocated).
   */
  pread(fd: number, length: number, offset: number): Uint8Array {
    checkRange(length, offset);
    return this.withCache(fd, (cache) => {
      const count = Math.max(0, Math.min(length, cache.size - offset));
      const out = new Uint8Array(count);
      const memory = this.host.memory;
      for (let done = 0; done < count;) {
        const at = offset + done;
        const inPage = at % PAGE_SIZE;
        const n = Math.min(PAGE_SIZE - inPage, count - done);
        const pfn = cache.lookup(Math.floor(at / PAGE_SIZE));
        if (pfn !== 0) {
          const from = HostMemory.offsetOf(pfn) + inPage;
          out.set(memory.chunkU8[HostMemory.chunkOf(pfn)].subarray(from, from + n), done);
        }
        done += n;
      }
      return out;
    });
  }

  /**
   * pwrite(2): write `data` at `offset`, growing the file when it writes past
   * the end (a huge file grows to a whole huge page). Returns the bytes written.
   */
  pwrite(fd: number, data: Uint8Array, offset: number): number {
    checkRange(data.length, offset);
    return this.withCache(fd, (cache) => {
      const end = offset + data.length;
      if (end > cache.size) {
        const pageSize = cache.pageSize;
        cache.setSize(pageSize === PAGE_SIZE ? end : Math.ceil(end / pageSize) * pageSize);
      }
      const memory = this.host.memory;
      for (let done = 0; done < data.length;) {
        const at = offset + done;
        const inPage = at % PAGE_SIZE;
        const n = Math.min(PAGE_SIZE - inPage, data.length - done);
        const index = Math.floor(at / PAGE_SIZE);
        if (n === PAGE_SIZE) {
          cache.install(index, data, done);
        } else {
          const pfn = cache.getOrAllocate(index, true);
          memory.chunkU8[HostMemory.chunkOf(pfn)].set(
            data.subarray(done, done + n),
            HostMemory.offsetOf(pfn) + inPage,
          );
        }
        done += n;
      }
      return data.length;
    });
  }

  /**
   * fallocate(2): FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE frees the whole
   * 4 KiB pages of the range (a huge memfd: aligned huge pages, else EINVAL)
   * and unmaps them everywhere; mode 0 allocates the range's pages, growing
   * the file if needed.
   */
  fallocate(fd: number, mode: number, offset: number, length: number): void {
    checkRange(length, offset);
    if (length === 0) fail("EINVAL", "fallocate of 0 bytes");
    this.withCache(fd, (cache) => {
      if (mode === (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) {
        const first = Math.ceil(offset / PAGE_SIZE);
        const end = Math.floor((offset + length) / PAGE_SIZE);
        if (
          cache.pageSize !== PAGE_SIZE &&
          (offset % cache.pageSize !== 0 || length % cache.pageSize !== 0)
        ) {
          fail("EINVAL", `hole not aligned to ${cache.pageSize}-byte pages`);
        }
        if (end > first) cache.punchHole(first, end - first);
        return;
      }
      if (mode !== 0 && mode !== FALLOC_FL_KEEP_SIZE) fail("EINVAL", `fallocate mode ${mode}`);
      const end = Math.ceil((offset + length) / cache.pageSize) * cache.pageSize;
      if (end > cache.size && mode === 0) cache.setSize(end);
      const last = Math.min(end, cache.pages * PAGE_SIZE);
      for (let at = offset - (offset % cache.pageSize); at < last; at += cache.pageSize) {
        cache.getOrAllocate(at / PAGE_SIZE, true);
      }
    });
  }

  /** Run `body` on the page cache of `fd`, holding a reference so a racing close cannot free it. */
  private withCache<T>(fd: number, body: (cache: PageCache) => T): T {
    const object = this.host.files.get(fd, FILE_MEMFD);
    try {
      return body(this.host.pageCache(this.host.memory.arenaI32[(object >> 2) + OBJ_PAGE_CACHE]));
    } finally {
      putFile(this.host, object);
    }
  }
}

function checkRange(length: number, offset: number): void {
  if (!Number.isSafeInteger(length) || length < 0) fail("EINVAL", `bad length ${length}`);
  if (!Number.isSafeInteger(offset) || offset < 0) fail("EINVAL", `bad offset ${offset}`);
}
