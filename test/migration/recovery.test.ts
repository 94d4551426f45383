import assert from "node:assert/strict";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  type MigrationEvent,
  migrateLocally,
  MigrationProcess,
} from "../../src/migration/local-pair.js";
import { MSG_RESUME, MSG_RUNNING, MSG_SWITCHOVER } from "../../src/migration/wire/format.js";
import { encodeSections } from "../../src/migration/wire/messages.js";
import { type StreamFault, TcpProxy } from "../support/tcp-proxy.js";
import { CLI, vmArgs } from "./support.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `faultline migrate send --resume`: the paused source at `control` reconnects through `port`. */
async function resumeSource(control: string, port: number): Promise<void> {
  const resume = new MigrationProcess("resume", CLI, [
    "send",
    "--resume",
    "--control",
    control,
    "--to",
    `127.0.0.1:${port}`,
  ]);
  assert.equal(await resume.exited, 0, resume.stderr);
}

/** `faultline migrate send --cancel`: its exit code and what it wrote to stderr. */
async function cancelSource(control: string): Promise<{ code: number | null; stderr: string }> {
  const cancel = new MigrationProcess("cancel", CLI, ["send", "--cancel", "--control", control]);
  return { code: await cancel.exited, stderr: cancel.stderr };
}

type EventMatch = (event: MigrationEvent) => boolean;

/**
 * A post-copy of 64 MiB through a proxy that strikes `fault` (and breaks
 * every connection once the destination emits an event `breakWhen`
 * matches); the source pauses once and is resumed, and both ends finish,
 * the guest verified. Returns the destination's notes.
 */
async function resumedOnceAfter(
  fault: StreamFault,
  {
    iterations = 6000,
    breakWhen,
    mode = "postcopy",
    whilePaused,
  }: {
    iterations?: number;
    breakWhen?: EventMatch;
    mode?: "postcopy" | "precopy";
    /** Run while the source is paused, before the resume. */
    whilePaused?: (control: string, destination: MigrationProcess) => Promise<void>;
  } = {},
): Promise<string> {
  const control = join(tmpdir(), `faultline-test-${process.pid}-${Date.now()}-once.sock`);
  let proxy: TcpProxy | null = null;
  const run = await migrateLocally({
    cli: CLI,
    vmArgs: vmArgs({ mem: "64M", iterations }),
    listenArgs: ["--verify"],
    // Pre-copy: 3 rounds, for this guest never converges.
    sendArgs: ["--mode", mode, "--max-rounds", "3", "--warmup", "50", "--control", control],
    route: async (port) => {
      proxy = await TcpProxy.start({ host: "127.0.0.1", port });
      proxy.injectFault(fault);
      return { host: "127.0.0.1", port: proxy.port };
    },
    during: async (source, destination) => {
      if (breakWhen) {
        while (!destination.events.some(breakWhen)) {
          if (destination.child.exitCode !== null) return;
          await sleep(5);
        }
        proxy!.cutAll();
      }
      await source.waitFor("paused", 20_000);
      await whilePaused?.(control, destination);
      await resumeSource(control, proxy!.port);
    },
    timeoutMs: 80_000,
  });
  (proxy as TcpProxy | null)?.close();
  assert.equal(run.destinationCode, 0, run.destination.stderr);
  assert.equal(run.sourceCode, 0, run.source.stderr);
  const stats = run.source.event("result")!.stats as { recoveries: number };
  assert.equal(stats.recoveries, 1);
  assert.equal(run.destination.event("result")!.verified, true);
  return run.destination.events
    .filter((e) => e.event === "note")
    .map((e) => String(e.text))
    .join("\n");
}

/**
 * Post-copy recovery: the test breaks every connection (through a proxy)
 * at random points of post-copy, both sides pause and keep their state,
 * and `faultline migrate send --resume` reconnects the paused source; the
 * guest, which ran on the destination all along, finishes with the
 * checksums it computes without migration: no page lost, none applied twice.
 */
describe("post-copy recovery", () => {
  for (const mechanism of ["userfault", "uffd"]) {
    test(
      `${mechanism}: connections cut twice at random points of post-copy, resumed: same checksums`,
      { timeout: 90_000 },
      async (t) => {
        const control = join(tmpdir(), `faultline-test-${process.pid}-${Date.now()}.sock`);
        let proxy: TcpProxy | null = null;
        const cuts: number[] = [];
        const seed = Date.now() % 1000;
        const run = await migrateLocally({
          cli: CLI,
          // 64 MiB: post-copy lasts long enough to be cut twice.
          vmArgs: vmArgs({
            mem: "64M",
            iterations: 6000,
            "fault-mechanism": mechanism,
            backing: mechanism === "uffd" ? "shmem" : "guest_memfd",
          }),
          listenArgs: ["--verify"],
          sendArgs: ["--mode", "postcopy", "--warmup", "50", "--control", control],
          route: async (port) => {
            proxy = await TcpProxy.start({ host: "127.0.0.1", port });
            return { host: "127.0.0.1", port: proxy.port };
          },
          during: async (source, destination) => {
            const inPostcopy = (e: MigrationEvent) =>
              e.event === "progress" && e.status === "postcopy-active";
            while (!destination.events.some(inPostcopy)) {
              await sleep(2);
              if (destination.event("error") || destination.child.exitCode !== null) return;
            }
            for (let i = 1; i <= 2; i++) {
              await sleep(((seed * i * 7919) % 25) + 1);
              if (source.event("result")) break;
              cuts.push(proxy!.cutAll());
              await source.waitFor("paused", 20_000, i);
              await resumeSource(control, proxy!.port);
            }
          },
          timeoutMs: 80_000,
        });
        (proxy as TcpProxy | null)?.close();
        assert.equal(run.destinationCode, 0, run.destination.stderr);
        assert.equal(run.sourceCode, 0, run.source.stderr);
        assert.ok(cuts.length >= 1, "post-copy ended before the first cut");
        const stats = run.source.event("result")!.stats as { recoveries: number };
        assert.equal(stats.recoveries, cuts.length);
        t.diagnostic(`connections cut ${cuts.length} times (${cuts.join(", ")} connections each)`);
        const result = run.destination.event("result")!;
        assert.equal(result.verified, true, JSON.stringify(result));
      },
    );
  }
  test(
    "a break while the switchover is on its way: the destination waits, the resumed source sends it again",
    { timeout: 90_000 },
    async () => {
      // Inside the SWITCHOVER: the source has sent it and stopped its
      // guest, the destination never sees it.
      const notes = await resumedOnceAfter({
        channel: "main",
        frame: MSG_SWITCHOVER,
        at: 100,
        kind: "cut",
      });
      assert.match(notes, /before the switchover arrived\); waiting for the source/);
      assert.match(notes, /resumed before the switchover arrived/);
    },
  );

  test(
    "RUNNING cut off with the connection: the source pauses; resumed, it learns the guest runs there and sends the rest",
    { timeout: 90_000 },
    async () => {
      const notes = await resumedOnceAfter({
        channel: "return",
        direction: "to-source",
        frame: MSG_RUNNING,
        at: 0,
        kind: "cut",
      });
      assert.match(notes, /post-copy resumed: \d+ pages to come/);
    },
  );

  test(
    "a corrupt frame once the guest runs on the destination: dropped, not refused; resumed: same checksums",
    { timeout: 90_000 },
    async () => {
      // Past the switchover (about 7 KB for 64 MiB), among the pushed pages.
      const at = 200_000 + Math.floor(Math.random() * 2_000_000);
      const notes = await resumedOnceAfter(
        { channel: "main", at, kind: "corrupt" },
        {
          // The destination said it runs the guest: giving it up here is refused.
          whilePaused: async (control) => {
            const cancel = await cancelSource(control);
            assert.equal(cancel.code, 2);
            assert.match(cancel.stderr, /cancel refused: the guest runs on the destination/);
          },
        },
      );
      assert.match(
        notes,
        /post-copy paused \(main channel corrupt: .*; the connection is dropped\)/,
        `byte ${at}`,
      );
    },
  );

  test(
    "the connection lost after post-copy completed, before the source heard it: the resumed source is told so",
    { timeout: 90_000 },
    async () => {
      // Past SETUP_ACK and RUNNING nothing reaches the source on the return
      // path: the destination completes on pushed pages alone, and its
      // POSTCOPY_DONE is lost with the connection. Its guest runs on long
      // enough for the resume to find it.
      const notes = await resumedOnceAfter(
        { channel: "return", direction: "to-source", at: 100, kind: "hold" },
        {
          iterations: 30_000,
          breakWhen: (e) => e.event === "progress" && e.status === "completed",
        },
      );
      assert.match(notes, /the source came back after post-copy completed: told it so/);
    },
  );

  test(
    "a corrupt page request on its way to the source: dropped there, not refused; resumed: same checksums",
    { timeout: 90_000 },
    async () => {
      // Past SETUP_ACK and RUNNING (under 100 bytes), among the first page
      // requests (a 64 MiB post-copy may send well under 1 KB of them).
      const at = 100 + Math.floor(Math.random() * 300);
      const notes = await resumedOnceAfter({
        channel: "return",
        direction: "to-source",
        at,
        kind: "corrupt",
      });
      assert.match(notes, /post-copy paused .*waiting for the source to resume/, `byte ${at}`);
    },
  );
});

/**
 * Pre-copy once the switchover went out: until RUNNING comes back, the
 * guest may run on the destination, so a source that loses the connection
 * never runs it again on its own. It pauses as in post-copy; a resume
 * finishes the migration, and `--cancel` gives it up only when asked.
 */
describe("pre-copy switchover recovery", () => {
  test(
    "RUNNING lost with the connection: the source pauses instead of running the guest again; " +
      "the destination, its guest finished, waits for it; resumed, it is told the guest ran there",
    { timeout: 90_000 },
    async () => {
      const finished = /the guest finished; waiting up to \d+ ms for the source to hear/;
      const notes = await resumedOnceAfter(
        { channel: "return", direction: "to-source", frame: MSG_RUNNING, at: 0, kind: "hold" },
        {
          mode: "precopy",
          breakWhen: (e) => e.event === "progress" && e.status === "completed",
          // The resume comes only once the guest finished on the destination.
          whilePaused: async (_control, destination) => {
            while (
              !destination.events.some((e) => e.event === "note" && finished.test(String(e.text)))
            ) {
              assert.equal(destination.child.exitCode, null, "the destination exited");
              await sleep(5);
            }
          },
        },
      );
      assert.match(notes, /the source came back after the migration completed: told it so/);
    },
  );

  test(
    "a break while the switchover is on its way: the destination waits, the resumed source sends its final pages and the switchover again",
    { timeout: 90_000 },
    async () => {
      const notes = await resumedOnceAfter(
        { channel: "main", frame: MSG_SWITCHOVER, at: 100, kind: "cut" },
        { mode: "precopy" },
      );
      assert.match(notes, /before the switchover arrived\); waiting for the source/);
      assert.match(notes, /resumed before the switchover arrived/);
    },
  );

  test(
    "the switchover lost and the destination gone: resumes that fail leave the source paused; --cancel runs the guest on there",
    { timeout: 90_000 },
    async () => {
      const control = join(tmpdir(), `faultline-test-${process.pid}-${Date.now()}-cancel.sock`);
      let proxy: TcpProxy | null = null;
      const run = await migrateLocally({
        cli: CLI,
        vmArgs: vmArgs({ mem: "64M" }),
        listenArgs: ["--resume-timeout", "300"],
        sendArgs: [
          ...["--mode", "precopy", "--max-rounds", "3", "--warmup", "50"],
          ...["--control", control, "--verify", "--answer-timeout", "500"],
        ],
        route: async (port) => {
          proxy = await TcpProxy.start({ host: "127.0.0.1", port });
          proxy.injectFault({ channel: "main", frame: MSG_SWITCHOVER, at: 100, kind: "cut" });
          return { host: "127.0.0.1", port: proxy.port };
        },
        during: async (source, destination) => {
          await source.waitFor("paused", 20_000);
          assert.equal(source.event("paused")!.guestRunsThere, false);
          // The destination gives up waiting for its source and exits.
          await destination.exited;
          // A resume that reaches no destination, then one that reaches a
          // peer that never answers: still paused after each.
          await resumeSource(control, proxy!.port);
          await source.waitFor("paused", 20_000, 2);
          const silent = createServer((socket) =>
            socket.on("data", () => undefined).on("error", () => undefined),
          );
          await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
          await resumeSource(control, (silent.address() as { port: number }).port);
          const paused = await source.waitFor("paused", 20_000, 3);
          silent.close();
          assert.match(String(paused.reason), /no RESUME from 127\.0\.0\.1:\d+ within 500 ms/);
          // And one that answers with a RESUME that says nothing.
          const garbled = createServer((socket) =>
            socket
              .on("error", () => undefined)
              .end(encodeSections(MSG_RESUME, [Buffer.from("[1]")])),
          );
          await new Promise<void>((resolve) => garbled.listen(0, "127.0.0.1", resolve));
          await resumeSource(control, (garbled.address() as { port: number }).port);
          const pausedAgain = await source.waitFor("paused", 20_000, 4);
          garbled.close();
          assert.match(String(pausedAgain.reason), /malformed RESUME message: not an object/);
          const cancel = await cancelSource(control);
          assert.equal(cancel.code, 0, cancel.stderr);
        },
        timeoutMs: 80_000,
      });
      (proxy as TcpProxy | null)?.close();
      assert.equal(run.destinationCode, 1);
      assert.match(
        String(run.destination.event("error")?.message),
        /, and the source did not come back within 300 ms/,
      );
      assert.equal(run.sourceCode, 1);
      assert.match(
        String(run.source.event("error")?.message),
        /migration cancelled while paused, before the destination ran the guest/,
      );
      const guest = run.source.event("source-guest");
      assert.ok(guest, run.source.stderr);
      assert.equal(guest.verified, true, JSON.stringify(guest));
    },
  );

  test(
    "connections cut at a random moment of a pre-copy (8 runs, 5 near the switchover): the guest finishes exactly once, on one side, verified",
    { timeout: 180_000 },
    async (t) => {
      const outcomes: string[] = [];
      for (let run = 0; run < 8; run++) {
        const control = join(tmpdir(), `faultline-test-${process.pid}-${Date.now()}-random.sock`);
        // Anywhere from setup to after the end (the migration takes about
        // 1 s), or within 80 ms of the source stopping its guest.
        const nearSwitchover = run >= 3;
        const cutAfterMs = Math.floor(Math.random() * (nearSwitchover ? 80 : 1200));
        let proxy: TcpProxy | null = null;
        let resumes = 0;
        const result = await migrateLocally({
          cli: CLI,
          vmArgs: vmArgs({ mem: "64M" }),
          listenArgs: ["--verify", "--resume-timeout", "1000"],
          sendArgs: [
            ...["--mode", "precopy", "--max-rounds", "3", "--warmup", "50"],
            ...["--control", control, "--verify"],
          ],
          route: async (port) => {
            proxy = await TcpProxy.start({ host: "127.0.0.1", port });
            return { host: "127.0.0.1", port: proxy.port };
          },
          during: async (source) => {
            if (nearSwitchover) {
              const stopped = (e: MigrationEvent) =>
                e.event === "progress" && e.status === "device";
              while (!source.events.some(stopped) && source.child.exitCode === null) {
                await sleep(1);
              }
            } else await source.waitFor("progress", 20_000);
            await sleep(cutAfterMs);
            proxy!.cutAll();
            // Each pause is resumed, through a proxy that cuts no more.
            for (;;) {
              const paused = source.events.filter((e) => e.event === "paused").length;
              if (source.child.exitCode !== null) break;
              if (paused > resumes) {
                resumes++;
                await resumeSource(control, proxy!.port);
              }
              await sleep(5);
            }
          },
          timeoutMs: 60_000,
        });
        (proxy as TcpProxy | null)?.close();
        const here = result.source.event("source-guest");
        const there = result.destination.event("result");
        const where = `run ${run}, cut ${cutAfterMs} ms after ${nearSwitchover ? "the stop" : "setup"}`;
        assert.ok(!(here && there), `${where}: the guest ran on both sides`);
        if (there) {
          assert.equal(result.destinationCode, 0, `${where}: ${result.destination.stderr}`);
          assert.equal(result.sourceCode, 0, `${where}: ${result.source.stderr}`);
          assert.equal(there.verified, true, `${where}: ${JSON.stringify(there)}`);
          outcomes.push(`${where}: migrated${resumes > 0 ? ` after ${resumes} resume(s)` : ""}`);
        } else {
          assert.ok(here, `${where}: the guest finished nowhere: ${result.source.stderr}`);
          assert.equal(here.verified, true, `${where}: ${JSON.stringify(here)}`);
          assert.equal(result.sourceCode, 1);
          assert.equal(result.destinationCode, 1);
          assert.equal(resumes, 0, `${where}: a source that paused ran its guest on`);
          outcomes.push(`${where}: stayed on the source`);
        }
      }
      t.diagnostic(outcomes.join("; "));
    },
  );
});
