import { HISTOGRAM_BYTES, LatencyHistogram } from "./latency-histogram.js";

/**
 * Where the destination's vCPU threads and its migration thread meet during
 * post-copy, in one SharedArrayBuffer:
 *
 * - a ring of page requests: a vCPU that took a MEMORY_FAULT exit on a page
 *   not yet received pushes its index (once per page: the `requested` bitmap
 *   coalesces vCPUs faulting on the same page) and the migration thread,
 *   woken by Atomics.waitAsync, sends them on the return path;
 * - the `received` bitmap, set by the migration thread once a page is
 *   installed and released; each blocked vCPU publishes the page it waits
 *   for and sleeps on its own wake word (Atomics.wait: a blocked vCPU uses
 *   no CPU), and after a batch of installs the migration thread wakes only
 *   the vCPUs whose page came (a notify costs far more than a check);
 * - blocktime accounting as QEMU's postcopy-blocktime defines it: per vCPU,
 *   and "overlapped", the time during which every vCPU was blocked at once;
 * - the fault latency histogram (request to install, as the vCPU saw it).
 */

const W_TAIL = 0; // slots reserved by producers
const W_HEAD = 1; // slots consumed
const W_BLOCKED = 3; // vCPUs blocked on a page now
const W_CLOSED = 4; // the migration gave up: waiters stop waiting
const W_VCPUS = 5;
const HEADER_WORDS = 8;
const RING_SLOTS = 1024;
const EMPTY = -1;

export interface FaultRingLayout {
  buffer: SharedArrayBuffer;
  pages: number;
  vcpus: number;
}

export class FaultRing {
  readonly words: Int32Array;
  private readonly ring: Int32Array;
  /** Per vCPU: the page it is blocked on (-1 none), and its wake sequence. */
  private readonly waiting: Int32Array;
  private readonly wakeWords: Int32Array;
  private readonly requested: Int32Array;
  private readonly received: Int32Array;
  /** Per vCPU: blocked ms so far, then [vcpus] overlapped ms, [vcpus + 1] when it began. */
  private readonly times: Float64Array;
  readonly latency: LatencyHistogram;
  readonly pages: number;
  readonly vcpus: number;

  constructor(layout: FaultRingLayout) {
    const { buffer, pages, vcpus } = layout;
    this.pages = pages;
    this.vcpus = vcpus;
    const bitmapWords = Math.ceil(pages / 32);
    let at = 0;
    this.words = new Int32Array(buffer, at, HEADER_WORDS);
    at += HEADER_WORDS * 4;
    this.ring = new Int32Array(buffer, at, RING_SLOTS);
    at += RING_SLOTS * 4;
    this.waiting = new Int32Array(buffer, at, vcpus);
    at += vcpus * 4;
    this.wakeWords = new Int32Array(buffer, at, vcpus);
    at += vcpus * 4;
    this.requested = new Int32Array(buffer, at, bitmapWords);
    at += bitmapWords * 4;
    this.received = new Int32Array(buffer, at, bitmapWords);
    at += bitmapWords * 4;
    at = (at + 7) & ~7;
    this.times = new Float64Array(buffer, at, vcpus + 2);
    at += (vcpus + 2) * 8;
    this.latency = new LatencyHistogram(buffer, at);
  }

  static create(pages: number, vcpus: number): FaultRing {
    const bitmapWords = Math.ceil(pages / 32);
    const bytes =
      ((HEADER_WORDS + RING_SLOTS + 2 * vcpus + 2 * bitmapWords) * 4 +
        7 +
        (vcpus + 2) * 8 +
        HISTOGRAM_BYTES) &
      ~3;
    const ring = new FaultRing({ buffer: new SharedArrayBuffer(bytes + 8), pages, vcpus });
    ring.ring.fill(EMPTY);
    ring.waiting.fill(EMPTY);
    ring.words[W_VCPUS] = vcpus;
    return ring;
  }

  get layout(): FaultRingLayout {
    return { buffer: this.words.buffer as SharedArrayBuffer, pages: this.pages, vcpus: this.vcpus };
  }

  isReceived(page: number): boolean {
    return (Atomics.load(this.received, page >>> 5) & (1 << (page & 31))) !== 0;
  }

  /** Mark a page requested; false when it already was (someone asked for it already). */
  markRequested(page: number): boolean {
    const bit = 1 << (page & 31);
    return (Atomics.or(this.requested, page >>> 5, bit) & bit) === 0;
  }

  isRequested(page: number): boolean {
    return (Atomics.load(this.requested, page >>> 5) & (1 << (page & 31))) !== 0;
  }

  // ---------------------------------------------------------------- vCPU side

  /**
   * A vCPU thread's MEMORY_FAULT on a page not yet received: request it
   * (unless another fault already did) and sleep until it is installed.
   * Returns at once for a page already in.
   */
  waitForPage(vcpu: number, page: number): void {
    if (this.isReceived(page)) return;
    const started = performance.now();
    if (Atomics.add(this.words, W_BLOCKED, 1) + 1 === this.vcpus)
      this.times[this.vcpus + 1] = started;
    // Published before the check below: an installer that sets the page
    // after this store sees it, and one that set it before is seen by the check.
    Atomics.store(this.waiting, vcpu, page);
    if (this.markRequested(page)) this.push(page);
    for (;;) {
      const seq = Atomics.load(this.wakeWords, vcpu);
      if (this.isReceived(page) || Atomics.load(this.words, W_CLOSED) !== 0) break;
      Atomics.wait(this.wakeWords, vcpu, seq);
    }
    Atomics.store(this.waiting, vcpu, EMPTY);
    const ended = performance.now();
    if (Atomics.sub(this.words, W_BLOCKED, 1) === this.vcpus) {
      this.times[this.vcpus] += ended - this.times[this.vcpus + 1];
    }
    this.times[vcpu] += ended - started;
    this.latency.record((ended - started) * 1000);
  }

  private push(page: number): void {
    const slot = Atomics.add(this.words, W_TAIL, 1) % RING_SLOTS;
    // Each vCPU has at most one request in flight, so the ring never laps its reader.
    Atomics.store(this.ring, slot, page);
    Atomics.notify(this.words, W_TAIL);
  }

  // ------------------------------------------------------ migration thread side

  /** Take the requests pushed so far into `out`; returns how many. */
  drain(out: number[]): number {
    let n = 0;
    let head = Atomics.load(this.words, W_HEAD);
    const tail = Atomics.load(this.words, W_TAIL);
    while (head !== tail) {
      const slot = head % RING_SLOTS;
      const page = Atomics.load(this.ring, slot);
      // Reserved but not yet written: take it next time.
      if (page === EMPTY) break;
      Atomics.store(this.ring, slot, EMPTY);
      out.push(page);
      n++;
      head++;
    }
    Atomics.store(this.words, W_HEAD, head);
    return n;
  }

  /** Resolves when requests may be waiting (without spinning). */
  async requestsPending(): Promise<void> {
    const tail = Atomics.load(this.words, W_TAIL);
    if (tail !== Atomics.load(this.words, W_HEAD)) return;
    const waiting = Atomics.waitAsync(this.words, W_TAIL, tail);
    if (waiting.async) await waiting.value;
  }

  /** Wake the requestsPending() waiter without a request (to stop it). */
  interrupt(): void {
    Atomics.add(this.words, W_TAIL, 0);
    Atomics.notify(this.words, W_TAIL);
  }

  markReceived(page: number): void {
    Atomics.or(this.received, page >>> 5, 1 << (page & 31));
  }

  /** After a batch of installs: wake the vCPUs whose page is among them. */
  installed(): void {
    for (let id = 0; id < this.vcpus; id++) {
      const page = Atomics.load(this.waiting, id);
      if (page !== EMPTY && this.isReceived(page)) this.wakeVcpu(id);
    }
  }

  private wakeVcpu(id: number): void {
    Atomics.add(this.wakeWords, id, 1);
    Atomics.notify(this.wakeWords, id);
  }

  /** Stop every waiter (the migration failed for good; their vCPUs must not hang). */
  close(): void {
    Atomics.store(this.words, W_CLOSED, 1);
    for (let id = 0; id < this.vcpus; id++) this.wakeVcpu(id);
  }

  /** Per-vCPU blocktime (ms) and the overlapped total. */
  blocktime(): { perVcpu: number[]; overlapped: number } {
    return {
      perVcpu: Array.from(this.times.subarray(0, this.vcpus)),
      overlapped: this.times[this.vcpus],
    };
  }
}
