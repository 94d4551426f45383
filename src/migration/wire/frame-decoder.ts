import { crc32 } from "node:zlib";
import {
  FRAME_HEADER_BYTES,
  HDR_CRC,
  HDR_LENGTH,
  HDR_MAGIC,
  HDR_TYPE,
  HDR_VERSION,
  isKnownMessage,
  MAX_FRAME_PAYLOAD,
  MIGRATION_MAGIC,
  MIGRATION_VERSION,
  MigrationProtocolError,
} from "./format.js";

/** Called once per complete frame; `payload` is only valid during the call. */
export type FrameHandler = (type: number, payload: Buffer) => void;

/**
 * A streaming frame decoder: TCP hands over bytes in any pieces, and this
 * turns them back into frames, checking each header and payload checksum.
 * A frame that lies inside one received chunk is handed over as a view of
 * it (no copy: page batches are most of the bytes); a frame split across
 * chunks is assembled once in a buffer that is reused.
 *
 * Any error is final: after a bad frame nothing in the stream can be
 * trusted, so the decoder refuses everything after it.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private assembly = Buffer.allocUnsafe(64 << 10);
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

  /** The stream ended: an error if it stopped inside a frame. */
  end(): void {
    if (this.failed) throw this.failed;
    if (this.buffered !== 0) {
      this.failed = new MigrationProtocolError(
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
      const header = this.peek(FRAME_HEADER_BYTES);
      const length = this.checkHeader(header);
      const total = FRAME_HEADER_BYTES + length;
      if (this.buffered < total) return;
      const type = header.readUInt16LE(HDR_TYPE);
      const crc = header.readUInt32LE(HDR_CRC);
      const frame = this.take(total);
      const payload = frame.subarray(FRAME_HEADER_BYTES, total);
      if (crc32(payload) !== crc) {
        throw new MigrationProtocolError(
          `${this.what} corrupt: payload checksum mismatch in a ${length}-byte frame ` +
            `at byte ${this.bytesDecoded}`,
        );
      }
      this.bytesDecoded += total;
      onFrame(type, payload);
    }
  }

  private checkHeader(header: Buffer): number {
    const magic = header.readUInt32LE(HDR_MAGIC);
    if (magic !== MIGRATION_MAGIC) {
      throw new MigrationProtocolError(
        `${this.what} corrupt: bad frame magic 0x${magic.toString(16).padStart(8, "0")} ` +
          `at byte ${this.bytesDecoded} (not a faultline migration stream, or out of sync)`,
      );
    }
    const version = header.readUInt16LE(HDR_VERSION);
    if (version !== MIGRATION_VERSION) {
      throw new MigrationProtocolError(
        `${this.what}: peer speaks migration protocol version ${version}, ` +
          `this faultline speaks version ${MIGRATION_VERSION}`,
      );
    }
    const type = header.readUInt16LE(HDR_TYPE);
    if (!isKnownMessage(type)) {
      throw new MigrationProtocolError(
        `${this.what} corrupt: unknown message type ${type} at byte ${this.bytesDecoded}`,
      );
    }
    const length = header.readUInt32LE(HDR_LENGTH);
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
