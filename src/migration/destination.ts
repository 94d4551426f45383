import { createServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { PAGE_SIZE } from "../host/host-memory.js";
import { Channel, CHANNEL_NAMES, type ChannelName, ConnectionLost } from "./channel.js";
import { collectGarbageNow } from "./collect-garbage.js";
import {
  configDifferences,
  configProblems,
  type FaultMechanism,
  type MigrationConfig,
  type MigrationMode,
} from "./config.js";
import type { Channels, Hello } from "./connect.js";
import { FaultRing } from "./fault-ring.js";
import {
  decodeVcpuStates,
  type DeviceStates,
  type SavedVcpu,
  MigratableVm,
  type MigratableVmSpec,
} from "./machine/migratable-vm.js";
import { PageBitmap } from "./page-bitmap.js";
import { warmSwitchoverPath } from "./warm-switchover.js";
import type { PostcopyMemory } from "./postcopy/postcopy-memory.js";
import { checkTransport, tlsServerOptions, type Transport } from "./transport.js";
import { ThreadBlocktime } from "./postcopy/thread-blocktime.js";
import { UffdMemory } from "./postcopy/uffd-memory.js";
import { UserfaultMemory } from "./postcopy/userfault-memory.js";
import { MigrationError, type ResumeMessage, type SwitchoverHeader } from "./source.js";
import {
  type DestinationStats,
  type MigrationProgress,
  type MigrationStatus,
  wallNowMs,
} from "./stats.js";
import {
  messageName,
  MigrationProtocolError,
  MSG_COMPLETE,
  MSG_HELLO,
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
  StreamTruncated,
} from "./wire/format.js";
import {
  decodeJson,
  decodeSections,
  encodeJson,
  encodePageList,
  encodeSections,
  forEachPage,
} from "./wire/messages.js";

export interface DestinationOptions {
  host: string;
  port: number;
  spec: MigratableVmSpec;
  faultMechanism: FaultMechanism;
  /** TLS with a pre-shared key, or plain TCP (loopback only). */
  transport?: Transport;
  /** KVM Userfault with USERFAULT_ASYNC_ALL: vCPU faults arrive as asynchronous faults too. */
  asyncAll?: boolean;
  /**
   * Allocate and commit all of guest RAM before listening (QEMU's
   * prealloc=on). KVM Userfault only: userfaultfd's MISSING faults need the
   * pages absent, which is why QEMU discards preallocated RAM before post-copy.
   */
  prealloc?: boolean;
  /**
   * How long to wait for the source to come back after the connection
   * broke before the switchover arrived, and, once the guest finished here,
   * for a source that has not yet said it heard the migration completed
   * (default 60 s).
   */
  resumeTimeoutMs?: number;
  onProgress?: (progress: MigrationProgress) => void;
  /** Notes worth a line: a connection refused, the migration paused or resumed. */
  onNote?: (text: string) => void;
}

/** How long a destination waits for a source that lost its connection, unless told (ms). */
export const DEFAULT_RESUME_TIMEOUT_MS = 60_000;

export interface DestinationResult {
  stats: DestinationStats;
  /** The migrated guest's result: every vCPU's checksum. */
  checksums: number[];
}

/**
 * The receiving side of a migration (QEMU's -incoming with its
 * postcopy-ram listen thread): it listens, checks the configuration, takes
 * pre-copied pages, starts the vCPUs at switchover, then in post-copy
 * requests missing pages as vCPUs and the hypervisor fault on them and
 * installs whatever arrives, first come first installed, each page once.
 * A broken connection pauses post-copy; the source reconnects with the same
 * migration id and the destination tells it which pages it holds.
 */
export class MigrationDestination {
  private readonly server: Server;
  private channels: Partial<Channels> = {};
  /** Channels closed so far: the process lingers until their sockets are (see Channel.refuse). */
  private readonly closing: Promise<void>[] = [];
  private migrationId: string | null = null;
  private resuming = false;
  private status: MigrationStatus = "setup";
  private readonly pages: number;
  private readonly precopied: PageBitmap;
  private readonly ring: FaultRing;
  private memory: PostcopyMemory | null = null;
  private pendingSetup: Buffer | null = null;
  private receivedPages = 0;
  private switchedOver = false;
  /** The mode SETUP named (null before it). */
  private mode: MigrationMode | null = null;
  /** Acknowledged the pre-copy round that the source said its switchover follows. */
  private lastRoundAcknowledged = false;
  /** Fails the migration if a source that may have sent its switchover does not come back. */
  private resumeTimer: NodeJS.Timeout | null = null;
  private startedAtWallMs = 0;
  private startProgress = 0;
  private postcopyStartedAt = 0;
  private postcopyEndedAt = 0;
  private progressAtPostcopyEnd = 0;
  private postcopyBytes = 0;
  private releasedCleanPages = 0;
  private asyncFaults = 0;
  private duplicatePages = 0;
  private readonly requestBuffer: number[] = [];
  /** Asynchronous faults waiting for their page: page → performance.now() when read. */
  private readonly asyncWaits = new Map<number, number>();
  private readonly threadBlocktime: ThreadBlocktime;
  private settle!: { resolve: () => void; reject: (error: Error) => void };
  private readonly migrated: Promise<void>;
  /** The source said COMPLETE: it knows the guest runs here and needs nothing more. */
  private sourceReleased = false;
  private onSourceReleased: (() => void) | null = null;

  private constructor(
    private readonly vm: MigratableVm,
    private readonly options: DestinationOptions,
  ) {
    this.pages = options.spec.memBytes / PAGE_SIZE;
    this.precopied = new PageBitmap(this.pages);
    this.ring = FaultRing.create(this.pages, options.spec.vcpus);
    this.threadBlocktime = new ThreadBlocktime(options.spec.vcpus);
    this.migrated = new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    this.migrated.catch(() => undefined);
    const transport = options.transport ?? { psk: null };
    checkTransport(options.host, transport);
    const accept = (socket: Socket) => this.accept(new Channel("incoming", socket));
    this.server = transport.psk
      ? createTlsServer(tlsServerOptions(transport.psk), accept).on("tlsClientError", (error) =>
          options.onNote?.(`refused a connection that failed the TLS handshake: ${error.message}`),
        )
      : // Paused, so that the channel can have it read into its own buffers from the first byte.
        createServer({ pauseOnConnect: true }, accept);
  }

  /** Create the empty VM, its vCPU threads, and listen. */
  static async listen(options: DestinationOptions): Promise<MigrationDestination> {
    if (options.prealloc && options.faultMechanism !== "userfault") {
      throw new MigrationError(
        "--prealloc needs the userfault fault mechanism: userfaultfd's MISSING faults need " +
          "guest pages absent (QEMU discards preallocated RAM before post-copy for this reason)",
      );
    }
    const vm = MigratableVm.incoming(options.spec);
    try {
      if (options.prealloc) vm.pages.preallocate();
      const destination = new MigrationDestination(vm, options);
      await vm.prepare();
      await new Promise<void>((resolve, reject) => {
        destination.server.once("error", reject);
        destination.server.listen(options.port, options.host, () => resolve());
      });
      return destination;
    } catch (error) {
      // Its vCPU threads would keep the process alive.
      await vm.close();
      throw error;
    }
  }

  get port(): number {
    const address = this.server.address();
    return typeof address === "object" && address ? address.port : this.options.port;
  }

  get currentStatus(): MigrationStatus {
    return this.status;
  }

  private get config(): MigrationConfig {
    return this.vm.config(this.options.faultMechanism);
  }

  /**
   * Resolves once the migration is complete and the guest has finished its
   * workload here; rejects when the migration is refused or fails.
   */
  async run(): Promise<DestinationResult> {
    try {
      await this.migrated;
      const checksums = await this.vm.finished();
      await this.sourceHeard();
      return { stats: this.stats(checksums), checksums };
    } finally {
      this.server.close();
      // Half-close: a reset now could make the source's kernel drop our last
      // messages (RUNNING, POSTCOPY_DONE) before the source has read them.
      for (const name of CHANNEL_NAMES) void this.channels[name]?.end();
      await this.vm.close();
      await Promise.all(this.closing);
    }
  }

  /**
   * Stay reachable until the source said COMPLETE: a source whose
   * connection broke before RUNNING or POSTCOPY_DONE reached it waits for a
   * resume to learn that the guest runs here, and must find this side. A
   * source that never comes back is given --resume-timeout.
   */
  private async sourceHeard(): Promise<void> {
    if (this.sourceReleased) return;
    const timeoutMs = this.options.resumeTimeoutMs ?? DEFAULT_RESUME_TIMEOUT_MS;
    this.options.onNote?.(
      `the guest finished; waiting up to ${timeoutMs} ms for the source to hear that the migration completed`,
    );
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.onSourceReleased = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  // ------------------------------------------------------------------ connections

  private accept(channel: Channel): void {
    channel.onFrame = (type, payload) => {
      if (type !== MSG_HELLO) {
        throw new MigrationProtocolError(`expected HELLO first, got ${messageName(type)}`);
      }
      this.attach(channel, decodeJson<Hello>(payload, "HELLO"));
    };
    channel.onClose = (reason) => {
      // A connection that never said who it is: a stream that is no migration of ours.
      if (reason instanceof MigrationProtocolError && this.migrationId === null) {
        this.fail(new MigrationError(`incoming migration refused: ${reason.message}`, true));
      }
    };
  }

  private attach(channel: Channel, hello: Hello): void {
    const refuse = (reason: string) => channel.refuse(new MigrationProtocolError(reason));
    if (!CHANNEL_NAMES.includes(hello.channel)) return refuse(`unknown channel ${hello.channel}`);
    if (this.migrationId === null) {
      if (hello.resume) return refuse("there is no paused migration to resume here");
      this.migrationId = hello.migration;
    } else if (hello.migration !== this.migrationId) {
      return refuse(`busy with migration ${this.migrationId}`);
    } else if (hello.resume) {
      if (
        this.status === "postcopy-active" ||
        (this.status === "active" && this.mayHaveSwitchover())
      ) {
        // The source saw the connection break before this side did.
        this.pause("the source reconnected");
      }
      // The guest runs here (in post-copy, on every page): the source missed only RUNNING or POSTCOPY_DONE.
      const finished = this.status === "completed" && this.switchedOver;
      if (!finished && this.status !== "postcopy-paused" && this.status !== "postcopy-recover") {
        return refuse(`migration ${hello.migration} is ${this.status}, not paused`);
      }
      if (!finished) this.status = "postcopy-recover";
      this.resuming = true;
    }
    const existing = this.channels[hello.channel];
    if (existing && !existing.isClosed) return refuse(`a second ${hello.channel} channel`);
    channel.name = `${hello.channel} channel`;
    this.channels[hello.channel] = channel;
    channel.onFrame = (type, payload) => this.onMessage(hello.channel, type, payload);
    channel.onClose = (reason) => this.onChannelClosed(channel, reason);
    if (CHANNEL_NAMES.every((name) => this.channels[name] && !this.channels[name]!.isClosed)) {
      if (this.resuming) {
        this.resuming = false;
        this.resumed();
      } else if (this.pendingSetup) {
        const setup = this.pendingSetup;
        this.pendingSetup = null;
        this.setup(setup);
      }
    }
  }

  private onChannelClosed(channel: Channel, reason: Error | null): void {
    // Paused: the channels that close now are the broken ones, already let go.
    if (
      this.status === "completed" ||
      this.status === "failed" ||
      this.status === "postcopy-paused"
    ) {
      return;
    }
    const why = reason?.message ?? `${channel.name} closed`;
    if (reason instanceof MigrationProtocolError && this.switchedOver && this.memory) {
      // The guest runs here: a bad frame costs a resume, not the guest.
      this.pause(`${why}; the connection is dropped`);
      return;
    }
    // A stream cut short may be the network breaking, not a bad peer.
    const lost =
      reason === null || reason instanceof ConnectionLost || reason instanceof StreamTruncated;
    if (!lost || (reason instanceof StreamTruncated && !this.mayHaveSwitchover())) {
      // A bad stream, or this side failed handling a message: never a pause,
      // never a hang. A refusal goes out on every channel, so that the
      // source, whichever socket it reads first, learns why.
      if (reason instanceof MigrationProtocolError) {
        this.fail(new MigrationError(`incoming migration refused: ${why}`, true), why);
      } else {
        // Said too: a source left to think the network broke would wait
        // for a resume that cannot come.
        this.fail(
          new MigrationError(`incoming migration failed here: ${why}`),
          `it failed: ${why}`,
        );
      }
      return;
    }
    if (this.switchedOver) {
      if (this.status === "postcopy-active" || this.status === "postcopy-recover") this.pause(why);
      return;
    }
    if (this.mayHaveSwitchover()) {
      // The source may have sent its switchover and stopped its guest: the
      // guest then lives on only in what the source sends, so wait for it
      // (a resume sends the switchover again). A source that gave up says
      // so with a REFUSE instead, and runs its guest on.
      this.pause(`${why}, before the switchover arrived`);
      const timeoutMs = this.options.resumeTimeoutMs ?? DEFAULT_RESUME_TIMEOUT_MS;
      if (this.resumeTimer) clearTimeout(this.resumeTimer);
      this.resumeTimer = setTimeout(() => {
        if (this.switchedOver || this.status !== "postcopy-paused") return;
        this.fail(
          new MigrationError(
            `incoming migration failed: ${why}, and the source did not come back ` +
              `within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      return;
    }
    this.fail(new MigrationError(`incoming migration failed: ${why}`));
  }

  /**
   * Not switched over, but the source may have stopped its guest and sent
   * the switchover, which a break now would have cut off on its way: set up
   * for post-copy (the switchover comes first), or past the last pre-copy
   * round (the source stops its guest once that is acknowledged).
   */
  private mayHaveSwitchover(): boolean {
    return (
      !this.switchedOver &&
      (this.mode === "postcopy" || this.lastRoundAcknowledged) &&
      (this.status === "active" || this.status === "postcopy-recover")
    );
  }

  /** Post-copy: keep every page and the running guest; wait for the source to come back. */
  private pause(why: string): void {
    if (this.switchedOver && this.memory) {
      // Pages a broken frame left installed but not yet released are whole: let them in.
      this.releasePending();
      this.ring.installed();
    }
    this.status = "postcopy-paused";
    this.options.onNote?.(`post-copy paused (${why}); waiting for the source to resume`);
    this.closeChannels();
  }

  /**
   * With a refusal, every channel carries it before its end: the source
   * reads its sockets in no set order, and one that ends first must not
   * pass for a broken connection.
   */
  private closeChannels(refusal: string | null = null): void {
    const channels = this.channels;
    this.channels = {};
    for (const name of CHANNEL_NAMES) {
      const channel = channels[name];
      if (!channel) continue;
      this.closing.push(channel.socketClosed);
      if (refusal === null) channel.close(null);
      else channel.refuse(new MigrationProtocolError(refusal));
    }
  }

  private send(name: ChannelName, frame: Buffer): void {
    const channel = this.channels[name];
    if (channel && !channel.isClosed) channel.send(frame);
  }

  private fail(error: Error, refusal: string | null = null): void {
    if (this.status === "failed" || this.status === "completed") return;
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    this.status = "failed";
    this.ring.close();
    this.closeChannels(refusal);
    this.settle.reject(error);
  }

  // ------------------------------------------------------------------ messages

  private onMessage(channel: ChannelName, type: number, payload: Buffer): void {
    switch (type) {
      case MSG_SETUP:
        if (CHANNEL_NAMES.every((name) => this.channels[name])) this.setup(payload);
        else this.pendingSetup = Buffer.from(payload);
        return;
      case MSG_PAGES:
        if (this.switchedOver) this.placePostcopy(payload);
        else this.placePrecopy(payload);
        return;
      case MSG_ROUND_END: {
        // Every page before it is installed: the source may stop the vCPUs
        // without a backlog of pages ahead of its switchover.
        const { round, last } = decodeJson<{ round: number; last: boolean }>(payload, "ROUND_END");
        if (last === true) {
          // Warmed at setup; again here, seconds of pre-copy later, just before it counts.
          warmSwitchoverPath(this.pages, this.options.spec.vcpus);
          // The source waits for this before it stops the vCPUs: collect now, not in the downtime.
          collectGarbageNow();
        }
        this.send("return", encodeJson(MSG_ROUND_ACK, { round }));
        this.lastRoundAcknowledged = last === true;
        this.progress();
        return;
      }
      case MSG_SWITCHOVER:
        this.switchover(payload);
        return;
      case MSG_COMPLETE:
        this.sourceReleased = true;
        this.onSourceReleased?.();
        return;
      case MSG_REFUSE: {
        const { reason } = decodeJson<{ reason: string }>(payload, "REFUSE");
        this.fail(new MigrationError(`the source gave up: ${reason}`, true));
        return;
      }
      default:
        throw new MigrationProtocolError(
          `unexpected ${messageName(type)} on the ${channel} channel`,
        );
    }
  }

  private setup(payload: Buffer): void {
    const { config, mode, pages } = decodeJson<{
      config: MigrationConfig;
      mode: MigrationMode;
      pages: number;
    }>(payload, "SETUP");
    if (typeof config !== "object" || config === null) {
      throw new MigrationProtocolError("SETUP without a configuration");
    }
    const problems = [
      ...configDifferences(config, this.config),
      ...configProblems(this.config),
      ...(pages !== this.pages ? [`pages: source ${pages}, destination ${this.pages}`] : []),
      ...(["precopy", "postcopy", "hybrid"].includes(mode) ? [] : [`unknown mode ${mode}`]),
    ];
    if (problems.length > 0) {
      const reason = `incompatible configuration: ${problems.join("; ")}`;
      this.fail(new MigrationError(`incoming migration refused: ${reason}`, true), reason);
      return;
    }
    if (
      this.options.faultMechanism === "uffd" &&
      this.options.spec.backing === "anonymous" &&
      mode !== "postcopy" &&
      mode !== "precopy"
    ) {
      const reason =
        "the uffd fault mechanism on anonymous memory cannot drop pre-copied pages dirtied again " +
        "(MADV_DONTNEED is not modelled): use --backing shmem, or --mode postcopy";
      this.fail(new MigrationError(`incoming migration refused: ${reason}`, true), reason);
      return;
    }
    if (mode !== "precopy") {
      this.memory = this.createMemory();
      this.memory.arm();
    }
    warmSwitchoverPath(this.pages, this.options.spec.vcpus);
    this.vm.prepareVcpuStateCheck();
    this.mode = mode;
    this.status = "active";
    // In post-copy the switchover follows at once: collect now, not in the downtime.
    collectGarbageNow();
    this.send("return", encodeJson(MSG_SETUP_ACK, {}));
  }

  private createMemory(): PostcopyMemory {
    if (this.options.faultMechanism === "userfault") {
      return new UserfaultMemory(this.vm, this.options.asyncAll === true);
    }
    return new UffdMemory(this.vm);
  }

  private placePrecopy(payload: Buffer): void {
    forEachPage(payload, this.installPrecopied);
  }

  private readonly installPrecopied = (page: number, payload: Buffer, at: number): void => {
    if (page >= this.pages) throw new MigrationProtocolError(`page ${page} beyond guest RAM`);
    if (at >= 0) this.vm.pages.install(page, payload, at);
    else this.vm.pages.zero(page);
    this.precopied.set(page);
  };

  private switchover(payload: Buffer): void {
    if (this.switchedOver) throw new MigrationProtocolError("a second SWITCHOVER");
    const [headerBytes, neededBytes, stateBytes, deviceBytes] = decodeSections(
      payload,
      "SWITCHOVER",
    );
    if (!deviceBytes) throw new MigrationProtocolError("SWITCHOVER without device state");
    const header = decodeJson<SwitchoverHeader>(headerBytes, "SWITCHOVER header");
    const lastProgress = header?.lastProgressWallMs;
    if (
      !Array.isArray(lastProgress) ||
      lastProgress.length !== this.options.spec.vcpus ||
      !lastProgress.every(Number.isFinite)
    ) {
      throw new MigrationProtocolError("SWITCHOVER header without each vCPU's last progress");
    }
    // Everything is checked before anything changes here: a refusal leaves the guest to the source.
    const clock = /^\d{1,19}$/.test(String(header.clock)) ? BigInt(header.clock) : -1n;
    if (clock < 0n || clock >= 1n << 63n || typeof header.postcopy !== "boolean") {
      throw new MigrationProtocolError("SWITCHOVER header without the guest's clock or its mode");
    }
    if (neededBytes.length !== Math.ceil(this.pages / 8)) {
      throw new MigrationProtocolError(
        `SWITCHOVER bitmap of ${neededBytes.length} bytes for ${this.pages} pages`,
      );
    }
    const needed = PageBitmap.fromBytes(this.pages, neededBytes);
    let saved: SavedVcpu[];
    try {
      saved = decodeVcpuStates(stateBytes, this.options.spec.vcpus);
    } catch (error) {
      throw new MigrationProtocolError(`malformed vCPU state: ${(error as Error).message}`);
    }
    // Inside the downtime: one pass, nothing allocated.
    const missing = needed.countNeither(this.precopied);
    if (missing > 0) {
      throw new MigrationProtocolError(`${missing} pages neither pre-copied nor left to post-copy`);
    }
    try {
      this.vm.checkVcpuStates(saved);
    } catch (error) {
      throw new MigrationProtocolError((error as Error).message);
    }
    try {
      const devices = decodeJson<DeviceStates>(deviceBytes, "device state");
      this.vm.restoreDevices(devices);
    } catch (error) {
      if (error instanceof MigrationProtocolError) throw error;
      throw new MigrationProtocolError(`device state refused: ${(error as Error).message}`);
    }
    this.switchedOver = true;
    // KVM_SET_CLOCK before any vCPU runs: the guest's time goes on where it stopped.
    this.vm.vm.setClock(clock);
    if (header.postcopy) {
      const memory = this.memory;
      if (!memory) throw new MigrationProtocolError("post-copy switchover in pre-copy mode");
      this.status = "postcopy-active";
      this.postcopyStartedAt = performance.now();
      this.postcopyChannels();
      this.vm.startNow(saved, this.ring, lastProgress);
      this.startedAtWallMs = wallNowMs();
      this.startProgress = this.vm.progress();
      this.send("return", encodeJson(MSG_RUNNING, { startedAtWallMs: this.startedAtWallMs }));
      void this.requestLoop();
      memory.watchAsyncFaults(this.onAsyncFault);
      // Pre-copied pages the final bitmap shows clean: released in bulk,
      // nothing copied, once the vCPUs run (out of the downtime). A vCPU
      // that touches one first waits for this release like for any page;
      // the copy its request brings is dropped as a duplicate.
      const clean = new PageBitmap(this.pages);
      clean.setAll();
      clean.andNot(needed);
      clean.forEachRun((first, count) => {
        memory.releaseRun(first, count);
        for (let p = first; p < first + count; p++) this.ring.markReceived(p);
      });
      this.ring.installed();
      this.releasedCleanPages = clean.count();
      this.receivedPages = this.releasedCleanPages;
    } else {
      this.vm.startNow(saved, null, lastProgress);
      this.startedAtWallMs = wallNowMs();
      this.startProgress = this.vm.progress();
      this.send("return", encodeJson(MSG_RUNNING, { startedAtWallMs: this.startedAtWallMs }));
    }
    this.progress();
    if (!header.postcopy || this.receivedPages === this.pages) this.complete();
  }

  // ------------------------------------------------------------------ post-copy

  private placePostcopy(payload: Buffer): void {
    this.postcopyBytes += payload.length;
    forEachPage(payload, this.installPostcopy);
    this.releasePending();
    this.ring.installed();
    if (this.receivedPages === this.pages) this.complete();
  }

  /** Installed pages not yet released: [runStart, runEnd). */
  private runStart = 0;
  private runEnd = 0;

  private readonly installPostcopy = (page: number, payload: Buffer, at: number): void => {
    if (page >= this.pages) throw new MigrationProtocolError(`page ${page} beyond guest RAM`);
    // First come first installed: a page the guest may have written since is never overwritten.
    if (this.ring.isReceived(page) || (page >= this.runStart && page < this.runEnd)) {
      this.duplicatePages++;
      return;
    }
    const memory = this.memory!;
    if (memory.install) {
      // Pushed pages come in order: a batch is released as one run, not page by page.
      if (page !== this.runEnd) this.releasePending();
      if (this.runStart === this.runEnd) this.runStart = this.runEnd = page;
      memory.install(page, payload, at);
      this.runEnd = page + 1;
      return;
    }
    memory.place(page, payload, at);
    this.placed(page);
  };

  private releasePending(): void {
    const first = this.runStart;
    const end = this.runEnd;
    if (first === end) return;
    this.runStart = this.runEnd = 0;
    this.memory!.releaseRun(first, end - first);
    for (let page = first; page < end; page++) this.placed(page);
  }

  /** A page is in and usable. */
  private placed(page: number): void {
    this.ring.markReceived(page);
    this.receivedPages++;
    if (this.asyncWaits.size > 0) {
      const since = this.asyncWaits.get(page);
      if (since !== undefined) {
        const now = performance.now();
        this.asyncWaits.delete(page);
        this.ring.latency.record((now - since) * 1000);
        this.threadBlocktime.installed(page, now);
      }
    }
  }

  /** vCPU faults from the fault ring, to the return path. */
  private async requestLoop(): Promise<void> {
    const out = this.requestBuffer;
    while (this.status.startsWith("postcopy")) {
      await this.ring.requestsPending();
      out.length = 0;
      if (this.ring.drain(out) > 0)
        this.send("return", encodePageList(MSG_PAGE_REQUEST, out, out.length));
    }
  }

  private readonly onAsyncFault = (page: number, thread: number): void => {
    this.asyncFaults++;
    if (page < 0 || page >= this.pages) {
      throw new MigrationProtocolError(`a fault outside guest RAM (page ${page})`);
    }
    if (this.ring.isReceived(page)) return;
    const now = performance.now();
    if (!this.asyncWaits.has(page)) this.asyncWaits.set(page, now);
    if (thread !== 0) this.threadBlocktime.fault(this.vm.vcpuOfThread(thread), page, now);
    if (!this.ring.markRequested(page)) return;
    this.send("return", encodePageList(MSG_PAGE_REQUEST, [page], 1));
  };

  /** After a reconnect: what this side holds, and every request still outstanding. */
  private resumed(): void {
    const received = new PageBitmap(this.pages);
    const outstanding: number[] = [];
    for (let p = 0; p < this.pages; p++) {
      if (this.ring.isReceived(p)) received.set(p);
      else if (this.ring.isRequested(p)) outstanding.push(p);
    }
    const info: ResumeMessage = {
      switchedOver: this.switchedOver,
      startedAtWallMs: this.startedAtWallMs,
    };
    this.send(
      "return",
      encodeSections(MSG_RESUME, [Buffer.from(JSON.stringify(info)), received.toBytes()]),
    );
    if (this.status === "completed") {
      if (this.memory) this.send("return", encodeJson(MSG_POSTCOPY_DONE, {}));
      this.options.onNote?.(
        `the source came back after ${this.memory ? "post-copy" : "the migration"} completed: told it so`,
      );
      return;
    }
    if (outstanding.length > 0) {
      this.send("return", encodePageList(MSG_PAGE_REQUEST, outstanding, outstanding.length));
    }
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    this.resumeTimer = null;
    this.status = this.switchedOver ? "postcopy-active" : "active";
    this.postcopyChannels();
    this.options.onNote?.(
      this.switchedOver
        ? `post-copy resumed: ${this.pages - this.receivedPages} pages to come, ${outstanding.length} re-requested`
        : "migration resumed before the switchover arrived: the source sends it again",
    );
  }

  /**
   * The channels of a post-copy: bulk data read a chunk at a time, so that
   * a requested page never waits behind much of it; and once the guest
   * runs here, a bad stream is dropped rather than refused (a pause, not
   * the guest lost).
   */
  private postcopyChannels(): void {
    this.channels.main!.yieldBetweenChunks = true;
    if (!this.switchedOver) return;
    for (const name of CHANNEL_NAMES) this.channels[name]!.refusesBadStream = false;
  }

  /** Every page is here (or pre-copy only): userfault off, large mappings back, source told. */
  private complete(): void {
    if (this.memory) {
      this.memory.finish();
      this.postcopyEndedAt = performance.now();
      this.progressAtPostcopyEnd = this.vm.progress();
      this.send("return", encodeJson(MSG_POSTCOPY_DONE, {}));
    }
    // Iterations that start from here on (userfault off, page tables
    // collapsed) stall for this host's reasons, not the migration's.
    this.vm.closeStallWindow();
    this.status = "completed";
    this.ring.interrupt();
    this.progress();
    this.settle.resolve();
  }

  private progress(): void {
    this.options.onProgress?.({
      status: this.status,
      round: 0,
      pagesSent: this.receivedPages,
      pagesTotal: this.pages,
      remaining: this.pages - this.receivedPages,
      transferredBytes: 0,
    });
  }

  private stats(checksums: number[]): DestinationStats {
    const ring = this.ring.blocktime();
    const threads = this.threadBlocktime;
    const blocktime = {
      perVcpu: ring.perVcpu.map((ms, v) => ms + threads.perVcpu[v]),
      overlapped: ring.overlapped + threads.overlapped,
    };
    const postcopyTimeMs =
      this.postcopyEndedAt > 0 ? this.postcopyEndedAt - this.postcopyStartedAt : 0;
    const rate = (from: number, to: number, ms: number) =>
      ms > 0 ? ((to - from) * 1000) / ms : null;
    const vm = this.vm;
    return {
      status: this.status,
      faultMechanism: this.options.faultMechanism,
      startedAtWallMs: this.startedAtWallMs,
      postcopyTimeMs,
      postcopyBytes: this.postcopyBytes,
      throughputBytesPerSecond:
        postcopyTimeMs > 0 ? (this.postcopyBytes * 1000) / postcopyTimeMs : 0,
      blocktimeMs: blocktime.perVcpu.reduce((a, b) => a + b, 0),
      vcpuBlocktimeMs: blocktime.perVcpu,
      overlappedBlocktimeMs: blocktime.overlapped,
      faultLatencyUs: this.ring.latency.summary(),
      faults: this.ring.latency.count,
      asyncFaults: this.asyncFaults,
      releasedCleanPages: this.releasedCleanPages,
      // Until post-copy ended or the first vCPU finished its workload, whichever came first.
      guestRateDuringPostcopy:
        this.postcopyEndedAt === 0
          ? null
          : vm.firstDoneAt > 0 && vm.firstDoneAt < this.postcopyEndedAt
            ? rate(
                this.startProgress,
                vm.progressAtFirstDone,
                vm.firstDoneAt - this.postcopyStartedAt,
              )
            : rate(this.startProgress, this.progressAtPostcopyEnd, postcopyTimeMs),
      guestRateAfter:
        vm.firstDoneAt > this.postcopyEndedAt
          ? rate(
              this.postcopyEndedAt > 0 ? this.progressAtPostcopyEnd : this.startProgress,
              vm.progressAtFirstDone,
              vm.firstDoneAt - (this.postcopyEndedAt > 0 ? this.postcopyEndedAt : vm.startedAt),
            )
          : null,
      switchoverStallMs: vm.firstStallMs(),
      maxStallMs: Math.max(vm.closedWindowStallMs(), vm.firstStallMs()),
      maxStallAfterMs: vm.maxStallMs(),
      checksums,
    };
  }
}
