import type { LatencySummary } from "./latency-histogram.js";
import type { FaultMechanism, MigrationMode } from "./config.js";

/**
 * Migration status and statistics, named after QEMU's query-migrate
 * (MigrationInfo / MigrationStats): status, total-time, downtime,
 * setup-time, ram.transferred, dirty-sync-count (pre-copy rounds),
 * dirty-pages-rate, postcopy-requests, postcopy-blocktime and
 * postcopy-vcpu-blocktime; camelCase, times in ms, latencies in µs.
 */
export type MigrationStatus =
  | "setup"
  | "active" // pre-copy
  | "device" // switchover: vCPUs stopped, state in flight
  | "postcopy-active"
  // The connection broke with the guest's fate unknown (in pre-copy too,
  // between the switchover and RUNNING); waiting for a resume.
  | "postcopy-paused"
  | "postcopy-recover"
  | "completed"
  | "failed";

/** QEMU's status names as people read them, for progress bars and the dashboard. */
export const MIGRATION_STATUS_LABELS: Record<MigrationStatus, string> = {
  setup: "setup",
  active: "pre-copy",
  device: "switchover",
  "postcopy-active": "post-copy",
  "postcopy-paused": "paused",
  "postcopy-recover": "recovering",
  completed: "completed",
  failed: "failed",
};

/** What the source knows. */
export interface SourceStats {
  status: MigrationStatus;
  mode: MigrationMode;
  totalTimeMs: number;
  downtimeMs: number;
  setupTimeMs: number;
  transferredBytes: number;
  precopyRounds: number;
  /** Pages dirtied per second in the last pre-copy round (0 without pre-copy). */
  dirtyPageRate: number;
  postcopyRequests: number;
  /** Pages sent, and pages of them that went in post-copy. */
  pagesSent: number;
  postcopyPages: number;
  /** vCPUs still running their workload when the source stopped them. */
  vcpusRunningAtSwitchover: number;
  /** Times the connection broke during post-copy and was resumed. */
  recoveries: number;
  /** The source guest's rate (workload iterations per second) from boot to the start of the migration. */
  guestRateBefore: number;
  /** The longest stall before the migration (the guest's own on this host, its floor). */
  maxStallBeforeMs: number;
  /** The longest stall during pre-copy (the switchover's is the destination's). */
  maxStallMs: number;
}

/** What the destination knows. */
export interface DestinationStats {
  status: MigrationStatus;
  faultMechanism: FaultMechanism;
  /** Wall-clock ms when the vCPUs started here (the end of the downtime). */
  startedAtWallMs: number;
  postcopyTimeMs: number;
  postcopyBytes: number;
  /** Post-copy receive throughput (bytes of page data and framing per second). */
  throughputBytesPerSecond: number;
  /** Total and per-vCPU post-copy blocktime, and the time every vCPU was blocked at once. */
  blocktimeMs: number;
  vcpuBlocktimeMs: number[];
  overlappedBlocktimeMs: number;
  faultLatencyUs: LatencySummary;
  faults: number;
  asyncFaults: number;
  releasedCleanPages: number;
  guestRateDuringPostcopy: number | null;
  guestRateAfter: number | null;
  /** Across the switchover: from a vCPU's last iteration on the source to its first here. */
  switchoverStallMs: number;
  /** The longest stall here of an iteration that started before the migration completed, the switchover's included. */
  maxStallMs: number;
  /** The longest of those that started after it completed (the guest's own on this host). */
  maxStallAfterMs: number;
  checksums: number[];
}

/** Progress as the bars show it. */
export interface MigrationProgress {
  status: MigrationStatus;
  round: number;
  pagesSent: number;
  pagesTotal: number;
  /** Pages still to send in this phase. */
  remaining: number;
  transferredBytes: number;
}

export function wallNowMs(): number {
  return performance.timeOrigin + performance.now();
}
