import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/**
 * A full garbage collection now, at a moment of the migration's choosing:
 * before the downtime, so that V8 does not pick a moment inside it. Left to
 * itself, the destination's thread ran a 2.5-6.5 ms mark-compact at about
 * the switchover in half the runs measured (BENCHMARKS.md, run G). Node
 * offers gc() only behind --expose-gc; the flag can be set at run time, and
 * a context made after that has the function.
 */
export function collectGarbageNow(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}
