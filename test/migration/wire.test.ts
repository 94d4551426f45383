import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { crc32 } from "node:zlib";
import { PAGE_SIZE } from "../../src/host/host-memory.js";
import {
  configDifferences,
  configProblems,
  type MigrationConfig,
} from "../../src/migration/config.js";
import { encodeFrame } from "../../src/migration/wire/frame.js";
import { FrameDecoder } from "../../src/migration/wire/frame-decoder.js";
import {
  FRAME_HEADER_BYTES,
  HDR_HEADER_CRC,
  HDR_LENGTH,
  HDR_TYPE,
  HDR_VERSION,
  MIGRATION_VERSION,
  MAX_FRAME_PAYLOAD,
  MigrationProtocolError,
  MSG_PAGE_REQUEST,
  MSG_PAGES,
  MSG_SETUP,
  MSG_SWITCHOVER,
} from "../../src/migration/wire/format.js";
import {
  decodeJson,
  decodePageList,
  decodeSections,
  encodeJson,
  encodePageList,
  encodeSections,
  forEachPage,
  PageBatchWriter,
  PageViewBatchWriter,
} from "../../src/migration/wire/messages.js";

/**
 * Hand `bytes` to a decoder in pieces of the given sizes: as chunks
 * (`push`), or read into the decoder's own buffer (`readBuffer` and
 * `received`, a read taking at most what that buffer holds).
 */
function feed(
  decoder: FrameDecoder,
  bytes: Buffer,
  pieces: number[],
  inPlace: boolean,
  onFrame: (type: number, payload: Buffer) => void,
): void {
  let at = 0;
  let i = 0;
  while (at < bytes.length) {
    let n = Math.min(pieces[i++ % pieces.length], bytes.length - at);
    if (inPlace) {
      const target = decoder.readBuffer();
      n = Math.min(n, target.length);
      bytes.copy(target, 0, at, at + n);
      decoder.received(n, onFrame);
    } else {
      decoder.push(bytes.subarray(at, at + n), onFrame);
    }
    at += n;
  }
}

function decodeAll(
  bytes: Buffer,
  pieces: number[],
  inPlace = false,
): { type: number; payload: Buffer }[] {
  const decoder = new FrameDecoder();
  const frames: { type: number; payload: Buffer }[] = [];
  feed(decoder, bytes, pieces, inPlace, (type, payload) =>
    frames.push({ type, payload: Buffer.from(payload) }),
  );
  decoder.end();
  return frames;
}

/** A header edited by hand, given the checksum a sender would have written for it. */
function resealHeader(frame: Buffer): Buffer {
  frame.writeUInt32LE(crc32(frame.subarray(0, HDR_HEADER_CRC)), HDR_HEADER_CRC);
  return frame;
}

function pageBatch(): Buffer {
  const writer = new PageBatchWriter(4);
  writer.nextDataSlot().fill(0xa1);
  writer.addPage(7);
  writer.addZeroPage(3);
  writer.nextDataSlot().fill(0xb2);
  writer.addPage(0x7fff_fffe);
  return writer.take(MSG_PAGES);
}

function refuses(bytes: Buffer, pattern: RegExp, atEnd = false): void {
  for (const inPlace of [false, true]) {
    const decoder = new FrameDecoder("test stream");
    assert.throws(
      () => {
        feed(decoder, bytes, [bytes.length], inPlace, () => undefined);
        if (atEnd) decoder.end();
      },
      (error: unknown) => {
        assert.ok(error instanceof MigrationProtocolError, String(error));
        assert.match(error.message, pattern);
        return true;
      },
    );
    // Nothing after a bad frame is trusted, and what still comes is read and dropped.
    assert.throws(() => feed(decoder, encodeFrame(MSG_SETUP), [16], inPlace, () => {}), pattern);
    if (inPlace) assert.equal(decoder.readBuffer().length, 64 << 10);
  }
}

describe("migration wire protocol", () => {
  test("frames survive any split of the stream, byte by byte included", () => {
    const stream = Buffer.concat([
      encodeJson(MSG_SETUP, { memBytes: 123 }),
      pageBatch(),
      encodePageList(MSG_PAGE_REQUEST, [5, 9, 1], 3),
      encodeFrame(MSG_SWITCHOVER),
    ]);
    for (const [inPlace, pieces] of [
      [false, [1]],
      [false, [3, 7]],
      [false, [FRAME_HEADER_BYTES]],
      [false, [stream.length]],
      [false, [4097, 13]],
      [true, [1]],
      [true, [3, 7]],
      [true, [stream.length]],
    ] as const) {
      const frames = decodeAll(stream, [...pieces], inPlace);
      assert.deepEqual(
        frames.map((f) => f.type),
        [MSG_SETUP, MSG_PAGES, MSG_PAGE_REQUEST, MSG_SWITCHOVER],
        `pieces ${pieces.join(",")}`,
      );
      assert.deepEqual(decodeJson(frames[0].payload, "setup"), { memBytes: 123 });
      const pages: [number, number | null][] = [];
      forEachPage(frames[1].payload, (index, payload, at) => {
        const data = at < 0 ? null : payload.subarray(at, at + PAGE_SIZE);
        if (data) assert.equal(data.length, PAGE_SIZE);
        if (data) assert.ok(data.every((b) => b === data[0]));
        pages.push([index, data ? data[0] : null]);
      });
      assert.deepEqual(pages, [
        [7, 0xa1],
        [3, null],
        [0x7fff_fffe, 0xb2],
      ]);
      assert.deepEqual([...decodePageList(frames[2].payload)], [5, 9, 1]);
      assert.equal(frames[3].payload.length, 0);
    }
  });

  test("read in place, frames come out whole however reads cut them, past the first arena", () => {
    // Frames of 16 pages cut by 64 KiB reads, more than the 2 MiB arena
    // holds (what is left of a frame moves back to its start), then one
    // frame larger than the arena (which grows to take it).
    const batches: Buffer[] = [];
    for (let b = 0; b < 64; b++) {
      const writer = new PageBatchWriter(16);
      for (let p = 0; p < 16; p++) {
        writer.nextDataSlot().fill((b * 16 + p) & 0xff);
        writer.addPage(b * 16 + p);
      }
      batches.push(Buffer.from(writer.take(MSG_PAGES)));
    }
    const large = encodeFrame(MSG_SWITCHOVER, Buffer.alloc(5 << 20, 0x5a));
    const stream = Buffer.concat([...batches, large, encodeJson(MSG_SETUP, { last: true })]);
    for (const pieces of [[64 << 10], [65_000, 70_000, 333], [stream.length]]) {
      const frames = decodeAll(stream, pieces, true);
      assert.equal(frames.length, 66, `pieces ${pieces.join(",")}`);
      let page = 0;
      for (const frame of frames.slice(0, 64)) {
        forEachPage(frame.payload, (index, payload, at) => {
          assert.equal(index, page);
          assert.ok(payload.subarray(at, at + PAGE_SIZE).every((b) => b === (page & 0xff)));
          page++;
        });
      }
      assert.equal(page, 1024);
      assert.deepEqual(frames[64].payload, large.subarray(FRAME_HEADER_BYTES));
      assert.deepEqual(decodeJson(frames[65].payload, "setup"), { last: true });
    }
  });

  test("a frame of page views is the frame a copying writer builds, byte for byte", () => {
    const ram = Buffer.alloc(3 * PAGE_SIZE);
    for (let i = 0; i < ram.length; i++) ram[i] = (i * 7 + (i >> 12)) & 0xff;
    const page = (n: number) => ram.subarray(n * PAGE_SIZE, (n + 1) * PAGE_SIZE);
    const views = new PageViewBatchWriter(4);
    const copies = new PageBatchWriter(4);
    for (const [index, data] of [
      [9, page(2)],
      [4, null],
      [0x7fff_fffe, page(0)],
      [5, page(1)],
    ] as const) {
      if (data) {
        views.addPage(index, data);
        data.copy(copies.nextDataSlot());
        copies.addPage(index);
      } else {
        views.addZeroPage(index);
        copies.addZeroPage(index);
      }
    }
    assert.ok(views.full);
    const pieces = views.take(MSG_PAGES);
    assert.equal(pieces.length, 5, "header, three pages where they lie, index");
    assert.ok(pieces[1].buffer === ram.buffer, "the page is sent from where it lies");
    assert.deepEqual(Buffer.concat(pieces), copies.take(MSG_PAGES));
    assert.equal(views.count, 0);
    views.addZeroPage(1);
    const [frame] = decodeAll(Buffer.concat(views.take(MSG_PAGES)), [7]);
    const seen: number[] = [];
    forEachPage(frame.payload, (index, _payload, at) => seen.push(index, at));
    assert.deepEqual(seen, [1, -1]);
  });

  test("sections round-trip, and malformed payloads are refused", () => {
    const frame = encodeSections(MSG_SWITCHOVER, [
      Buffer.from("ab"),
      new Uint8Array(0),
      Buffer.alloc(9, 1),
    ]);
    const [f] = decodeAll(frame, [5]);
    const sections = decodeSections(f.payload, "switchover");
    assert.deepEqual(
      sections.map((s) => [...s]),
      [[0x61, 0x62], [], [1, 1, 1, 1, 1, 1, 1, 1, 1]],
    );
    assert.throws(
      () => decodeSections(f.payload.subarray(0, 7), "switchover"),
      /malformed switchover/,
    );
    assert.throws(
      () => decodePageList(Buffer.from([2, 0, 0, 0, 1, 0, 0, 0])),
      /malformed page list/,
    );
    const pages = decodeAll(pageBatch(), [9999])[0].payload;
    assert.throws(() => forEachPage(pages.subarray(0, pages.length - 4), () => undefined), /PAGES/);
  });

  test("a control message is a JSON object, or refused as malformed", () => {
    assert.deepEqual(decodeJson(Buffer.from('{"round":3}'), "ROUND_END"), { round: 3 });
    for (const text of ["null", "[1,2]", "7", '"text"', "{"]) {
      assert.throws(
        () => decodeJson(Buffer.from(text), "ROUND_END"),
        (error: Error) =>
          error instanceof MigrationProtocolError &&
          /malformed ROUND_END message/.test(error.message),
        text,
      );
    }
  });

  test("a corrupt payload, bad magic or unknown type is refused clearly", () => {
    const good = encodeJson(MSG_SETUP, { x: 1 });
    const flipped = Buffer.from(good);
    flipped[FRAME_HEADER_BYTES + 2] ^= 0x40;
    refuses(flipped, /corrupt: payload checksum mismatch/);
    refuses(
      Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
      /bad frame magic .*\(not a faultline migration stream/,
    );
    const unknown = Buffer.from(good);
    unknown.writeUInt16LE(999, HDR_TYPE);
    refuses(resealHeader(unknown), /unknown message type 999/);
  });

  test("a corrupt header is refused from the header alone, its length never believed", () => {
    // A flipped bit in the length: believed, it would have the receiver
    // wait for 64 KiB more that may never come.
    const frame = Buffer.from(encodeJson(MSG_SETUP, { x: 1 }));
    frame[HDR_LENGTH + 2] ^= 0x01;
    refuses(frame.subarray(0, FRAME_HEADER_BYTES), /corrupt: frame header checksum mismatch/);
    const header = Buffer.from(frame.subarray(0, FRAME_HEADER_BYTES));
    header[HDR_HEADER_CRC] ^= 0x80;
    refuses(header, /corrupt: frame header checksum mismatch/);
  });

  test("a recycled PAGES frame's buffer carries the next batch, sealed afresh", () => {
    const writer = new PageBatchWriter(2);
    writer.nextDataSlot().fill(0xa1);
    writer.addPage(5);
    const first = writer.take(MSG_PAGES);
    const firstPages = decodeAll(Buffer.from(first), [first.length]);
    writer.recycle(first);
    // The frame after `first` was in the making when it came back; the next one reuses it.
    writer.addZeroPage(8);
    const second = writer.take(MSG_PAGES);
    assert.ok(second.buffer !== first.buffer);
    writer.addZeroPage(9);
    writer.addZeroPage(10);
    const third = writer.take(MSG_PAGES);
    assert.ok(third.buffer === first.buffer, "the same memory, no fresh buffer");
    const [frame] = decodeAll(third, [third.length]);
    const seen: [number, number][] = [];
    forEachPage(frame.payload, (index, _payload, at) => seen.push([index, at]));
    assert.deepEqual(seen, [
      [9, -1],
      [10, -1],
    ]);
    forEachPage(firstPages[0].payload, (index, payload, at) => {
      assert.equal(index, 5);
      assert.ok(payload.subarray(at, at + PAGE_SIZE).every((b) => b === 0xa1));
    });
  });

  test("a wrong version is named as such", () => {
    const frame = Buffer.from(encodeFrame(MSG_SETUP));
    frame.writeUInt16LE(7, HDR_VERSION);
    refuses(
      frame,
      new RegExp(
        `peer speaks migration protocol version 7, this faultline speaks version ${MIGRATION_VERSION}`,
      ),
    );
  });

  test("an oversized frame is refused from its header, before its payload arrives", () => {
    const frame = Buffer.from(encodeFrame(MSG_PAGES));
    frame.writeUInt32LE(MAX_FRAME_PAYLOAD + 1, HDR_LENGTH);
    refuses(resealHeader(frame), /exceeds the \d+-byte limit/);
  });

  test("a stream that ends inside a frame is truncated", () => {
    const stream = Buffer.concat([encodeFrame(MSG_SETUP), pageBatch()]);
    refuses(
      stream.subarray(0, stream.length - 100),
      /truncated: it ended \d+ bytes into a frame/,
      true,
    );
    refuses(stream.subarray(0, 5), /truncated/, true);
  });

  test("configuration differences and impossible configurations are listed", () => {
    const a: MigrationConfig = {
      memBytes: 16 << 20,
      pageSize: 4096,
      vcpus: 2,
      backing: "guest_memfd",
      faultMechanism: "userfault",
      guest: "dirtier",
      workload: "10 iterations of 32 stores, a disk read every 256",
    };
    assert.deepEqual(configDifferences(a, { ...a }), []);
    assert.deepEqual(configDifferences(a, { ...a, memBytes: 32 << 20, vcpus: 4 }), [
      "memBytes: source 16777216, destination 33554432",
      "vcpus: source 2, destination 4",
    ]);
    assert.deepEqual(configProblems(a), []);
    assert.match(configProblems({ ...a, faultMechanism: "uffd" })[0], /needs traditional memory/);
  });
});
