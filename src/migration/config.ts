/**
 * What both ends of a migration must agree on, checked at setup: the
 * destination compares the source's configuration with its own and refuses
 * the migration, naming every difference, before a single page moves.
 */

export type MigrationMode = "precopy" | "postcopy" | "hybrid";
export type FaultMechanism = "userfault" | "uffd";
export type MigrationBacking = "guest_memfd" | "anonymous" | "shmem";

export interface MigrationConfig {
  memBytes: number;
  /** Backing page size in bytes (4 KiB, 2 MiB or 1 GiB). */
  pageSize: number;
  vcpus: number;
  backing: MigrationBacking;
  faultMechanism: FaultMechanism;
  /** Identifies the guest program, so that state is never loaded into another one. */
  guest: string;
  /**
   * The guest program's parameters. They travel in its RAM, but the
   * destination checks the guest's checksums against its own, so both ends
   * must have been given the same.
   */
  workload: string;
}

export const MIGRATION_MODES: readonly MigrationMode[] = ["precopy", "postcopy", "hybrid"];
export const FAULT_MECHANISMS: readonly FaultMechanism[] = ["userfault", "uffd"];

const KEYS: (keyof MigrationConfig)[] = [
  "memBytes",
  "pageSize",
  "vcpus",
  "backing",
  "faultMechanism",
  "guest",
  "workload",
];

/** Every difference between the two configurations, as readable lines; empty when compatible. */
export function configDifferences(source: MigrationConfig, destination: MigrationConfig): string[] {
  const out: string[] = [];
  for (const key of KEYS) {
    if (source[key] !== destination[key]) {
      out.push(
        `${key}: source ${JSON.stringify(source[key])}, destination ${JSON.stringify(destination[key])}`,
      );
    }
  }
  return out;
}

/** Whether a configuration can be migrated at all with this fault mechanism. */
export function configProblems(config: MigrationConfig): string[] {
  const out: string[] = [];
  if (config.faultMechanism === "uffd" && config.backing === "guest_memfd") {
    out.push(
      "the uffd fault mechanism needs traditional memory (--backing shmem or anonymous): " +
        "userfaultfd never sees a vCPU's guest_memfd faults",
    );
  }
  if (config.faultMechanism === "uffd" && config.pageSize !== 4096) {
    out.push(
      "the uffd fault mechanism places 4 KiB pages (UFFDIO_COPY of whole huge pages is not done): use --hugepages 4K",
    );
  }
  return out;
}
