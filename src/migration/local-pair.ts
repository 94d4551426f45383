import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";

/** One event line of `faultline migrate listen|send --events`. */
export interface MigrationEvent {
  event: string;
  [key: string]: unknown;
}

/**
 * A `faultline migrate` process of this machine, driven through its
 * `--events` output: the source or the destination of a local migration
 * (the bench, the demo and the end-to-end tests run both ends as real
 * processes connected over loopback TCP).
 */
export class MigrationProcess {
  readonly child: ChildProcess;
  readonly events: MigrationEvent[] = [];
  stderr = "";
  readonly exited: Promise<number | null>;
  private listeners: ((event: MigrationEvent) => void)[] = [];

  constructor(
    readonly side: string,
    cli: string,
    args: string[],
    onEvent?: (event: MigrationEvent) => void,
    prefix: string[] = [],
  ) {
    const [file, ...rest] = [...prefix, process.execPath];
    this.child = spawn(file, [...rest, cli, "migrate", ...args, "--events"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stderr!.setEncoding("utf8");
    this.child.stderr!.on("data", (text: string) => (this.stderr += text));
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      let event: MigrationEvent;
      try {
        event = JSON.parse(line) as MigrationEvent;
      } catch {
        this.stderr += `${line}\n`;
        return;
      }
      this.events.push(event);
      onEvent?.(event);
      for (const listener of this.listeners) listener(event);
    });
    // "close", not "exit": by then its stdout is read to the end, so no event comes after.
    this.exited = new Promise((resolve) => this.child.on("close", (code) => resolve(code)));
  }

  /**
   * The `nth` event named `name` (already seen or still to come); rejects if
   * the process exits first or after `timeoutMs`.
   */
  waitFor(name: string, timeoutMs = 60_000, nth = 1): Promise<MigrationEvent> {
    const seen = this.events.filter((e) => e.event === name);
    if (seen.length >= nth) return Promise.resolve(seen[nth - 1]);
    let count = seen.length;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(`${this.side}: no "${name}" event within ${timeoutMs} ms\n${this.stderr}`),
        );
      }, timeoutMs);
      const listener = (event: MigrationEvent) => {
        if (event.event !== name || ++count < nth) return;
        done();
        resolve(event);
      };
      const done = () => {
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== listener);
      };
      this.listeners.push(listener);
      void this.exited.then(() => {
        setImmediate(() => {
          if (!this.listeners.includes(listener)) return;
          done();
          reject(new Error(`${this.side} exited without a "${name}" event\n${this.stderr}`));
        });
      });
    });
  }

  event(name: string): MigrationEvent | undefined {
    return this.events.find((e) => e.event === name);
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
  }
}

export interface LocalMigrationOptions {
  /** Path of bin/faultline.js. */
  cli: string;
  /** The VM's shape and workload, given to both ends. */
  vmArgs: string[];
  listenArgs?: string[];
  sendArgs?: string[];
  /** Where the source connects to reach the destination's port (default 127.0.0.1:port). */
  route?: (port: number) => Promise<{ host: string; port: number }>;
  onEvent?: (side: "source" | "destination", event: MigrationEvent) => void;
  /** Runs once both processes are up (to act during the migration). */
  during?: (source: MigrationProcess, destination: MigrationProcess) => Promise<void>;
  timeoutMs?: number;
}

export interface LocalMigration {
  source: MigrationProcess;
  destination: MigrationProcess;
  sourceCode: number | null;
  destinationCode: number | null;
}

/** Run a destination and a source process on this machine and wait for both to exit. */
export async function migrateLocally(o: LocalMigrationOptions): Promise<LocalMigration> {
  const destination = new MigrationProcess(
    "destination",
    o.cli,
    ["listen", "--port", "0", ...o.vmArgs, ...(o.listenArgs ?? [])],
    (e) => o.onEvent?.("destination", e),
  );
  let source: MigrationProcess | null = null;
  const timer = setTimeout(() => {
    destination.kill();
    source?.kill();
  }, o.timeoutMs ?? 120_000);
  try {
    const { port } = (await destination.waitFor("listening")) as unknown as { port: number };
    const to = o.route ? await o.route(port) : { host: "127.0.0.1", port };
    source = new MigrationProcess(
      "source",
      o.cli,
      ["send", "--to", `${to.host}:${to.port}`, ...o.vmArgs, ...(o.sendArgs ?? [])],
      (e) => o.onEvent?.("source", e),
    );
    if (o.during) await o.during(source, destination);
    const [sourceCode, destinationCode] = await Promise.all([source.exited, destination.exited]);
    return { source, destination, sourceCode, destinationCode };
  } finally {
    clearTimeout(timer);
    destination.kill();
    source?.kill();
  }
}

/** vCPU 0's disk read period in the demo's guest: often, so that reads meet post-copy. */
export const DEMO_IO_EVERY = 16;

/**
 * The busy guest `faultline demo` and the dashboard migrate, as the
 * `migrate` arguments both ends are given.
 */
export function demoGuestArgs(memMiB: number, vcpus: number): string[] {
  return [
    ...["--mem", `${memMiB}M`, "--vcpus", String(vcpus)],
    ...["--iterations", "3000", "--stores", "256", "--io-every", String(DEMO_IO_EVERY)],
  ];
}
