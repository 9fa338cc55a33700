/**
 * Runs async operations one at a time per key, in call order; operations on
 * different keys run side by side. The replica manager keys on the model
 * name, so a deploy and a version switch of one model never interleave.
 */
export class KeyedLock {
  /** The last queued operation per key; removed when the queue drains. */
  readonly #tails = new Map<string, Promise<void>>();

  /** Runs `fn` after every earlier operation on `key` has finished (whether it failed or not). */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#tails.get(key) ?? Promise.resolve();
    let release: () => void = () => {};
    const mine = new Promise<void>((r) => (release = r));
    const tail = before.then(() => mine);
    this.#tails.set(key, tail);
    await before;
    try {
      return await fn();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}
