/**
 * Locks over a word of shared memory, for state that threads (the VMM's main
 * thread, vCPU workers, device workers) change together. A three-state futex
 * mutex (0 free, 1 held, 2 held with waiters): the uncontended path is one
 * compare-and-swap, and a waiter sleeps in Atomics.wait instead of spinning.
 * Node allows Atomics.wait on the main thread too; critical sections are short.
 */

export function lock(words: Int32Array, index: number): void {
  let state = Atomics.compareExchange(words, index, 0, 1);
  if (state === 0) return;
  do {
    if (state === 2 || Atomics.compareExchange(words, index, 1, 2) !== 0) {
      Atomics.wait(words, index, 2);
    }
    state = Atomics.compareExchange(words, index, 0, 2);
  } while (state !== 0);
}

export function unlock(words: Int32Array, index: number): void {
  if (Atomics.sub(words, index, 1) !== 1) {
    Atomics.store(words, index, 0);
    Atomics.notify(words, index, 1);
  }
}

/** Run `body` holding the lock at words[index]. */
export function withLock<T>(words: Int32Array, index: number, body: () => T): T {
  lock(words, index);
  try {
    return body();
  } finally {
    unlock(words, index);
  }
}
