import { fileURLToPath } from "node:url";

/** bin/faultline.js of this checkout (tests run from dist/test/migration). */
export const CLI = fileURLToPath(new URL("../../../bin/faultline.js", import.meta.url));

/** A small busy guest: 4 vCPUs dirtying 16 MiB, long enough to be running throughout. */
export function vmArgs(extra: Record<string, string | number> = {}): string[] {
  const options: Record<string, string | number> = {
    mem: "16M",
    vcpus: 4,
    iterations: 6000,
    stores: 256,
    ...extra,
  };
  return Object.entries(options).flatMap(([k, v]) => [`--${k}`, String(v)]);
}
