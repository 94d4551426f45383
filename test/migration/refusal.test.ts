import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { migrateLocally, MigrationProcess } from "../../src/migration/local-pair.js";
import { FrameDecoder } from "../../src/migration/wire/frame-decoder.js";
import { encodeJson, encodeSections, PageBatchWriter } from "../../src/migration/wire/messages.js";
import { PageBitmap } from "../../src/migration/page-bitmap.js";
import {
  HDR_VERSION,
  MIGRATION_VERSION,
  MSG_HELLO,
  MSG_PAGES,
  MSG_REFUSE,
  MSG_ROUND_ACK,
  MSG_ROUND_END,
  MSG_SETUP,
  MSG_SETUP_ACK,
  MSG_SWITCHOVER,
} from "../../src/migration/wire/format.js";
import { type StreamFault, TcpProxy } from "../support/tcp-proxy.js";
import { CLI, vmArgs } from "./support.js";
import {
  DIRTIER_GUEST,
  MigratableVm,
  type MigratableVmSpec,
} from "../../src/migration/machine/migratable-vm.js";
import { DEFAULT_IO_EVERY, dirtierWorkload } from "../../src/migration/machine/dirtier.js";
import { MigrationDestination } from "../../src/migration/destination.js";
import { CORE_MODE, coreReg } from "../../src/kvm/one-reg.js";

/**
 * The destination refuses what it cannot trust or load, with a clear
 * error; a pre-copy source that is refused (or loses its destination)
 * keeps its guest running untouched: the guest finishes there with the
 * checksums it computes without migration.
 */
async function refusedPrecopy(
  faultOrArgs: StreamFault | { listen: string[] },
  mode = "precopy",
): Promise<{ destination: string; source: string }> {
  let proxy: TcpProxy | null = null;
  const run = await migrateLocally({
    cli: CLI,
    vmArgs: vmArgs(),
    listenArgs: "listen" in faultOrArgs ? faultOrArgs.listen : [],
    sendArgs: ["--mode", mode, "--warmup", "50", "--verify"],
    route: async (port) => {
      if ("listen" in faultOrArgs) return { host: "127.0.0.1", port };
      proxy = await TcpProxy.start({ host: "127.0.0.1", port });
      proxy.injectFault(faultOrArgs);
      return { host: "127.0.0.1", port: proxy.port };
    },
    timeoutMs: 60_000,
  });
  (proxy as TcpProxy | null)?.close();
  assert.equal(run.destinationCode, 1, run.destination.stderr);
  assert.equal(run.sourceCode, 1, run.source.stderr);
  const guest = run.source.event("source-guest");
  assert.ok(guest, `the source guest did not finish: ${run.source.stderr}`);
  assert.equal(guest.verified, true, JSON.stringify(guest));
  return {
    destination: String(run.destination.event("error")?.message),
    source: String(run.source.event("error")?.message),
  };
}

/** A destination listening on a free port, for tests that speak the protocol themselves. */
async function listeningDestination(
  extra: string[] = [],
): Promise<{ destination: MigrationProcess; port: number }> {
  const destination = new MigrationProcess("destination", CLI, [
    "listen",
    "--port",
    "0",
    ...vmArgs(),
    ...extra,
  ]);
  const { port } = (await destination.waitFor("listening")) as unknown as { port: number };
  return { destination, port };
}

/** vmArgs()'s VM, as a spec. */
const VM_SPEC: MigratableVmSpec = {
  memBytes: 16 << 20,
  vcpus: 4,
  backing: "guest_memfd",
  pageSize: 4096,
  iterations: 6000,
  storesPerIteration: 256,
  ioEvery: DEFAULT_IO_EVERY,
};

/** The types of the frames a socket receives until it closes. */
async function framesUntilClose(socket: Socket): Promise<number[]> {
  const types: number[] = [];
  const decoder = new FrameDecoder();
  socket.on("data", (chunk: Buffer) => decoder.push(chunk, (type) => types.push(type)));
  await new Promise((resolve) => socket.on("close", resolve));
  return types;
}

/** Resolves with the first frame of `type` that `socket` receives from now on. */
function nextFrame(socket: Socket, type: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const decoder = new FrameDecoder();
    socket.on("data", (chunk: Buffer) => decoder.push(chunk, (t) => t === type && resolve()));
  });
}

/**
 * Speak to a destination by hand as the source of vmArgs()'s VM: the three
 * channels, then SETUP (for post-copy unless told); resolves once it is acknowledged.
 */
async function setUpByHand(port: number, mode = "postcopy"): Promise<Socket[]> {
  const sockets = (["main", "return", "preempt"] as const).map((channel) => {
    const socket = connect(port, "127.0.0.1");
    socket.write(encodeJson(MSG_HELLO, { channel, migration: "m", resume: false }));
    return socket;
  });
  const config = {
    memBytes: VM_SPEC.memBytes,
    pageSize: VM_SPEC.pageSize,
    vcpus: VM_SPEC.vcpus,
    backing: VM_SPEC.backing,
    faultMechanism: "userfault",
    guest: DIRTIER_GUEST,
    workload: dirtierWorkload(VM_SPEC),
  };
  const acknowledged = nextFrame(sockets[1], MSG_SETUP_ACK);
  const pages = VM_SPEC.memBytes / 4096;
  sockets[0].write(encodeJson(MSG_SETUP, { config, mode, pages }));
  await acknowledged;
  return sockets;
}

describe("a migration the destination refuses", () => {
  test("an incompatible configuration, each difference named", { timeout: 60_000 }, async () => {
    const errors = await refusedPrecopy({
      listen: ["--vcpus", "3", "--backing", "shmem", "--io-every", "7"],
    });
    assert.match(
      errors.destination,
      new RegExp(
        'refused: incompatible configuration: vcpus: source 4, destination 3; backing: source "guest_memfd", destination "shmem"; ' +
          'workload: source "6000 iterations of 256 stores, a disk read every 256", destination "6000 iterations of 256 stores, a disk read every 7"',
      ),
    );
    assert.match(
      errors.source,
      /the destination refused the migration: incompatible configuration/,
    );
  });

  test("a corrupt stream: the payload checksum catches it", { timeout: 60_000 }, async () => {
    const errors = await refusedPrecopy({ channel: "main", at: 300_000, kind: "corrupt" });
    assert.match(errors.destination, /refused: main channel corrupt: payload checksum mismatch/);
    assert.match(errors.source, /refused|failed before switchover/);
  });

  test("a truncated stream", { timeout: 60_000 }, async () => {
    const errors = await refusedPrecopy({ channel: "main", at: 300_000, kind: "truncate" });
    assert.match(
      errors.destination,
      /refused: main channel truncated: it ended \d+ bytes into a frame/,
    );
    // Whichever reaches the source first: the refusal, or its own channel's end.
    assert.match(
      errors.source,
      /the destination refused the migration: main channel truncated|failed before switchover/,
    );
  });

  test(
    "post-copy: a corrupt switchover is refused before the destination starts a vCPU, " +
      "and the source's guest runs on (4 runs, a random byte of the switchover each)",
    { timeout: 120_000 },
    async () => {
      for (let run = 0; run < 4; run++) {
        // Inside the SWITCHOVER, its header included (6.9 KB here; the size
        // of what comes before it varies with the configuration's paths).
        const at = Math.floor(Math.random() * 6800);
        const errors = await refusedPrecopy(
          { channel: "main", frame: MSG_SWITCHOVER, at, kind: "corrupt" },
          "postcopy",
        );
        assert.match(errors.destination, /refused: main channel corrupt/, `byte ${at}`);
        assert.match(errors.source, /before it ran the guest, which runs on here/, `byte ${at}`);
      }
    },
  );

  test(
    "a peer that accepts connections and never answers: the source gives up on it, and its guest runs on",
    { timeout: 30_000 },
    async () => {
      const silent = createServer((socket) =>
        socket.on("data", () => undefined).on("error", () => undefined),
      );
      await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
      const { port } = silent.address() as { port: number };
      try {
        const source = new MigrationProcess("source", CLI, [
          ...["send", "--to", `127.0.0.1:${port}`, ...vmArgs()],
          ...["--warmup", "50", "--answer-timeout", "500", "--verify"],
        ]);
        assert.equal(await source.exited, 1, source.stderr);
        assert.match(
          String(source.event("error")?.message),
          /no SETUP_ACK from 127\.0\.0\.1:\d+ within 500 ms \(is a faultline migrate listen there\?\)/,
        );
        assert.equal(source.event("source-guest")?.verified, true, source.stderr);
      } finally {
        silent.close();
      }
    },
  );

  test(
    "a peer that acknowledges a pre-copy round without naming it: the source gives up on it, and its guest runs on",
    { timeout: 30_000 },
    async () => {
      // Just enough of a destination: SETUP_ACK, then ROUND_ACKs that name no round.
      const peer = createServer((socket) => {
        const decoder = new FrameDecoder();
        socket.on("error", () => undefined);
        socket.on("data", (chunk: Buffer) =>
          decoder.push(chunk, (type) => {
            if (type === MSG_SETUP) socket.write(encodeJson(MSG_SETUP_ACK, {}));
            if (type === MSG_ROUND_END) socket.write(encodeJson(MSG_ROUND_ACK, {}));
          }),
        );
      });
      await new Promise<void>((resolve) => peer.listen(0, "127.0.0.1", resolve));
      const { port } = peer.address() as { port: number };
      try {
        const source = new MigrationProcess("source", CLI, [
          ...["send", "--to", `127.0.0.1:${port}`, ...vmArgs()],
          ...["--mode", "precopy", "--max-rounds", "3", "--warmup", "50", "--verify"],
        ]);
        assert.equal(await source.exited, 1, source.stderr);
        assert.match(String(source.event("error")?.message), /ROUND_ACK without a round/);
        assert.equal(source.event("source-guest")?.verified, true, source.stderr);
      } finally {
        peer.close();
      }
    },
  );

  test("a peer of another protocol version", { timeout: 30_000 }, async () => {
    const { destination, port } = await listeningDestination();
    try {
      const hello = encodeJson(MSG_HELLO, { channel: "main", migration: "x", resume: false });
      hello.writeUInt16LE(7, HDR_VERSION);
      const socket = connect(port, "127.0.0.1");
      socket.write(hello);
      assert.deepEqual(await framesUntilClose(socket), [MSG_REFUSE]);
      assert.equal(await destination.exited, 1);
      assert.match(
        String(destination.event("error")?.message),
        new RegExp(
          `refused: .*peer speaks migration protocol version 7, this faultline speaks version ${MIGRATION_VERSION}`,
        ),
      );
    } finally {
      destination.kill();
    }
  });

  test(
    "a refused setup reaches the source on every channel before its end",
    { timeout: 30_000 },
    async () => {
      // The source reads its three sockets in no set order: a channel that
      // ended without the refusal would pass for a lost connection.
      const { destination, port } = await listeningDestination();
      try {
        const received = await Promise.all(
          (["main", "return", "preempt"] as const).map(async (channel) => {
            const socket = connect(port, "127.0.0.1");
            socket.write(encodeJson(MSG_HELLO, { channel, migration: "m", resume: false }));
            if (channel === "preempt") {
              const config = { memBytes: 1, pageSize: 4096, vcpus: 99, backing: "shmem" };
              socket.write(encodeJson(MSG_SETUP, { config, mode: "postcopy", pages: 1 }));
            }
            return framesUntilClose(socket);
          }),
        );
        assert.deepEqual(received, [[MSG_REFUSE], [MSG_REFUSE], [MSG_REFUSE]]);
        assert.equal(await destination.exited, 1);
        assert.match(
          String(destination.event("error")?.message),
          /refused: incompatible configuration: memBytes: source 1, .*vcpus: source 99/,
        );
      } finally {
        destination.kill();
      }
    },
  );

  for (const { what, hello, setup, error } of [
    {
      what: "a HELLO that is no object",
      hello: null,
      setup: null,
      error: /refused: malformed HELLO message: not an object/,
    },
    {
      what: "a SETUP without a configuration",
      hello: { migration: "m", resume: false },
      setup: { config: null, mode: "postcopy", pages: 4096 },
      error: /refused: SETUP without a configuration/,
    },
  ]) {
    test(`${what} is refused`, { timeout: 30_000 }, async () => {
      const { destination, port } = await listeningDestination();
      try {
        // A stream that says nothing right is refused on its own connection.
        const channels = hello ? (["main", "return", "preempt"] as const) : (["main"] as const);
        const sockets = channels.map((channel) => {
          const socket = connect(port, "127.0.0.1");
          socket.write(encodeJson(MSG_HELLO, hello && { channel, ...hello }));
          return socket;
        });
        if (setup) sockets[0].write(encodeJson(MSG_SETUP, setup));
        const received = await Promise.all(sockets.map(framesUntilClose));
        assert.ok(
          received.some((frames) => frames.includes(MSG_REFUSE)),
          JSON.stringify(received),
        );
        assert.equal(await destination.exited, 1);
        assert.match(String(destination.event("error")?.message), error);
      } finally {
        destination.kill();
      }
    });
  }

  for (const ending of ["breaks", "says why"] as const) {
    test(
      `set up for post-copy, the source ${ending} before its switchover: the destination ` +
        (ending === "breaks" ? "waits for it, then gives up" : "fails at once"),
      { timeout: 30_000 },
      async () => {
        const { destination, port } = await listeningDestination(["--resume-timeout", "500"]);
        try {
          const sockets = await setUpByHand(port);
          const started = performance.now();
          if (ending === "breaks") {
            for (const socket of sockets) socket.resetAndDestroy();
          } else {
            sockets[0].end(encodeJson(MSG_REFUSE, { reason: "its guest failed" }));
          }
          assert.equal(await destination.exited, 1);
          const waited = performance.now() - started;
          const error = String(destination.event("error")?.message);
          if (ending === "breaks") {
            assert.match(error, /the source did not come back within 500 ms/);
            assert.ok(waited >= 500, `gave up after ${waited} ms`);
          } else {
            assert.match(error, /the source gave up: its guest failed/);
          }
        } finally {
          destination.kill();
        }
      },
    );
  }

  for (const last of [false, true]) {
    test(
      `set up for pre-copy, the source breaks after ${
        last
          ? "its last round (its switchover may be on its way): the destination waits for it"
          : "a round that was not its last (its guest still runs): the destination fails at once"
      }`,
      { timeout: 30_000 },
      async () => {
        const { destination, port } = await listeningDestination(["--resume-timeout", "500"]);
        try {
          const sockets = await setUpByHand(port, "precopy");
          const acknowledged = nextFrame(sockets[1], MSG_ROUND_ACK);
          sockets[0].write(encodeJson(MSG_ROUND_END, { round: 1, dirtyPages: 0, last }));
          await acknowledged;
          const started = performance.now();
          for (const socket of sockets) socket.resetAndDestroy();
          assert.equal(await destination.exited, 1);
          const waited = performance.now() - started;
          const error = String(destination.event("error")?.message);
          if (last) {
            assert.match(error, /the source did not come back within 500 ms/);
            assert.ok(waited >= 500, `gave up after ${waited} ms`);
          } else {
            assert.match(error, /^incoming migration failed: /);
            assert.doesNotMatch(error, /did not come back/);
          }
        } finally {
          destination.kill();
        }
      },
    );
  }

  /** The devices of vmArgs()'s VM as a source saves them: state any destination of it takes. */
  const validBlk = async () => {
    const { vm } = MigratableVm.boot(VM_SPEC);
    try {
      return (await vm.saveDevices()).blk;
    } finally {
      await vm.close();
    }
  };
  const finished = Array.from({ length: 4 }, () => ({ done: true, checksum: 0 }));
  const running = (regs: [string, string][]) => ({ done: false, state: { regs, mpState: 0 } });
  const mode = coreReg(CORE_MODE).toString(16);
  const switchovers = [
    {
      what: "whose device state this destination cannot take",
      lastProgressWallMs: [0, 0, 0, 0] as number[] | undefined,
      blk: { status: 999 },
      vcpus: JSON.stringify(finished),
      error: /refused: device state refused: EINVAL: malformed virtio-blk state/,
    },
    {
      what: "without the vCPUs' last progress",
      lastProgressWallMs: undefined,
      blk: {},
      vcpus: JSON.stringify(finished),
      error: /refused: SWITCHOVER header without each vCPU's last progress/,
    },
    {
      what: "whose guest clock is not a number",
      lastProgressWallMs: [0, 0, 0, 0],
      blk: {},
      vcpus: JSON.stringify(finished),
      clock: "soon",
      error: /refused: SWITCHOVER header without the guest's clock or its mode/,
    },
    {
      what: "with a bitmap of another guest's size",
      lastProgressWallMs: [0, 0, 0, 0],
      blk: {},
      vcpus: JSON.stringify(finished),
      pages: 4096 + 64,
      error: /refused: SWITCHOVER bitmap of 520 bytes for 4096 pages/,
    },
    {
      what: "with vCPU state for another number of vCPUs",
      lastProgressWallMs: [0, 0, 0, 0],
      blk: {},
      vcpus: JSON.stringify(finished.slice(1)),
      error: /refused: malformed vCPU state: .*3 vCPUs, expected 4/,
    },
    {
      what: "with vCPU state that is not JSON",
      lastProgressWallMs: [0, 0, 0, 0],
      blk: {},
      vcpus: "[{",
      error: /refused: malformed vCPU state: /,
    },
    {
      what: "with a register value this destination's KVM refuses",
      lastProgressWallMs: [0, 0, 0, 0],
      blk: "valid",
      vcpus: JSON.stringify([running([[mode, "7"]]), ...finished.slice(1)]),
      error: /refused: vCPU 0 state refused: EINVAL: mode 7/,
    },
    {
      what: "with a register this destination's KVM does not have",
      lastProgressWallMs: [0, 0, 0, 0],
      blk: "valid",
      vcpus: JSON.stringify([...finished.slice(1), running([["ffff", "0"]])]),
      error: /refused: vCPU 3 state refused: /,
    },
  ];
  for (const { what, lastProgressWallMs, blk, vcpus, clock, pages, error } of switchovers) {
    test(
      `a switchover ${what} is refused, before any vCPU starts`,
      { timeout: 30_000 },
      async () => {
        const { destination, port } = await listeningDestination([]);
        try {
          const sockets = await setUpByHand(port);
          const needed = new PageBitmap(pages ?? 4096);
          needed.setAll();
          const header = {
            mode: "postcopy",
            postcopy: true,
            stoppedAtWallMs: 0,
            rounds: 0,
            clock: clock ?? "0",
            lastProgressWallMs,
          };
          const devices = {
            uart: { ier: 0, lcr: 3, mcr: 0, scr: 0, dll: 0, dlm: 0, fcr: 0 },
            blk: blk === "valid" ? await validBlk() : blk,
          };
          const closed = framesUntilClose(sockets[1]);
          sockets[0].write(
            encodeSections(MSG_SWITCHOVER, [
              Buffer.from(JSON.stringify(header)),
              needed.toBytes(),
              Buffer.from(vcpus),
              Buffer.from(JSON.stringify(devices)),
            ]),
          );
          // The return path carries the refusal, and no RUNNING before it.
          assert.deepEqual(await closed, [MSG_REFUSE]);
          assert.equal(await destination.exited, 1);
          assert.match(String(destination.event("error")?.message), error);
        } finally {
          destination.kill();
        }
      },
    );
  }

  test(
    "a source with another pre-shared key fails the TLS handshake; its guest runs on",
    { timeout: 60_000 },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "faultline-psk-"));
      try {
        writeFileSync(join(dir, "a"), randomBytes(32).toString("hex"));
        writeFileSync(join(dir, "b"), randomBytes(32).toString("hex"));
        let destination: MigrationProcess | null = null;
        const run = await migrateLocally({
          cli: CLI,
          vmArgs: vmArgs(),
          listenArgs: ["--psk-file", join(dir, "a")],
          sendArgs: [
            "--psk-file",
            join(dir, "b"),
            "--mode",
            "precopy",
            "--warmup",
            "50",
            "--verify",
          ],
          during: async (_source, d) => {
            destination = d;
            await _source.exited;
            // The destination never saw a migration: it keeps listening until told to stop.
            d.kill();
          },
          timeoutMs: 50_000,
        });
        assert.ok(destination);
        assert.equal(run.sourceCode, 1, run.source.stderr);
        assert.match(String(run.source.event("error")?.message), /cannot connect to .*:\d+: /);
        assert.equal(run.source.event("source-guest")?.verified, true);
        assert.match(String(run.destination.event("note")?.text), /failed the TLS handshake/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  test(
    "a destination that fails on its own says why on every channel, so the source does not wait for it",
    { timeout: 30_000 },
    async () => {
      const destination = await MigrationDestination.listen({
        host: "127.0.0.1",
        port: 0,
        spec: VM_SPEC,
        faultMechanism: "userfault",
        // Should the test fail before the destination does, it gives up soon after.
        resumeTimeoutMs: 1000,
      });
      const result = destination.run();
      result.catch(() => undefined);
      // A failure of this side's own (not of the stream): it cannot install a page.
      (destination as unknown as { placePrecopy: () => void }).placePrecopy = () => {
        throw new Error("out of host memory");
      };
      const sockets = await setUpByHand(destination.port);
      try {
        const received = Promise.all(sockets.map(framesUntilClose));
        const batch = new PageBatchWriter(1);
        batch.addZeroPage(3);
        sockets[0].write(batch.take(MSG_PAGES));
        // The main channel failed first; the other two carry the reason.
        const [, returnPath, preempt] = await received;
        assert.deepEqual([returnPath, preempt], [[MSG_REFUSE], [MSG_REFUSE]]);
      } finally {
        for (const socket of sockets) socket.destroy();
      }
      await assert.rejects(result, /incoming migration failed here: .*out of host memory/);
    },
  );
});
