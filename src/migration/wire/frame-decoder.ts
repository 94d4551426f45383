import { crc32 } from "node:zlib";
import {
  FRAME_HEADER_BYTES,
  HDR_CRC,
  HDR_HEADER_CRC,
  HDR_LENGTH,
  HDR_MAGIC,
  HDR_TYPE,
  HDR_VERSION,
  isKnownMessage,
  MAX_FRAME_PAYLOAD,
  MIGRATION_MAGIC,
  MIGRATION_VERSION,
  MigrationProtocolError,
  StreamTruncated,
} from "./format.js";

/** Called once per complete frame; `payload` is only valid during the call. */
export type FrameHandler = (type: number, payload: Buffer) => void;

/** Bytes each read into the arena may fill (what Node reads at once by default). */
const READ_BYTES = 64 << 10;
/** The arena to begin with: room for many reads before what is left of a frame moves back to its start. */
const ARENA_BYTES = 2 << 20;

/**
 * A streaming frame decoder: TCP hands over bytes in any pieces, and this
 * turns them back into frames, checking each header and payload checksum.
 * It takes bytes in one of two ways:
 *
 * - `push`: chunks the socket allocated. A frame that lies inside one chunk
 *   is handed over as a view of it (no copy: page batches are most of the
 *   bytes); a frame split across chunks is assembled once in a buffer that
 *   is reused.
 * - `readBuffer` and `received`: the socket reads straight into an arena
 *   this decoder owns, each read right after the last, so a frame cut by a
 *   read is complete in place once the next read lands: frames are views,
 *   never assembled, and nothing is allocated per read. What is left of a
 *   frame moves back to the arena's start only when the end is near.
 *
 * Any error is final: after a bad frame nothing in the stream can be
 * trusted, so the decoder refuses everything after it.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private assembly = Buffer.allocUnsafe(64 << 10);
  private arena: Buffer | null = null;
  /** In the arena: the first byte not yet decoded, and the first not yet filled. */
  private arenaStart = 0;
  private arenaEnd = 0;
  private failed: MigrationProtocolError | null = null;
  /** Bytes of complete frames decoded so far (the stream position of the next frame). */
  bytesDecoded = 0;

  constructor(public what = "migration stream") {}

  /** Feed received bytes; calls `onFrame` for each frame they complete. */
  push(chunk: Buffer, onFrame: FrameHandler): void {
    if (this.failed) throw this.failed;
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    try {
      this.drain(onFrame);
    } catch (error) {
      if (error instanceof MigrationProtocolError) this.failed = error;
      throw error;
    }
  }

  /** Where the next read should put its bytes (at most this buffer's length). */
  readBuffer(): Buffer {
    this.arena ??= Buffer.allocUnsafe(ARENA_BYTES);
    return this.arena.subarray(this.arenaEnd, this.arenaEnd + READ_BYTES);
  }

  /** `n` bytes were read into the last readBuffer(): calls `onFrame` for each frame they complete. */
  received(n: number, onFrame: FrameHandler): void {
    const arena = this.arena!;
    this.arenaEnd += n;
    try {
      if (this.failed) throw this.failed;
      this.arenaStart += this.decodeFrames(arena.subarray(this.arenaStart, this.arenaEnd), onFrame);
    } catch (error) {
      if (error instanceof MigrationProtocolError) this.failed = error;
      // What still comes is dropped: every read finds room at the start.
      this.arenaStart = this.arenaEnd = 0;
      throw error;
    }
    this.buffered = this.arenaEnd - this.arenaStart;
    if (this.buffered === 0) {
      this.arenaStart = this.arenaEnd = 0;
    } else if (arena.length - this.arenaEnd < READ_BYTES) {
      // Room for the next read: the partial frame moves to the start, or
      // to a larger arena if it alone fills this one.
      const target =
        this.buffered + READ_BYTES > arena.length
          ? Buffer.allocUnsafe(Math.min(2 * arena.length, this.buffered + READ_BYTES))
          : arena;
      arena.copy(target, 0, this.arenaStart, this.arenaEnd);
      this.arena = target;
      this.arenaStart = 0;
      this.arenaEnd = this.buffered;
    }
  }

  /** The stream ended: an error if it stopped inside a frame. */
  end(): void {
    if (this.failed) throw this.failed;
    if (this.buffered !== 0) {
      this.failed = new StreamTruncated(
        `${this.what} truncated: it ended ${this.buffered} bytes into a frame ` +
          `(after ${this.bytesDecoded} bytes of complete frames)`,
      );
      throw this.failed;
    }
  }

  /** Bytes held of a frame not yet complete. */
  get pending(): number {
    return this.buffered;
  }

  private drain(onFrame: FrameHandler): void {
    while (this.buffered >= FRAME_HEADER_BYTES) {
      const total = FRAME_HEADER_BYTES + this.checkHeader(this.peek(FRAME_HEADER_BYTES));
      if (this.buffered < total) return;
      this.deliver(this.take(total), onFrame);
    }
  }

  /** The frames `bytes` holds from its start, delivered; returns the bytes they took. */
  private decodeFrames(bytes: Buffer, onFrame: FrameHandler): number {
    let at = 0;
    while (bytes.length - at >= FRAME_HEADER_BYTES) {
      const total = FRAME_HEADER_BYTES + this.checkHeader(bytes, at);
      if (bytes.length - at < total) break;
      this.deliver(bytes.subarray(at, at + total), onFrame);
      at += total;
    }
    return at;
  }

  /** A whole frame, its header checked: its payload checksum, then to `onFrame`. */
  private deliver(frame: Buffer, onFrame: FrameHandler): void {
    const payload = frame.subarray(FRAME_HEADER_BYTES);
    if (crc32(payload) !== frame.readUInt32LE(HDR_CRC)) {
      throw new MigrationProtocolError(
        `${this.what} corrupt: payload checksum mismatch in a ${payload.length}-byte frame ` +
          `at byte ${this.bytesDecoded}`,
      );
    }
    this.bytesDecoded += frame.length;
    onFrame(frame.readUInt16LE(HDR_TYPE), payload);
  }

  private checkHeader(header: Buffer, at = 0): number {
    const magic = header.readUInt32LE(at + HDR_MAGIC);
    if (magic !== MIGRATION_MAGIC) {
      throw new MigrationProtocolError(
        `${this.what} corrupt: bad frame magic 0x${magic.toString(16).padStart(8, "0")} ` +
          `at byte ${this.bytesDecoded} (not a faultline migration stream, or out of sync)`,
      );
    }
    const version = header.readUInt16LE(at + HDR_VERSION);
    if (version !== MIGRATION_VERSION) {
      throw new MigrationProtocolError(
        `${this.what}: peer speaks migration protocol version ${version}, ` +
          `this faultline speaks version ${MIGRATION_VERSION}`,
      );
    }
    // Before anything else in the header is believed (its length above all).
    if (
      crc32(header.subarray(at, at + HDR_HEADER_CRC)) !== header.readUInt32LE(at + HDR_HEADER_CRC)
    ) {
      throw new MigrationProtocolError(
        `${this.what} corrupt: frame header checksum mismatch at byte ${this.bytesDecoded}`,
      );
    }
    const type = header.readUInt16LE(at + HDR_TYPE);
    if (!isKnownMessage(type)) {
      throw new MigrationProtocolError(
        `${this.what} corrupt: unknown message type ${type} at byte ${this.bytesDecoded}`,
      );
    }
    const length = header.readUInt32LE(at + HDR_LENGTH);
    if (length > MAX_FRAME_PAYLOAD) {
      throw new MigrationProtocolError(
        `${this.what} corrupt: frame of ${length} bytes exceeds the ${MAX_FRAME_PAYLOAD}-byte limit`,
      );
    }
    return length;
  }

  /** The first `n` buffered bytes, without consuming them. */
  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first.length >= n) return first;
    return this.gather(n, false);
  }

  /** Consume the first `n` buffered bytes: a view when they lie in one chunk. */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    this.buffered -= n;
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    this.buffered += n;
    const out = this.gather(n, true);
    this.buffered -= n;
    return out;
  }

  /** Copy the first `n` bytes into the assembly buffer, consuming them if `consume`. */
  private gather(n: number, consume: boolean): Buffer {
    if (this.assembly.length < n) {
      this.assembly = Buffer.allocUnsafe(Math.max(n, this.assembly.length * 2));
    }
    let copied = 0;
    let i = 0;
    while (copied < n) {
      const chunk = this.chunks[i];
      const want = Math.min(chunk.length, n - copied);
      chunk.copy(this.assembly, copied, 0, want);
      copied += want;
      if (consume) {
        if (want === chunk.length) this.chunks.shift();
        else this.chunks[0] = chunk.subarray(want);
      } else i++;
    }
    return this.assembly.subarray(0, n);
  }
}
