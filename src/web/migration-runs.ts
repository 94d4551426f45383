import { demoGuestArgs, type MigrationEvent, migrateLocally } from "../migration/local-pair.js";
import type { FaultMechanism, MigrationMode } from "../migration/config.js";

/** What the dashboard asks for: a live migration of the busy guest between two processes. */
export interface RunRequest {
  memMiB: number;
  vcpus: number;
  mode: MigrationMode;
  faultMechanism: FaultMechanism;
}

/** An event of either end, as the page receives it; `end` closes a run. */
export type RunEvent = (MigrationEvent & { side: "source" | "destination" }) | EndEvent;

export interface EndEvent {
  event: "end";
  side: "dashboard";
  ok: boolean;
  message: string;
}

export interface Run {
  id: string;
  request: RunRequest;
  events: RunEvent[];
  done: boolean;
}

/**
 * The dashboard's migrations: each one is `faultline migrate listen` and
 * `faultline migrate send` as two processes on loopback (as `faultline
 * demo` runs them), their `--events` kept and passed on to whoever
 * watches. One at a time: two would share this machine's cores and each
 * would measure the other.
 */
export class MigrationRuns {
  private readonly runs = new Map<string, Run>();
  private readonly watchers = new Map<string, Set<(event: RunEvent) => void>>();
  private running: Run | null = null;
  private next = 1;

  constructor(private readonly cli: string) {}

  get current(): Run | null {
    return this.running;
  }

  get(id: string): Run | undefined {
    return this.runs.get(id);
  }

  /** Start a run; null while another is under way. */
  start(request: RunRequest): Run | null {
    if (this.running) return null;
    const run: Run = { id: String(this.next++), request, events: [], done: false };
    this.runs.set(run.id, run);
    this.running = run;
    void this.migrate(run);
    return run;
  }

  /** Every event of `id` so far, then each new one, until `end`; returns the unsubscribe. */
  watch(id: string, onEvent: (event: RunEvent) => void): () => void {
    const run = this.runs.get(id);
    if (!run) throw new Error(`no run ${id}`);
    for (const event of run.events) onEvent(event);
    if (run.done) return () => undefined;
    let set = this.watchers.get(id);
    if (!set) this.watchers.set(id, (set = new Set()));
    set.add(onEvent);
    return () => set.delete(onEvent);
  }

  /** Resolves once the run under way (if any) has ended. */
  async idle(): Promise<void> {
    while (this.running) {
      const id = this.running.id;
      await new Promise<void>((resolve) => this.watch(id, (e) => e.event === "end" && resolve()));
    }
  }

  private emit(run: Run, event: RunEvent): void {
    run.events.push(event);
    for (const watcher of this.watchers.get(run.id) ?? []) watcher(event);
  }

  private async migrate(run: Run): Promise<void> {
    const r = run.request;
    let end: EndEvent;
    try {
      const result = await migrateLocally({
        cli: this.cli,
        vmArgs: [
          ...demoGuestArgs(r.memMiB, r.vcpus),
          ...["--fault-mechanism", r.faultMechanism],
          ...(r.faultMechanism === "uffd" ? ["--backing", "shmem"] : []),
        ],
        listenArgs: ["--verify"],
        sendArgs: ["--mode", r.mode, "--warmup", "300"],
        timeoutMs: 120_000,
        onEvent: (side, e) => this.emit(run, { ...e, side }),
      });
      const verified = result.destination.event("result")?.verified === true;
      const error = result.source.event("error") ?? result.destination.event("error");
      end = {
        event: "end",
        side: "dashboard",
        ok: verified && result.sourceCode === 0 && result.destinationCode === 0,
        message: verified
          ? "migrated; the guest's checksums are what it computes without migration"
          : `the migration failed: ${String(error?.message ?? result.destination.stderr.trim())}`,
      };
    } catch (error) {
      end = { event: "end", side: "dashboard", ok: false, message: (error as Error).message };
    }
    run.done = true;
    this.running = null;
    this.emit(run, end);
    this.watchers.delete(run.id);
  }
}
