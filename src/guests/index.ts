import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * Guest programs that ship with faultline, as assembly sources kept next to
 * this file (src/guests/*.s). Compiled code runs from dist/src/guests, so the
 * sources are found relative to the package root.
 */
const SOURCE_DIR = new URL("../../../src/guests/", import.meta.url);

export type BundledGuest = "cpu-workload" | "demo" | "memstress";

export function bundledGuestPath(name: BundledGuest): string {
  return fileURLToPath(new URL(`${name}.s`, SOURCE_DIR));
}

export function bundledGuestSource(name: BundledGuest): string {
  return readFileSync(bundledGuestPath(name), "utf8");
}
