import { InvalidArgumentError } from "commander";

const UNITS: Record<string, number> = { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/** "512M", "2G", "4096", "64K" (binary units, an optional trailing B or iB) to bytes. */
export function parseSize(text: string): number {
  const match = /^(\d+)\s*([KMGT]?)(i?B)?$/i.exec(text.trim());
  if (!match) throw new InvalidArgumentError(`"${text}" is not a size like 512M or 2G`);
  const bytes = Number(match[1]) * UNITS[match[2].toUpperCase()];
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new InvalidArgumentError(`"${text}" is not a positive size`);
  }
  return bytes;
}

/** --hugepages: 4K, 2M or 1G. */
export function parsePageSize(text: string): 4096 | 2097152 | 1073741824 {
  const bytes = parseSize(text);
  if (bytes !== 4096 && bytes !== 2 ** 21 && bytes !== 2 ** 30) {
    throw new InvalidArgumentError("page size must be 4K, 2M or 1G");
  }
  return bytes as 4096 | 2097152 | 1073741824;
}

/** A rate in bytes per second, as a size ("300M": 300 MiB/s); 0 for no limit. */
export function parseBandwidth(text: string): number {
  return /^\s*0+\s*$/.test(text) ? 0 : parseSize(text);
}
