import { crc32 } from "node:zlib";
import {
  FRAME_HEADER_BYTES,
  HDR_CRC,
  HDR_HEADER_CRC,
  HDR_LENGTH,
  HDR_MAGIC,
  HDR_TYPE,
  HDR_VERSION,
  MAX_FRAME_PAYLOAD,
  MIGRATION_MAGIC,
  MIGRATION_VERSION,
} from "./format.js";

/**
 * Fill in the header of a frame whose payload is already in place after
 * FRAME_HEADER_BYTES of `frame` (so that large payloads are written once,
 * straight into the buffer the socket sends). Returns the frame.
 */
export function sealFrame(frame: Buffer, type: number, payloadBytes: number): Buffer {
  const end = FRAME_HEADER_BYTES + payloadBytes;
  writeFrameHeader(frame, type, payloadBytes, crc32(frame.subarray(FRAME_HEADER_BYTES, end)));
  return frame.subarray(0, end);
}

/** Write a frame's header at the start of `header`, for a payload of this length and CRC-32. */
export function writeFrameHeader(
  header: Buffer,
  type: number,
  payloadBytes: number,
  crc: number,
): void {
  if (payloadBytes > MAX_FRAME_PAYLOAD) {
    throw new RangeError(`frame payload of ${payloadBytes} bytes exceeds ${MAX_FRAME_PAYLOAD}`);
  }
  header.writeUInt32LE(MIGRATION_MAGIC, HDR_MAGIC);
  header.writeUInt16LE(MIGRATION_VERSION, HDR_VERSION);
  header.writeUInt16LE(type, HDR_TYPE);
  header.writeUInt32LE(payloadBytes, HDR_LENGTH);
  header.writeUInt32LE(crc, HDR_CRC);
  header.writeUInt32LE(crc32(header.subarray(0, HDR_HEADER_CRC)), HDR_HEADER_CRC);
}

/** A whole frame around a payload (for small control messages). */
export function encodeFrame(type: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  frame.set(payload, FRAME_HEADER_BYTES);
  return sealFrame(frame, type, payload.length);
}
