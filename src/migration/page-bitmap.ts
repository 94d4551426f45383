/**
 * A bitmap of guest pages (bit i = page i of guest RAM), as migration keeps
 * them: dirty, needed, sent, received. Little-endian bytes on the wire, so
 * that it travels as it is (as KVM's dirty bitmaps and QEMU's do).
 */
export class PageBitmap {
  readonly words: Uint32Array;

  constructor(
    readonly pages: number,
    words?: Uint32Array,
  ) {
    this.words = words ?? new Uint32Array(Math.ceil(pages / 32));
  }

  static fromBytes(pages: number, bytes: Uint8Array): PageBitmap {
    const map = new PageBitmap(pages);
    if (bytes.length < Math.ceil(pages / 8)) {
      throw new RangeError(`a bitmap of ${bytes.length} bytes cannot hold ${pages} pages`);
    }
    new Uint8Array(map.words.buffer).set(bytes.subarray(0, map.words.byteLength));
    map.words[map.words.length - 1] &= map.tailMask();
    return map;
  }

  /** KVM's dirty log layout (bit i of byte i/8), for `pages` pages. */
  static fromDirtyLog(pages: number, log: Uint8Array): PageBitmap {
    return PageBitmap.fromBytes(pages, log);
  }

  private tailMask(): number {
    const rem = this.pages % 32;
    return rem === 0 ? 0xffff_ffff : (1 << rem) - 1;
  }

  toBytes(): Uint8Array {
    return new Uint8Array(this.words.buffer, 0, Math.ceil(this.pages / 8));
  }

  test(page: number): boolean {
    return (this.words[page >>> 5] & (1 << (page & 31))) !== 0;
  }

  set(page: number): void {
    this.words[page >>> 5] |= 1 << (page & 31);
  }

  clear(page: number): void {
    this.words[page >>> 5] &= ~(1 << (page & 31));
  }

  setAll(): void {
    this.words.fill(0xffff_ffff);
    this.words[this.words.length - 1] &= this.tailMask();
  }

  clearAll(): void {
    this.words.fill(0);
  }

  /** this |= other */
  or(other: PageBitmap): void {
    for (let i = 0; i < this.words.length; i++) this.words[i] |= other.words[i];
  }

  /** this &= ~other */
  andNot(other: PageBitmap): void {
    for (let i = 0; i < this.words.length; i++) this.words[i] &= ~other.words[i];
  }

  copyFrom(other: PageBitmap): void {
    this.words.set(other.words);
  }

  /** Whether any page is set (stops at the first). */
  any(): boolean {
    for (let i = 0; i < this.words.length; i++) if (this.words[i] !== 0) return true;
    return false;
  }

  /** Pages set in neither this bitmap nor `other`, in one pass (no bitmap allocated). */
  countNeither(other: PageBitmap): number {
    let n = 0;
    const last = this.words.length - 1;
    for (let i = 0; i <= last; i++) {
      let v = ~(this.words[i] | other.words[i]);
      if (i === last) v &= this.tailMask();
      n += popcount32(v);
    }
    return n;
  }

  count(): number {
    let n = 0;
    for (let i = 0; i < this.words.length; i++) n += popcount32(this.words[i]);
    return n;
  }

  /** The first set page at or after `from` (wrapping around once); -1 when none. */
  nextSet(from: number): number {
    const n = this.words.length;
    let w = from >>> 5;
    if (w >= n) w = 0;
    let bits = this.words[w] & (~0 << (from & 31));
    for (let scanned = 0; scanned <= n; scanned++) {
      if (bits !== 0) {
        const page = (w << 5) + (31 - Math.clz32(bits & -bits));
        if (page < this.pages) return page;
      }
      w = w + 1 === n ? 0 : w + 1;
      bits = this.words[w];
    }
    return -1;
  }

  /** Visit maximal runs of set pages as (first, count). */
  forEachRun(visit: (first: number, count: number) => void): void {
    let start = -1;
    for (let w = 0; w < this.words.length; w++) {
      const v = this.words[w];
      if ((v === 0 && start < 0) || (v === 0xffff_ffff && start >= 0)) continue;
      for (let b = 0; b < 32; b++) {
        const page = (w << 5) + b;
        if (page >= this.pages) break;
        const set = (v & (1 << b)) !== 0;
        if (set && start < 0) start = page;
        else if (!set && start >= 0) {
          visit(start, page - start);
          start = -1;
        }
      }
    }
    if (start >= 0) visit(start, this.pages - start);
  }
}

function popcount32(word: number): number {
  let v = word - ((word >>> 1) & 0x5555_5555);
  v = (v & 0x3333_3333) + ((v >>> 2) & 0x3333_3333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f_0f0f, 0x0101_0101) >>> 24) & 0xff;
}
