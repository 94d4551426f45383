import assert from "node:assert/strict";
import { test } from "node:test";
import { setImmediate as nextTurn } from "node:timers/promises";
import { collectGarbageNow } from "../../src/migration/collect-garbage.js";

test("collectGarbageNow collects what nothing refers to any more", async () => {
  const ref = new WeakRef({ garbage: new Array(1000).fill(0) });
  // A WeakRef keeps its target alive until the job that made it ends.
  await nextTurn();
  collectGarbageNow();
  assert.equal(ref.deref(), undefined);
  collectGarbageNow();
});
