/**
 * The migration stream's framing: every message is one frame, a 20-byte
 * header then its payload.
 *
 *   0  u32  magic "FLMG"
 *   4  u16  protocol version
 *   6  u16  message type
 *   8  u32  payload length (at most MAX_FRAME_PAYLOAD)
 *  12  u32  CRC-32 of the payload
 *  16  u32  CRC-32 of bytes 0-15
 *
 * Little-endian throughout. The magic and the version come first in every
 * frame, not only at the start, so a stream that loses sync, a peer of
 * another version and a stream that is not faultline's at all are each
 * named as such by the first frame that shows it. The header has its own
 * checksum so that a corrupt length is caught at once: trusted, it would
 * have the receiver wait for bytes that may never come.
 */

export const MIGRATION_MAGIC = 0x474d_4c46; // "FLMG" read as little-endian bytes
/**
 * 2: the switchover carries device state (UART, virtio-blk). 3: the
 * header's own checksum. 4: ROUND_END says whether the switchover follows.
 */
export const MIGRATION_VERSION = 4;
export const FRAME_HEADER_BYTES = 20;
/** Large enough for a batch of pages with its index, small enough that a corrupt length is caught. */
export const MAX_FRAME_PAYLOAD = 8 << 20;

export const HDR_MAGIC = 0;
export const HDR_VERSION = 4;
export const HDR_TYPE = 6;
export const HDR_LENGTH = 8;
export const HDR_CRC = 12;
export const HDR_HEADER_CRC = 16;

/** Message types (QEMU's MIG_CMD_* / RAM_SAVE_FLAG_* play these roles). */
export const MSG_HELLO = 1; // first frame on every connection: which channel, which migration
export const MSG_SETUP = 2; // source → destination: the configuration to check
export const MSG_SETUP_ACK = 3; // destination → source: compatible, ready
export const MSG_REFUSE = 4; // either way: a clear reason, then the connection closes
export const MSG_PAGES = 5; // a batch of pages (pre-copy, pushed or requested)
export const MSG_PAGE_REQUEST = 6; // destination → source on the return path
export const MSG_ROUND_END = 7; // source: a pre-copy round is complete (dirty pages; whether it was the last)
export const MSG_SWITCHOVER = 8; // source: vCPUs stopped; the final dirty bitmap and the state
export const MSG_RUNNING = 9; // destination: the vCPUs run (ends the downtime)
export const MSG_POSTCOPY_DONE = 10; // destination: every page is in
export const MSG_RESUME = 11; // destination → source after a reconnect: the received bitmap
export const MSG_COMPLETE = 12; // source → destination: nothing more will come
export const MSG_GUEST_DONE = 13; // destination → source: the guest's result, once it has one
export const MSG_ROUND_ACK = 14; // destination → source: everything up to a ROUND_END is installed

const NAMES: Record<number, string> = {
  [MSG_HELLO]: "HELLO",
  [MSG_SETUP]: "SETUP",
  [MSG_SETUP_ACK]: "SETUP_ACK",
  [MSG_REFUSE]: "REFUSE",
  [MSG_PAGES]: "PAGES",
  [MSG_PAGE_REQUEST]: "PAGE_REQUEST",
  [MSG_ROUND_END]: "ROUND_END",
  [MSG_SWITCHOVER]: "SWITCHOVER",
  [MSG_RUNNING]: "RUNNING",
  [MSG_POSTCOPY_DONE]: "POSTCOPY_DONE",
  [MSG_RESUME]: "RESUME",
  [MSG_COMPLETE]: "COMPLETE",
  [MSG_GUEST_DONE]: "GUEST_DONE",
  [MSG_ROUND_ACK]: "ROUND_ACK",
};

export function messageName(type: number): string {
  return NAMES[type] ?? `unknown message type ${type}`;
}

export function isKnownMessage(type: number): boolean {
  return NAMES[type] !== undefined;
}

/** A stream that is not a well-formed faultline migration stream of this version. */
export class MigrationProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MigrationProtocolError";
  }
}

/**
 * The stream ended inside a frame: a peer that closed mid-message, or the
 * network breaking, since a reset can read as an end (Linux reports one so
 * while received data is still queued).
 */
export class StreamTruncated extends MigrationProtocolError {}
