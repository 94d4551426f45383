import assert from "node:assert/strict";
import { test } from "node:test";
import { median } from "../../src/bench/median.js";

test("median: the middle value, or the mean of the middle two; the input is left as it was", () => {
  const values = [9, 1, 5];
  assert.equal(median(values), 5);
  assert.deepEqual(values, [9, 1, 5]);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([7]), 7);
});
