import { crc32 } from "node:zlib";
import { PAGE_SIZE } from "../../host/host-memory.js";
import { encodeFrame, sealFrame, writeFrameHeader } from "./frame.js";
import { FRAME_HEADER_BYTES, MAX_FRAME_PAYLOAD, MigrationProtocolError } from "./format.js";

/**
 * Payload layouts of the migration messages. Control messages are small
 * JSON objects; pages, page requests and bitmaps are binary.
 */

export function encodeJson(type: number, value: unknown): Buffer {
  return encodeFrame(type, Buffer.from(JSON.stringify(value), "utf8"));
}

/** A control message: a JSON object, or MigrationProtocolError. */
export function decodeJson<T>(payload: Buffer, what: string): T {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString("utf8"));
  } catch {
    throw new MigrationProtocolError(`malformed ${what} message`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new MigrationProtocolError(`malformed ${what} message: not an object`);
  }
  return value as T;
}

/** In a PAGES index entry: the page is all zeros and carries no data. */
export const PAGE_ZERO = 0x8000_0000;
const PAGE_INDEX_MASK = 0x7fff_ffff;

/** Pages per PAGES frame: 64 pages (256 KiB) amortise the per-frame costs. */
export const PAGES_PER_BATCH = 64;

/** Frame buffers a writer keeps for reuse (more in flight are left to the GC). */
const SPARE_FRAMES = 64;

/**
 * Builds PAGES frames in place: page data is copied once, from guest
 * memory into the buffer the socket will send. Layout of the payload:
 * u32 count, the data of every non-zero page in order (4 KiB each), then
 * `count` u32 entries: page index (from the start of guest RAM), with
 * PAGE_ZERO for a zero page.
 *
 * A frame the socket has written comes back through `recycle`: a fresh
 * buffer per frame would be memory the OS commits page by page on the
 * first copy into it, which cost the source more than the copies did.
 */
export class PageBatchWriter {
  private frame: Buffer;
  private readonly indexes: Uint32Array;
  private readonly frameBytes: number;
  private readonly spare: Buffer[] = [];
  count = 0;
  private dataPages = 0;

  constructor(readonly capacity = PAGES_PER_BATCH) {
    this.indexes = new Uint32Array(capacity);
    this.frameBytes = FRAME_HEADER_BYTES + 4 + capacity * (PAGE_SIZE + 4);
    this.frame = this.allocate();
  }

  private allocate(): Buffer {
    return this.spare.pop() ?? Buffer.allocUnsafeSlow(this.frameBytes);
  }

  /** A frame from `take` that the socket no longer needs: its buffer is reused. */
  recycle(frame: Buffer): void {
    if (this.spare.length < SPARE_FRAMES) {
      this.spare.push(Buffer.from(frame.buffer, frame.byteOffset, this.frameBytes));
    }
  }

  get full(): boolean {
    return this.count === this.capacity;
  }

  /** Where the next data page goes: the caller copies 4 KiB there, then calls addPage. */
  nextDataSlot(): Buffer {
    const at = FRAME_HEADER_BYTES + 4 + this.dataPages * PAGE_SIZE;
    return this.frame.subarray(at, at + PAGE_SIZE);
  }

  addPage(index: number): void {
    this.indexes[this.count++] = index;
    this.dataPages++;
  }

  addZeroPage(index: number): void {
    this.indexes[this.count++] = (index | PAGE_ZERO) >>> 0;
  }

  /** The finished frame (of `type`); the writer starts a fresh buffer. */
  take(type: number): Buffer {
    const frame = this.frame;
    const dataEnd = FRAME_HEADER_BYTES + 4 + this.dataPages * PAGE_SIZE;
    frame.writeUInt32LE(this.count, FRAME_HEADER_BYTES);
    for (let i = 0; i < this.count; i++) frame.writeUInt32LE(this.indexes[i], dataEnd + 4 * i);
    const sealed = sealFrame(frame, type, dataEnd + 4 * this.count - FRAME_HEADER_BYTES);
    this.frame = this.allocate();
    this.count = 0;
    this.dataPages = 0;
    return sealed;
  }
}

/**
 * Builds PAGES frames (the layout PageBatchWriter writes) without copying
 * the pages: a frame goes out as pieces, its header with the count, a view
 * of each data page where it lies, then the index, and its checksum is
 * taken over the pieces in order. Only for memory that stays as it is
 * until the socket has written it: the source's RAM once its vCPUs
 * stopped for good, in post-copy.
 */
export class PageViewBatchWriter {
  private readonly views: Buffer[] = [];
  private readonly indexes: Uint32Array;
  count = 0;

  constructor(readonly capacity = PAGES_PER_BATCH) {
    this.indexes = new Uint32Array(capacity);
  }

  get full(): boolean {
    return this.count === this.capacity;
  }

  /** A data page: `data` is its 4 KiB, sent from where it lies. */
  addPage(index: number, data: Buffer): void {
    this.indexes[this.count++] = index;
    this.views.push(data);
  }

  addZeroPage(index: number): void {
    this.indexes[this.count++] = (index | PAGE_ZERO) >>> 0;
  }

  /** The finished frame (of `type`) as the pieces to write in order; the writer starts afresh. */
  take(type: number): Buffer[] {
    const head = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 4);
    const index = Buffer.allocUnsafe(4 * this.count);
    head.writeUInt32LE(this.count, FRAME_HEADER_BYTES);
    for (let i = 0; i < this.count; i++) index.writeUInt32LE(this.indexes[i], 4 * i);
    let crc = crc32(head.subarray(FRAME_HEADER_BYTES));
    for (const view of this.views) crc = crc32(view, crc);
    crc = crc32(index, crc);
    const payloadBytes = 4 + this.views.length * PAGE_SIZE + index.length;
    writeFrameHeader(head, type, payloadBytes, crc);
    const pieces = [head, ...this.views, index];
    this.views.length = 0;
    this.count = 0;
    return pieces;
  }
}

/**
 * Visit the pages of a PAGES payload: a data page is the 4 KiB of `payload`
 * at `at`; a zero page comes with `at` = -1. Malformed payloads are refused
 * before any page is visited. Nothing is allocated per page.
 */
export function forEachPage(
  payload: Buffer,
  visit: (index: number, payload: Buffer, at: number) => void,
): void {
  if (payload.length < 4) throw new MigrationProtocolError("PAGES message too short");
  const count = payload.readUInt32LE(0);
  const indexAt = payload.length - 4 * count;
  if (count > MAX_FRAME_PAYLOAD / 4 || indexAt < 4) {
    throw new MigrationProtocolError(`PAGES message of ${payload.length} bytes for ${count} pages`);
  }
  let zero = 0;
  for (let i = 0; i < count; i++) if (payload.readUInt32LE(indexAt + 4 * i) & PAGE_ZERO) zero++;
  if (4 + (count - zero) * PAGE_SIZE !== indexAt) {
    throw new MigrationProtocolError(
      `PAGES message of ${payload.length} bytes does not hold ${count - zero} data pages`,
    );
  }
  let data = 4;
  for (let i = 0; i < count; i++) {
    const entry = payload.readUInt32LE(indexAt + 4 * i);
    if (entry & PAGE_ZERO) {
      visit(entry & PAGE_INDEX_MASK, payload, -1);
    } else {
      visit(entry, payload, data);
      data += PAGE_SIZE;
    }
  }
}

/** A list of page indexes (page requests): u32 count, then the indexes. */
export function encodePageList(type: number, indexes: ArrayLike<number>, count: number): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 4 + 4 * count);
  frame.writeUInt32LE(count, FRAME_HEADER_BYTES);
  for (let i = 0; i < count; i++) frame.writeUInt32LE(indexes[i], FRAME_HEADER_BYTES + 4 + 4 * i);
  return sealFrame(frame, type, 4 + 4 * count);
}

export function decodePageList(payload: Buffer): Uint32Array {
  if (payload.length < 4 || payload.length !== 4 + 4 * payload.readUInt32LE(0)) {
    throw new MigrationProtocolError(`malformed page list of ${payload.length} bytes`);
  }
  const count = payload.readUInt32LE(0);
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = payload.readUInt32LE(4 + 4 * i);
  return out;
}

/**
 * Several binary sections in one message (a JSON header, a bitmap, device
 * state): u32 count, then for each a u32 length and its bytes.
 */
export function encodeSections(type: number, sections: Uint8Array[]): Buffer {
  const bytes = sections.reduce((sum, s) => sum + 4 + s.length, 4);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + bytes);
  let at = FRAME_HEADER_BYTES;
  frame.writeUInt32LE(sections.length, at);
  at += 4;
  for (const s of sections) {
    frame.writeUInt32LE(s.length, at);
    frame.set(s, at + 4);
    at += 4 + s.length;
  }
  return sealFrame(frame, type, bytes);
}

/** The sections of a message, copied out of the payload (which the decoder reuses). */
export function decodeSections(payload: Buffer, what: string): Buffer[] {
  const bad = () => new MigrationProtocolError(`malformed ${what} message`);
  if (payload.length < 4) throw bad();
  const count = payload.readUInt32LE(0);
  const out: Buffer[] = [];
  let at = 4;
  for (let i = 0; i < count; i++) {
    if (at + 4 > payload.length) throw bad();
    const length = payload.readUInt32LE(at);
    if (at + 4 + length > payload.length) throw bad();
    out.push(Buffer.from(payload.subarray(at + 4, at + 4 + length)));
    at += 4 + length;
  }
  if (at !== payload.length) throw bad();
  return out;
}
