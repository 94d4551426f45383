import { InvalidArgumentError } from "commander";

/** An option value that must be a whole number of at least 1. */
export function positiveInteger(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError("a positive integer");
  return n;
}

/** An option value that must be a whole number of at least 0. */
export function nonNegativeInteger(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError("a non-negative integer");
  return n;
}

/** A TCP port number, 0 to 65535. */
export function tcpPort(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0 || n > 65535) {
    throw new InvalidArgumentError("a TCP port number, 0 to 65535");
  }
  return n;
}
