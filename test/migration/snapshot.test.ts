import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { crc32 } from "node:zlib";
import { PAGE_SIZE } from "../../src/host/host-memory.js";
import { SnapshotRestore } from "../../src/migration/snapshot/restore-snapshot.js";
import { SnapshotFile } from "../../src/migration/snapshot/snapshot-file.js";
import {
  HDR_HEADER_CRC,
  HDR_METADATA_CRC,
  HDR_METADATA_LENGTH,
  HDR_VERSION,
  SNAPSHOT_HEADER_BYTES,
  SnapshotError,
} from "../../src/migration/snapshot/snapshot-format.js";
import { CLI, vmArgs } from "./support.js";

/**
 * Snapshots: `faultline snapshot save` writes a running guest to a file in
 * one process, `faultline snapshot restore` brings it back in another,
 * lazily (the guest runs at once, its pages read as it faults on them,
 * through KVM Userfault or userfaultfd) or eagerly, and the guest finishes
 * with the checksums it computes without ever being stopped. A file that
 * cannot be trusted is refused with the reason, before or (for a page)
 * while the guest runs.
 */

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function faultline(args: string[], timeout = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

let dir = "";
/** Snapshots of the same small guest on guest_memfd and on shmem, saved once. */
let gmemSnapshot = "";
let shmemSnapshot = "";

async function saved(path: string, extra: Record<string, string> = {}): Promise<void> {
  const run = await faultline([
    "snapshot",
    "save",
    path,
    ...vmArgs({ iterations: 4000, ...extra }),
    "--after",
    "150",
    "--json",
  ]);
  assert.equal(run.code, 0, run.stderr);
  const result = JSON.parse(run.stdout) as { pages: number; iterationsDone: number };
  assert.equal(result.pages, (16 << 20) / PAGE_SIZE);
  assert.ok(result.iterationsDone > 0, "the guest ran before the snapshot");
}

async function restored(path: string, args: string[]): Promise<Record<string, unknown>> {
  const run = await faultline(["snapshot", "restore", path, ...args, "--json"]);
  assert.equal(run.code, 0, run.stderr);
  const result = JSON.parse(run.stdout) as Record<string, unknown>;
  assert.equal(result.verified, true, run.stdout);
  return result;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "faultline-snapshot-"));
  gmemSnapshot = join(dir, "gmem.snap");
  shmemSnapshot = join(dir, "shmem.snap");
  await Promise.all([saved(gmemSnapshot), saved(shmemSnapshot, { backing: "shmem" })]);
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe("snapshot save and restore, each in its own process", () => {
  test("lazy over KVM Userfault: the guest runs before its memory is read, and finishes verified", async () => {
    const r = await restored(gmemSnapshot, []);
    assert.equal(r.mode, "lazy");
    assert.equal(r.faultMechanism, "userfault");
    assert.ok((r.faults as number) > 0, "the guest faulted pages in");
    assert.ok((r.restoreTimeMs as number) < (r.loadTimeMs as number), JSON.stringify(r));
  });

  test("lazy over userfaultfd on shmem: verified", async () => {
    const r = await restored(shmemSnapshot, ["--fault-mechanism", "uffd"]);
    assert.equal(r.faultMechanism, "uffd");
    assert.ok((r.asyncFaults as number) > 0, "the guest's faults came through userfaultfd");
  });

  test("eager: every page read before the guest runs; verified", async () => {
    for (const path of [gmemSnapshot, shmemSnapshot]) {
      const r = await restored(path, ["--eager"]);
      assert.equal(r.mode, "eager");
      assert.ok((r.loadTimeMs as number) <= (r.restoreTimeMs as number), JSON.stringify(r));
    }
  });

  test("a snapshot restores again and again to the same result", async () => {
    const [a, b] = await Promise.all([
      restored(gmemSnapshot, []),
      restored(gmemSnapshot, ["--eager"]),
    ]);
    assert.deepEqual(a.checksums, b.checksums);
  });

  test("userfaultfd cannot restore guest_memfd lazily: refused up front", async () => {
    const run = await faultline(["snapshot", "restore", gmemSnapshot, "--fault-mechanism", "uffd"]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /the uffd fault mechanism needs traditional memory/);
  });

  test("a guest that finished before the snapshot: refused, no file left", async () => {
    const path = join(dir, "late.snap");
    const run = await faultline([
      "snapshot",
      "save",
      path,
      ...vmArgs({ iterations: 10 }),
      "--after",
      "500",
    ]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /finished its workload before the snapshot was taken/);
    assert.throws(() => readFileSync(path), /ENOENT/);
  });
});

describe("faultline bench restore", () => {
  test("restores one snapshot lazily and eagerly in turns and reports both, verified", async () => {
    const run = await faultline(
      ["bench", "restore", ...vmArgs({ iterations: 3000 }), "--rounds", "1", "--json"],
      120_000,
    );
    assert.equal(run.code, 0, run.stderr);
    const r = JSON.parse(run.stdout) as {
      memBytes: number;
      lazy: { restoreTimeMs: number; loadTimeMs: number; faults: number };
      eager: { restoreTimeMs: number; loadTimeMs: number; faults: number };
      restoreSpeedup: number;
      runTimeRatio: number;
      checksumVerified: boolean;
    };
    assert.equal(r.memBytes, 16 << 20);
    assert.equal(r.checksumVerified, true);
    assert.ok(r.lazy.faults > 0 && r.eager.faults === 0, run.stdout);
    assert.ok(r.lazy.restoreTimeMs < r.lazy.loadTimeMs, run.stdout);
    assert.equal(r.restoreSpeedup, r.eager.restoreTimeMs / r.lazy.restoreTimeMs);
    assert.ok(r.runTimeRatio > 0);
  });
});

/** A copy of the guest_memfd snapshot with `edit` applied, and what restoring it says. */
async function refused(edit: (bytes: Buffer) => Buffer): Promise<Run> {
  const path = join(dir, `edited-${Math.random().toString(36).slice(2)}.snap`);
  writeFileSync(path, edit(readFileSync(gmemSnapshot)));
  const run = await faultline(["snapshot", "restore", path]);
  rmSync(path);
  assert.equal(run.code, 2, run.stdout);
  assert.equal(run.stdout, "", "nothing ran");
  return run;
}

/** Recompute the header's own checksum after an edit of its fields. */
function resealHeader(bytes: Buffer): Buffer {
  bytes.writeUInt32LE(crc32(bytes.subarray(0, HDR_HEADER_CRC)), HDR_HEADER_CRC);
  return bytes;
}

describe("a snapshot that cannot be restored is refused, with the reason", () => {
  const cases: [string, (bytes: Buffer) => Buffer, RegExp][] = [
    ["not a snapshot", (b) => b.fill(0x41, 0, 64), /not a faultline snapshot \(bad magic\)/],
    ["an empty file", () => Buffer.alloc(0), /truncated: the file ends inside its header/],
    [
      "a flipped header byte",
      (b) => {
        b[HDR_METADATA_LENGTH] ^= 1;
        return b;
      },
      /header corrupt: checksum mismatch/,
    ],
    [
      "another version",
      (b) => {
        b.writeUInt32LE(2, HDR_VERSION);
        return resealHeader(b);
      },
      /snapshot version 2; this faultline reads version 1/,
    ],
    [
      "a metadata length past any",
      (b) => {
        b.writeUInt32LE(0xffff_ffff, HDR_METADATA_LENGTH);
        return resealHeader(b);
      },
      /header corrupt: metadata of 4294967295 bytes/,
    ],
    [
      "a flipped metadata byte",
      (b) => {
        b[SNAPSHOT_HEADER_BYTES + 10] ^= 1;
        return b;
      },
      /metadata corrupt: checksum mismatch/,
    ],
    [
      "cut short inside its pages",
      (b) => b.subarray(0, b.length - PAGE_SIZE),
      /truncated: \d+ bytes, a snapshot of 16777216 bytes of RAM has \d+/,
    ],
  ];
  for (const [name, edit, message] of cases) {
    test(name, async () => {
      const run = await refused(edit);
      assert.match(run.stderr, message);
    });
  }

  test("a file that is not there", async () => {
    const run = await faultline(["snapshot", "restore", join(dir, "missing.snap")]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /ENOENT/);
  });
});

/**
 * The snapshot with its metadata rewritten by `edit` and every checksum
 * made to match: what the checks behind the checksums must catch. The
 * JSON is padded to its old length so that the layout stays put.
 */
function withMetadata(edit: (metadata: Record<string, unknown>) => unknown): (b: Buffer) => Buffer {
  return (bytes) => {
    const length = bytes.readUInt32LE(HDR_METADATA_LENGTH);
    const at = SNAPSHOT_HEADER_BYTES;
    const metadata = JSON.parse(bytes.subarray(at, at + length).toString()) as Record<
      string,
      unknown
    >;
    const edited = edit(metadata);
    // A string is the new metadata as it is, JSON or not.
    const text = Buffer.from(typeof edited === "string" ? edited : JSON.stringify(edited));
    assert.ok(text.length <= length, "an edit that keeps the metadata's length or shortens it");
    bytes.fill(0x20, at, at + length);
    text.copy(bytes, at);
    bytes.writeUInt32LE(crc32(bytes.subarray(at, at + length)), HDR_METADATA_CRC);
    return resealHeader(bytes);
  };
}

describe("metadata that passes its checksum but cannot be restored is refused, with the reason", () => {
  type Metadata = Record<string, Record<string, unknown> & unknown[]>;
  const cases: [string, (m: Metadata) => unknown, RegExp][] = [
    ["not JSON", () => "{", /metadata is not JSON/],
    ["JSON, not an object", () => "null", /metadata is not a JSON object/],
    ["another guest", (m) => ({ ...m, guest: "other" }), /a snapshot of guest "other"/],
    [
      "vCPU states for another vCPU count",
      (m) => ({ ...m, spec: { ...m.spec, vcpus: 3 } }),
      /malformed vCPU state: vCPU state for 4 vCPUs, expected 3/,
    ],
    [
      "an unknown backing",
      (m) => ({ ...m, spec: { ...m.spec, backing: "tmpfs" } }),
      /metadata: VM backing "tmpfs"/,
    ],
    [
      "a page size no backing has",
      (m) => ({ ...m, spec: { ...m.spec, pageSize: 8192 } }),
      /metadata: backing page size 8192/,
    ],
    ["a clock that is no count", (m) => ({ ...m, clock: "soon" }), /metadata: guest clock "soon"/],
    [
      "device state the virtio-blk device refuses",
      (m) => ({ ...m, devices: { ...m.devices, blk: { queueNum: "many" } } }),
      /device state refused: EINVAL: malformed virtio-blk state/,
    ],
    [
      "a vCPU state with a register this KVM lacks",
      (m) => {
        const vcpu = m.vcpus[0] as { state: { regs: [string, string][] } };
        vcpu.state.regs[0][0] = "8030000002ffffff";
        return m;
      },
      /vCPU 0 state refused/,
    ],
  ];
  for (const [name, edit, message] of cases) {
    test(name, async () => {
      const run = await refused(withMetadata((m) => edit(m as Metadata)));
      assert.match(run.stderr, message);
    });
  }
});

describe("a corrupt page is caught when it is read", () => {
  /** The guest_memfd snapshot with one byte of its first page with contents flipped. */
  function withCorruptPage(): { path: string; page: number } {
    const file = SnapshotFile.open(gmemSnapshot);
    const { dataOffset } = file.layout;
    let page = 0;
    while (file.zero.test(page)) page++;
    file.close();
    const bytes = readFileSync(gmemSnapshot);
    bytes[dataOffset + page * PAGE_SIZE + 100] ^= 0x5a;
    const path = join(dir, `corrupt-page-${page}.snap`);
    writeFileSync(path, bytes);
    return { path, page };
  }

  for (const mode of ["lazy", "eager"] as const) {
    test(`${mode}: the restore stops with the page named, its vCPUs stopped`, async () => {
      const { path, page } = withCorruptPage();
      const file = SnapshotFile.open(path);
      try {
        await assert.rejects(
          new SnapshotRestore(file, { mode, faultMechanism: "userfault" }).run(),
          (error: unknown) => {
            assert.ok(error instanceof SnapshotError, String(error));
            assert.equal(error.message, `page ${page} corrupt: checksum mismatch`);
            return true;
          },
        );
      } finally {
        file.close();
        rmSync(path);
      }
    });
  }
});
