/**
 * DTBs put together by hand, for tests that need exact or malformed blobs:
 * big-endian words and raw strings, and a correct header around given
 * blocks (header, reservation terminator, structure, strings).
 */

export const FDT_BEGIN_NODE = 1;
export const FDT_END_NODE = 2;
export const FDT_PROP = 3;
export const FDT_NOP = 4;
export const FDT_END = 9;

/** Big-endian words, and strings as their bytes (one per character), concatenated. */
export function be(...parts: (number | string)[]): Uint8Array {
  const out: number[] = [];
  for (const part of parts) {
    if (typeof part === "string") out.push(...Buffer.from(part, "latin1"));
    else out.push(part >>> 24, (part >>> 16) & 0xff, (part >>> 8) & 0xff, part & 0xff);
  }
  return Uint8Array.from(out);
}

/** A version 17 DTB with no reservations around a structure and a strings block. */
export function dtbAround(struct: Uint8Array, strings: Uint8Array): Uint8Array {
  const offStruct = 40 + 16;
  const offStrings = offStruct + struct.length;
  const totalSize = offStrings + strings.length;
  // prettier-ignore
  const header = be(
    0xd00dfeed, totalSize, offStruct, offStrings, 40,
    17, 16, 0, strings.length, struct.length,
    0, 0, 0, 0,
  );
  return Uint8Array.from([...header, ...struct, ...strings]);
}
