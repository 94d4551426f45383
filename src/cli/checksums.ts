/** A guest's per-vCPU checksums as people compare them: 32-bit hex words. */
export function hexChecksums(checksums: readonly number[]): string {
  return checksums.map((c) => (c >>> 0).toString(16).padStart(8, "0")).join(" ");
}
