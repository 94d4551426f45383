import { PAGE_SIZE } from "../host/host-memory.js";
import { type Channel, type ChannelName, ConnectionLost } from "./channel.js";
import type { MigrationConfig, MigrationMode } from "./config.js";
import { type Channels, closeChannels, connectChannels } from "./connect.js";
import { collectGarbageNow } from "./collect-garbage.js";
import { DirtyLog } from "./dirty-log.js";
import { FaultLocality } from "./postcopy/fault-locality.js";
import { checkTransport, type Transport } from "./transport.js";
import { encodeVcpuStates, type MigratableVm } from "./machine/migratable-vm.js";
import { PageBitmap } from "./page-bitmap.js";
import { warmSwitchoverPath } from "./warm-switchover.js";
import {
  type MigrationProgress,
  type MigrationStatus,
  type SourceStats,
  wallNowMs,
} from "./stats.js";
import {
  messageName,
  MigrationProtocolError,
  MSG_COMPLETE,
  MSG_PAGE_REQUEST,
  MSG_PAGES,
  MSG_POSTCOPY_DONE,
  MSG_REFUSE,
  MSG_RESUME,
  MSG_ROUND_ACK,
  MSG_ROUND_END,
  MSG_RUNNING,
  MSG_SETUP,
  MSG_SETUP_ACK,
  MSG_SWITCHOVER,
} from "./wire/format.js";
import {
  decodeJson,
  decodePageList,
  decodeSections,
  encodeJson,
  encodeSections,
  PageBatchWriter,
  PageViewBatchWriter,
} from "./wire/messages.js";

export interface SourceOptions {
  host: string;
  port: number;
  mode: MigrationMode;
  /** Identifies this migration to the destination (and a resumed one as the same). */
  migrationId?: string;
  /** hybrid: switch to post-copy after this many pre-copy rounds (default 2). */
  hybridRounds?: number;
  /** precopy: stop and copy once a round leaves this few dirty pages (default 512, 2 MiB). */
  convergedPages?: number;
  /** precopy: stop and copy after this many rounds even if not converged (default 30). */
  maxRounds?: number;
  /**
   * Post-copy: for this many ms after it starts, and again after each
   * resume (default 200; 0: none), the background pusher sends at most
   * 100 MB/s. Right after the switchover every vCPU faults on nearly
   * every access; a bulk stream at full rate from the first moment takes
   * the cores those faults need, and the guest's first iterations stall
   * the longest (BENCHMARKS.md, run G).
   */
  postcopySlowStartMs?: number;
  /**
   * Post-copy: the background pusher's rate after its slow start, in
   * bytes/s (QEMU's max-postcopy-bandwidth; default 0, unlimited).
   * Requested pages are never held back. On a host whose cores the guest
   * shares with the migration, this trades how fast memory arrives against
   * how much CPU the guest keeps (BENCHMARKS.md, run I).
   */
  maxPostcopyBandwidth?: number;
  /**
   * How long the destination has to answer SETUP, or a resume, before the
   * source gives up on it (default 10 s): a peer that accepts connections
   * and says nothing is no faultline.
   */
  answerTimeoutMs?: number;
  /** TLS with a pre-shared key, or plain TCP (loopback only). */
  transport?: Transport;
  /** The guest's rate before the migration, as the caller measured it (default: since boot). */
  guestRateBefore?: number;
  onProgress?: (progress: MigrationProgress) => void;
  /**
   * Called when the source pauses after its switchover went out (the
   * connection broke, or a resume failed) and waits for a resume; whether
   * the destination said it runs the guest (else a cancel may run it here).
   */
  onPaused?: (reason: Error, guestRunsThere: boolean) => void;
}

/** A migration that failed; `refused` when the destination said why. */
export class MigrationError extends Error {
  constructor(
    message: string,
    readonly refused = false,
  ) {
    super(message);
    this.name = "MigrationError";
  }
}

/** A channel broke: before the switchover this fails the migration, after it pauses it. */
class ConnectionBroken extends Error {}

/** The operator gave up a paused migration before the destination ran the guest. */
class MigrationCancelled extends Error {
  constructor() {
    super("migration cancelled while paused, before the destination ran the guest");
  }
}

/** How long a source whose connection broke before RUNNING waits for the return path's word. */
const VERDICT_WAIT_MS = 5000;

/** Bytes the main stream may hold queued in this process before the pusher waits. */
const MAIN_BACKLOG_BYTES = 1 << 20;

/** Pages in a post-copy push frame. */
const PUSH_BATCH_PAGES = 16;

/**
 * The pusher's rate during its slow start (see `postcopySlowStartMs`):
 * 100 MB/s, about a tenth of what it sends at full rate here.
 */
const SLOW_START_BYTES_PER_MS = 100_000;
/** How long the destination has to answer SETUP or a resume unless told otherwise (ms). */
export const DEFAULT_ANSWER_TIMEOUT_MS = 10_000;

/** How long the slow start lasts unless told otherwise (ms). */
export const DEFAULT_POSTCOPY_SLOW_START_MS = 200;

export interface SwitchoverHeader {
  mode: MigrationMode;
  postcopy: boolean;
  stoppedAtWallMs: number;
  rounds: number;
  /** KVM_GET_CLOCK with the vCPUs stopped (decimal): guest time goes on from here. */
  clock: string;
  /** When each vCPU's last iteration ended here (wall-clock ms): the stall across the switchover starts there. */
  lastProgressWallMs: number[];
}

export interface RunningMessage {
  startedAtWallMs: number;
}

/** The destination's first word after a reconnect; a bitmap of the pages it holds follows. */
export interface ResumeMessage {
  switchedOver: boolean;
  /** When its vCPUs started (0 if they have not). */
  startedAtWallMs: number;
}

/**
 * The sending side of a migration (QEMU's migration thread with
 * ram_save_*): setup, pre-copy rounds from the dirty log, switchover, and
 * in post-copy a background pusher plus the answers to page requests on
 * the preempt channel; recovery when the connection breaks in post-copy.
 */
export class MigrationSource {
  private channels: Channels | null = null;
  private status: MigrationStatus = "setup";
  private readonly waiters = new Map<
    number,
    { resolve: (p: Buffer) => void; reject: (e: Error) => void }
  >();
  private readonly pages: number;
  /** Pages the destination does not hold valid yet (to send in this phase). */
  private readonly needed: PageBitmap;
  private readonly dirtyLog: DirtyLog;
  private readonly mainBatch = new PageBatchWriter();
  /**
   * Post-copy pages go out as views of the source's RAM, not copies: its
   * vCPUs are stopped for good once the switchover went out in post-copy.
   */
  private readonly preemptBatch = new PageViewBatchWriter();
  /**
   * Post-copy pushes go in smaller frames: a page request is answered
   * between two frames, and each frame is checksummed and installed in one
   * go on either side, so its size bounds how long a request waits.
   */
  private readonly pushBatch = new PageViewBatchWriter(PUSH_BATCH_PAGES);
  private readonly migrationId: string;
  private cursor = 0;
  private readonly faultLocality = new FaultLocality();
  private switchoverFrame: Buffer | null = null;
  /**
   * The pages sent after the destination acknowledged the last round:
   * pre-copy's final copy, or what the switchover left to post-copy. A
   * resume that finds the switchover lost starts over from them.
   */
  private readonly unacknowledged: PageBitmap;
  /** Resolved with where to reconnect, or null to cancel and run the guest on here. */
  private resumeWaiter: ((to: { host: string; port: number } | null) => void) | null = null;
  private bytesOfClosedChannels = 0;
  private pagesSent = 0;
  private postcopyPages = 0;
  private postcopyRequests = 0;
  private recoveries = 0;
  private round = 0;
  private running: RunningMessage | null = null;
  private postcopyDone = false;
  /** The destination's refusal, once one came. */
  private refusal: string | null = null;
  /** It refused after the switchover but before it started a vCPU: the guest is whole here. */
  private refusedBeforeRunning = false;
  /** Why fail() closed the channels: what the pre-copy loop, finding them closed, reports. */
  private closedFor: MigrationError | null = null;
  private roundAcked = 0;
  private roundAckWaiter: (() => void) | null = null;
  private vcpusRunningAtSwitchover = 0;

  constructor(
    private readonly vm: MigratableVm,
    private readonly config: MigrationConfig,
    private readonly options: SourceOptions,
  ) {
    this.pages = config.memBytes / PAGE_SIZE;
    this.needed = new PageBitmap(this.pages);
    this.unacknowledged = new PageBitmap(this.pages);
    this.dirtyLog = new DirtyLog(vm.vm, vm.region, this.pages);
    this.migrationId =
      options.migrationId ?? `${process.pid}-${Math.floor(wallNowMs()).toString(36)}`;
  }

  get currentStatus(): MigrationStatus {
    return this.status;
  }

  /** The whole migration; resolves once the destination holds every page. */
  async run(): Promise<SourceStats> {
    const o = this.options;
    const startedAt = performance.now();
    const guestRateBefore =
      o.guestRateBefore ?? (this.vm.progress() * 1000) / (startedAt - this.vm.startedAt);
    // Since boot, or since the caller started a window (a warm-up's second half).
    const maxStallBeforeMs = this.vm.maxStallMs();
    this.vm.closeStallWindow();
    // The bitmap passes after the switchover (progress counts what is left) would run cold there.
    warmSwitchoverPath(this.pages, this.vm.spec.vcpus);
    try {
      await this.connect(false);
    } catch (error) {
      this.abort((error as Error).message);
      throw new MigrationError((error as Error).message);
    }
    this.send(
      "main",
      encodeJson(MSG_SETUP, { config: this.config, mode: o.mode, pages: this.pages }),
    );
    try {
      await this.answer(MSG_SETUP_ACK);
    } catch (error) {
      this.abort((error as Error).message);
      throw error instanceof ConnectionBroken ? new MigrationError(error.message) : error;
    }
    const setupTimeMs = performance.now() - startedAt;
    let dirtyPageRate = 0;
    let precopyMaxStall = 0;
    let paused = false;
    let stoppedAtWallMs = 0;
    let postcopy = o.mode !== "precopy";
    try {
      if (o.mode === "postcopy") {
        this.needed.setAll();
      } else {
        this.status = "active";
        this.dirtyLog.start();
        this.needed.setAll();
        let previous = Infinity;
        for (;;) {
          this.round++;
          const roundStart = performance.now();
          await this.sendNeeded(this.channel("main"));
          const dirty = this.dirtyLog.sync(this.needed);
          dirtyPageRate = (dirty * 1000) / Math.max(1, performance.now() - roundStart);
          // Pre-copy: converged, or out of rounds. Hybrid: enough rounds, or
          // pre-copy stopped converging.
          const last =
            o.mode === "precopy"
              ? dirty <= (o.convergedPages ?? 512) || this.round >= (o.maxRounds ?? 30)
              : this.round >= (o.hybridRounds ?? 2) || dirty > 0.9 * previous;
          // Said, so that only after the last round a broken connection has the destination wait.
          this.send(
            "main",
            encodeJson(MSG_ROUND_END, { round: this.round, dirtyPages: dirty, last }),
          );
          this.progress();
          if (last) break;
          previous = dirty;
        }
      }
      // Garbage collected while the guest still runs, not inside the downtime
      // (and before the last harvest of the dirty log, which should be recent).
      collectGarbageNow();
      if (this.round > 0) {
        // Let the destination catch up first: pages still queued ahead of
        // the switchover would be installed inside the downtime.
        await this.roundAcknowledged(this.round);
        // Harvest what the vCPUs dirtied meanwhile while they still run: the
        // final read of the log, inside the downtime, then covers only an instant.
        this.dirtyLog.sync(this.needed);
      }
      // Switchover: stop the vCPUs and devices, the final dirty bitmap, their state.
      this.status = "device";
      precopyMaxStall = this.vm.maxStallMs();
      const saved = await this.vm.pause();
      paused = true;
      this.vcpusRunningAtSwitchover = saved.filter((v) => !v.done).length;
      // The downtime starts with the vCPUs stopped; stopping the devices is part of it.
      stoppedAtWallMs = wallNowMs();
      const devices = await this.vm.saveDevices();
      const guestClock = this.vm.vm.getClock();
      this.dirtyLog.sync(this.needed, false);
      this.unacknowledged.copyFrom(this.needed);
      if (o.mode === "precopy") await this.sendNeeded(this.channel("main"));
      postcopy = this.needed.any();
      const header: SwitchoverHeader = {
        mode: o.mode,
        postcopy,
        stoppedAtWallMs,
        rounds: this.round,
        clock: guestClock.toString(),
        lastProgressWallMs: this.vm.lastProgressWallMs(),
      };
      this.switchoverFrame = encodeSections(MSG_SWITCHOVER, [
        Buffer.from(JSON.stringify(header)),
        this.needed.toBytes(),
        encodeVcpuStates(saved),
        Buffer.from(JSON.stringify(devices)),
      ]);
      this.send("main", this.switchoverFrame);
      // Out of the downtime: the source's vCPUs stay stopped from here on.
      this.dirtyLog.stop();
      if (postcopy) this.status = "postcopy-active";
      this.progress();
    } catch (error) {
      if (!postcopy || this.switchoverFrame === null) {
        // Before the destination could run the guest: the source VM runs on.
        const cause = error instanceof ConnectionBroken ? (this.closedFor ?? error) : error;
        this.abort((cause as Error).message);
        if (paused) this.vm.resume();
        throw cause instanceof ConnectionBroken
          ? new MigrationError(`migration failed before switchover: ${cause.message}`)
          : cause;
      }
      throw error;
    }
    try {
      if (postcopy) await this.postcopy();
      else await this.untilRunning();
    } catch (error) {
      // Refused or cancelled before the destination ran the guest: it is whole here.
      if (!this.refusedBeforeRunning && !(error instanceof MigrationCancelled)) throw error;
      this.abort((error as Error).message);
      this.vm.resume();
      throw error instanceof MigrationCancelled
        ? new MigrationError(error.message)
        : new MigrationError(
            `${(error as Error).message} (before it ran the guest, which runs on here)`,
            true,
          );
    }
    const running = this.running;
    this.status = "completed";
    const channels = this.channels;
    this.send("main", encodeJson(MSG_COMPLETE, {}));
    const transferredBytes = this.transferredBytes();
    if (channels) {
      await channels.main.end();
      closeChannels(channels, null);
    }
    return {
      status: this.status,
      mode: o.mode,
      totalTimeMs: performance.now() - startedAt,
      downtimeMs: running ? Math.max(0, running.startedAtWallMs - stoppedAtWallMs) : 0,
      setupTimeMs,
      transferredBytes,
      precopyRounds: this.round,
      dirtyPageRate,
      postcopyRequests: this.postcopyRequests,
      pagesSent: this.pagesSent,
      postcopyPages: this.postcopyPages,
      recoveries: this.recoveries,
      vcpusRunningAtSwitchover: this.vcpusRunningAtSwitchover,
      guestRateBefore,
      maxStallBeforeMs,
      maxStallMs: precopyMaxStall,
    };
  }

  /**
   * Paused: reconnect (to the same or another address) and carry on.
   * Returns why not, or null.
   */
  resume(host: string, port: number): string | null {
    if (this.resumeWaiter === null) return `the migration is ${this.status}, not paused`;
    const waiter = this.resumeWaiter;
    this.resumeWaiter = null;
    waiter({ host, port });
    return null;
  }

  /**
   * Paused before the destination said it runs the guest: give up and run
   * it on here (QEMU's migrate_cancel). Only the operator can know that the
   * destination never started it (its host is gone, or it gave up waiting),
   * so this is never done unasked. Returns why not, or null.
   */
  cancel(): string | null {
    if (this.resumeWaiter === null) return `the migration is ${this.status}, not paused`;
    if (this.running !== null) {
      return "the guest runs on the destination: only a resume can finish the migration";
    }
    const waiter = this.resumeWaiter;
    this.resumeWaiter = null;
    waiter(null);
    return null;
  }

  // ------------------------------------------------------------------ post-copy

  private async postcopy(): Promise<void> {
    for (;;) {
      // A destination that completed while the connection was down says so right behind RESUME.
      const done = this.postcopyDone
        ? Promise.resolve(Buffer.alloc(0))
        : this.waitFor(MSG_POSTCOPY_DONE);
      let reason: Error;
      try {
        await Promise.all([this.push(), done]);
        return;
      } catch (error) {
        done.catch(() => undefined);
        if (!this.undecided(error)) throw error;
        if (this.beforeRunning()) await this.returnPathVerdict(done);
        reason = error as Error;
      }
      await this.pausedUntilReconnected(reason);
      this.status = "postcopy-active";
    }
  }

  /**
   * Pre-copy after the switchover went out: the guest runs on the
   * destination once RUNNING comes back. Until then resuming it here could
   * run it twice, so a broken connection pauses, as in post-copy.
   */
  private async untilRunning(): Promise<void> {
    while (this.running === null) {
      try {
        await this.waitFor(MSG_RUNNING);
      } catch (error) {
        if (!this.undecided(error)) throw error;
        await this.pausedUntilReconnected(error as Error);
        // Reconnected: the switchover is done or on its way again.
        this.status = "device";
      }
    }
  }

  /**
   * Whether the guest's fate is unknown after `error`: a broken connection,
   * or anything at all between the switchover and RUNNING short of the
   * return path's refusal (which the destination sends after any RUNNING).
   */
  private undecided(error: unknown): boolean {
    if (this.refusedBeforeRunning) return false;
    return error instanceof ConnectionBroken || this.beforeRunning();
  }

  /**
   * Keep every page and the state until `migrate send --resume` reconnects,
   * or `--cancel` gives up before the destination ran the guest.
   */
  private async pausedUntilReconnected(reason: Error): Promise<void> {
    for (;;) {
      this.status = "postcopy-paused";
      this.bytesOfClosedChannels += this.channelBytes();
      closeChannels(this.channels, null);
      this.channels = null;
      const to = await new Promise<{ host: string; port: number } | null>((resolve) => {
        this.resumeWaiter = resolve;
        this.options.onPaused?.(reason, this.running !== null);
      });
      if (to === null) throw new MigrationCancelled();
      this.status = "postcopy-recover";
      try {
        await this.reconnect(to.host, to.port);
        break;
      } catch (error) {
        // Refused: final once the guest runs there; before, only the operator may give it up.
        if (error instanceof MigrationError && this.running !== null) throw error;
        reason = error as Error;
      }
    }
    this.recoveries++;
  }

  private async reconnect(host: string, port: number): Promise<void> {
    this.options.host = host;
    this.options.port = port;
    await this.connect(true);
    const sections = decodeSections(await this.answer(MSG_RESUME), "RESUME");
    const info = decodeJson<ResumeMessage>(sections[0] ?? Buffer.alloc(0), "RESUME");
    if (typeof info.switchedOver !== "boolean") {
      throw new MigrationProtocolError("RESUME without whether the switchover arrived");
    }
    if (info.startedAtWallMs > 0) this.running ??= { startedAtWallMs: info.startedAtWallMs };
    this.keepGuestOnBadStream();
    this.cursor = 0;
    // Pre-copy that switched over: the guest runs there, whole.
    if (info.switchedOver && this.options.mode === "precopy") return;
    if (!info.switchedOver) {
      // The destination never got the switchover, nor maybe any page sent
      // since it acknowledged the last round: all of them again, pre-copy's
      // final copy before the switchover, post-copy's pages after it.
      this.needed.copyFrom(this.unacknowledged);
      if (this.options.mode === "precopy") await this.sendNeeded(this.channel("main"));
      this.send("main", this.switchoverFrame!);
      return;
    }
    // Whatever was in flight when the connection broke is sent again.
    if (sections[1]?.length !== Math.ceil(this.pages / 8)) {
      throw new MigrationProtocolError(
        `RESUME bitmap of ${sections[1]?.length ?? 0} bytes for ${this.pages} pages`,
      );
    }
    const received = PageBitmap.fromBytes(this.pages, sections[1]);
    this.needed.setAll();
    this.needed.andNot(received);
  }

  /** The background pusher: every needed page on the main stream, from near the last request on. */
  private async push(): Promise<void> {
    const main = this.channel("main");
    const startedAt = performance.now();
    const slowStartEnd =
      startedAt + (this.options.postcopySlowStartMs ?? DEFAULT_POSTCOPY_SLOW_START_MS);
    // Bytes per ms; 0 for no limit.
    const maxRate = (this.options.maxPostcopyBandwidth ?? 0) / 1000;
    const slowRate =
      maxRate > 0 ? Math.min(maxRate, SLOW_START_BYTES_PER_MS) : SLOW_START_BYTES_PER_MS;
    // The pace is kept from the start of each phase: the slow start, then the rest.
    let slow = true;
    let phaseStart = startedAt;
    let phaseBytes = 0;
    for (;;) {
      if (main.isClosed) throw new ConnectionBroken("main channel closed");
      if (main.backlog > MAIN_BACKLOG_BYTES) {
        await main.drained();
        continue;
      }
      const page = this.needed.nextSet(this.cursor);
      if (page < 0) break;
      this.cursor = page + 1;
      this.needed.clear(page);
      this.addPageView(this.pushBatch, page);
      this.postcopyPages++;
      if (this.pushBatch.full) {
        main.sendPieces(this.pushBatch.take(MSG_PAGES));
        phaseBytes += PUSH_BATCH_PAGES * PAGE_SIZE;
        const now = performance.now();
        if (slow && now >= slowStartEnd) {
          slow = false;
          phaseStart = now;
          phaseBytes = 0;
        }
        const rate = slow ? slowRate : maxRate;
        const ahead = rate > 0 ? phaseStart + phaseBytes / rate - now : 0;
        if (ahead >= 1) {
          await new Promise<void>((resolve) => setTimeout(resolve, ahead));
        } else {
          // Let requests in between batches: they must not wait behind the pusher.
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      }
    }
    if (this.pushBatch.count > 0) main.sendPieces(this.pushBatch.take(MSG_PAGES));
    this.progress();
  }

  /** Page requests from the return path: answered at once on the preempt channel. */
  private serveRequests(payload: Buffer): void {
    const pages = decodePageList(payload);
    const preempt = this.channel("preempt");
    this.postcopyRequests += pages.length;
    for (let i = 0; i < pages.length; i++) {
      const page = pages[i];
      if (page >= this.pages) throw new MigrationProtocolError(`page request for page ${page}`);
      // Sent even when the pusher sent it already: that copy may still sit
      // behind bulk data, and the destination drops whichever comes second.
      const pushed = !this.needed.test(page);
      if (!pushed) {
        this.needed.clear(page);
        this.postcopyPages++;
      }
      this.addPageView(this.preemptBatch, page);
      if (this.preemptBatch.full) preempt.sendPieces(this.preemptBatch.take(MSG_PAGES));
      // Near other recent faults, the guest is likely to want the neighbours
      // next: the pusher goes on from here. Faults on pages the pusher sent
      // (still on their way) tell only where the pusher is.
      if (!pushed && this.faultLocality.inRun(page)) this.cursor = page + 1;
    }
    if (this.preemptBatch.count > 0) preempt.sendPieces(this.preemptBatch.take(MSG_PAGES));
  }

  // ------------------------------------------------------------------ pages

  /** Send the batch's frame; its buffer goes back to the batch once the socket has it. */
  private sendBatch(channel: Channel, batch: PageBatchWriter): void {
    const frame = batch.take(MSG_PAGES);
    channel.send(frame, () => batch.recycle(frame));
  }

  private addPage(batch: PageBatchWriter, page: number): void {
    if (this.vm.pages.copyOut(page, batch.nextDataSlot())) batch.addPage(page);
    else batch.addZeroPage(page);
    this.pagesSent++;
  }

  private addPageView(batch: PageViewBatchWriter, page: number): void {
    const data = this.vm.pages.view(page);
    if (data) batch.addPage(page, data);
    else batch.addZeroPage(page);
    this.pagesSent++;
  }

  /** Send every needed page (clearing it) on `channel`, with backpressure. */
  private async sendNeeded(channel: Channel): Promise<void> {
    let page = this.needed.nextSet(0);
    let last = -1;
    while (page >= 0 && page > last) {
      if (channel.isClosed) throw new ConnectionBroken(`${channel.name} closed`);
      last = page;
      this.needed.clear(page);
      this.addPage(this.mainBatch, page);
      if (this.mainBatch.full) {
        this.sendBatch(channel, this.mainBatch);
        if (channel.backlog > MAIN_BACKLOG_BYTES) {
          this.progress();
          await channel.drained();
        }
      }
      page = this.needed.nextSet(page + 1);
    }
    if (this.mainBatch.count > 0) this.sendBatch(channel, this.mainBatch);
    await channel.drained();
    if (channel.isClosed) throw new ConnectionBroken(`${channel.name} closed`);
  }

  // ------------------------------------------------------------------ channels

  private async connect(resume: boolean): Promise<void> {
    const transport = this.options.transport ?? { psk: null };
    checkTransport(this.options.host, transport);
    const channels = await connectChannels(
      this.options.host,
      this.options.port,
      this.migrationId,
      resume,
      transport,
    );
    this.channels = channels;
    for (const [name, channel] of Object.entries(channels) as [ChannelName, Channel][]) {
      channel.onFrame = (type, payload) => this.onMessage(type, payload, name);
      channel.onClose = (reason) => {
        if (this.channels !== channels) return;
        this.broken(
          reason ?? new ConnectionLost(`${channel.name}: the destination closed the connection`),
          name,
        );
      };
    }
  }

  private channel(name: keyof Channels): Channel {
    if (!this.channels) throw new ConnectionBroken("not connected");
    return this.channels[name];
  }

  private send(name: keyof Channels, frame: Buffer): void {
    this.channel(name).send(frame);
  }

  private onMessage(type: number, payload: Buffer, from: ChannelName): void {
    if (type === MSG_PAGE_REQUEST) {
      this.serveRequests(payload);
      return;
    }
    if (type === MSG_ROUND_ACK) {
      const { round } = decodeJson<{ round: number }>(payload, "ROUND_ACK");
      // A round that is no number would leave the wait for it unanswered for ever.
      if (!Number.isSafeInteger(round)) {
        throw new MigrationProtocolError("ROUND_ACK without a round");
      }
      this.roundAcked = Math.max(this.roundAcked, round);
      this.roundAckWaiter?.();
      return;
    }
    if (type === MSG_REFUSE) {
      this.refused(String(decodeJson<{ reason: string }>(payload, "REFUSE").reason), from);
      return;
    }
    // Noted as it is read: whether the destination started the guest decides what a refusal means.
    if (type === MSG_RUNNING) {
      const running = decodeJson<RunningMessage>(payload, "RUNNING");
      if (!Number.isFinite(running.startedAtWallMs)) {
        throw new MigrationProtocolError("RUNNING without when the guest started");
      }
      this.running ??= running;
      this.keepGuestOnBadStream();
    }
    if (type === MSG_POSTCOPY_DONE) this.postcopyDone = true;
    const waiter = this.waiters.get(type);
    if (!waiter) {
      // Post-copy: nobody waits for RUNNING; POSTCOPY_DONE may come before its waiter (above).
      if (type === MSG_RUNNING || type === MSG_POSTCOPY_DONE) return;
      throw new MigrationProtocolError(`unexpected ${messageName(type)} from the destination`);
    }
    this.waiters.delete(type);
    waiter.resolve(Buffer.from(payload));
  }

  /** Resolves once the destination acknowledged `round` (rejects if the connection breaks). */
  private roundAcknowledged(round: number): Promise<void> {
    if (this.roundAcked >= round) return Promise.resolve();
    return new Promise((resolve, reject) => {
      // Any failure rejects every waiter; this one rides along as a fake type.
      this.waiters.set(-round, { resolve: () => undefined, reject });
      this.roundAckWaiter = () => {
        if (this.roundAcked < round) return;
        this.waiters.delete(-round);
        this.roundAckWaiter = null;
        resolve();
      };
    });
  }

  private waitFor(type: number): Promise<Buffer> {
    return new Promise((resolve, reject) => this.waiters.set(type, { resolve, reject }));
  }

  /** The destination's answer of `type`, within `answerTimeoutMs`. */
  private answer(type: number): Promise<Buffer> {
    const ms = this.options.answerTimeoutMs ?? DEFAULT_ANSWER_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(type);
        reject(
          new ConnectionBroken(
            `no ${messageName(type)} from ${this.options.host}:${this.options.port} within ${ms} ms ` +
              "(is a faultline migrate listen there?)",
          ),
        );
      }, ms);
      const settle =
        <T>(done: (value: T) => void) =>
        (value: T) => {
          clearTimeout(timer);
          done(value);
        };
      this.waiters.set(type, { resolve: settle(resolve), reject: settle(reject) });
    });
  }

  /**
   * The destination refused. Once the switchover went out, what to do
   * depends on whether it started the guest: it sends RUNNING and then any
   * REFUSE on the return path, in that order, so the return path's REFUSE
   * with no RUNNING before it means it never did. A REFUSE on another
   * channel waits for that verdict.
   */
  private refused(reason: string, from: ChannelName): void {
    this.refusal ??= reason;
    if (this.beforeRunning()) {
      if (from !== "return") return;
      this.refusedBeforeRunning = true;
    }
    this.fail(new MigrationError(`the destination refused the migration: ${this.refusal}`, true));
  }

  /** The switchover went out and RUNNING has not come back. */
  private beforeRunning(): boolean {
    return this.switchoverFrame !== null && this.running === null;
  }

  /**
   * Wait (VERDICT_WAIT_MS at most) for what the return path says: a refusal
   * that may come with a reset on the other channels (a peer closing with
   * unread data resets the connection, and a reset can drop what it sent)
   * still arrives whole there, since the source sends nothing on it. A
   * destination that lost a channel closes them all, so the wait is short
   * when there is no refusal.
   */
  private async returnPathVerdict(done: Promise<Buffer>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    // Whichever way `done` settles, the return path has had its say.
    const verdict = done.then(
      () => undefined,
      () => undefined,
    );
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, VERDICT_WAIT_MS)));
    try {
      await Promise.race([verdict, timeout]);
    } finally {
      clearTimeout(timer);
    }
    if (this.refusedBeforeRunning) {
      throw new MigrationError(`the destination refused the migration: ${this.refusal}`, true);
    }
  }

  /**
   * Once the guest runs on the destination in post-copy, a stream that
   * fails to decode is a broken connection (a pause), not a refusal: the
   * guest lives on there, and a resume sends again whatever was lost.
   */
  private keepGuestOnBadStream(): void {
    if (this.running === null || this.status === "completed" || !this.channels) return;
    for (const channel of Object.values(this.channels)) channel.refusesBadStream = false;
  }

  private broken(reason: Error, from: ChannelName): void {
    // Before RUNNING, the return path decides between a refusal and a break.
    if (this.beforeRunning() && from !== "return" && reason instanceof ConnectionLost) return;
    // Only the network breaking pauses a post-copy; a bad stream, a refusal
    // or a local failure ends it, unless the guest's fate is unknown (`undecided`).
    const error =
      this.refusal !== null
        ? new MigrationError(`the destination refused the migration: ${this.refusal}`, true)
        : reason instanceof ConnectionLost ||
            (reason instanceof MigrationProtocolError && this.running !== null)
          ? new ConnectionBroken(reason.message)
          : new MigrationError(reason.message);
    this.fail(error);
  }

  private fail(error: Error): void {
    const waiters = [...this.waiters.values()];
    this.waiters.clear();
    for (const w of waiters) w.reject(error);
    if (error instanceof MigrationError) {
      this.closedFor ??= error;
      closeChannels(this.channels, null);
    }
  }

  /**
   * Give up before switchover: dirty logging off, and every connection
   * closed with a REFUSE saying why, so that the destination fails at once
   * rather than wait for a resume (it cannot tell a source that gave up
   * from a network break while the switchover was on its way).
   */
  private abort(why: string): void {
    this.status = "failed";
    this.dirtyLog.stop();
    const channels = this.channels;
    this.channels = null;
    if (!channels) return;
    for (const channel of Object.values(channels)) {
      channel.refuse(new MigrationProtocolError(why));
    }
  }

  private channelBytes(): number {
    if (!this.channels) return 0;
    return Object.values(this.channels).reduce((sum, c) => sum + c.bytesSent, 0);
  }

  private transferredBytes(): number {
    return this.bytesOfClosedChannels + this.channelBytes();
  }

  private progress(): void {
    this.options.onProgress?.({
      status: this.status,
      round: this.round,
      pagesSent: this.pagesSent,
      pagesTotal: this.pages,
      remaining: this.needed.count(),
      transferredBytes: this.transferredBytes(),
    });
  }
}
