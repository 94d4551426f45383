import assert from "node:assert/strict";
import { test } from "node:test";
import { hexChecksums } from "../../src/cli/checksums.js";

test("checksums print as 32-bit hex words, signed or not", () => {
  assert.equal(
    hexChecksums([1, 0xffff_ffff, -1, 0x8000_0000 | 0]),
    "00000001 ffffffff ffffffff 80000000",
  );
  assert.equal(hexChecksums([]), "");
});
