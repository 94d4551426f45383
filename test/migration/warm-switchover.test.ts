import assert from "node:assert/strict";
import { test } from "node:test";
import { warmSwitchoverPath } from "../../src/migration/warm-switchover.js";

test("warming the switchover path works for any guest size and vCPU count", () => {
  // Page counts with a partial last bitmap word among them, and a 1 GiB guest.
  for (const [pages, vcpus] of [
    [1, 1],
    [33, 2],
    [4097, 7],
    [262_144, 4],
  ]) {
    assert.doesNotThrow(() => warmSwitchoverPath(pages, vcpus), `${pages} pages, ${vcpus} vCPUs`);
  }
});
