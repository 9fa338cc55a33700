/**
 * Lets a thing happen at most once per interval for each key: for logs a
 * peer could otherwise make us write once per message. Keys are forgotten
 * once their interval has passed, so the map stays as small as the set of
 * keys seen in one interval.
 */
export class OncePer {
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #last = new Map<string, number>();

  constructor(intervalMs: number, now: () => number = Date.now) {
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  /** True when `key` has not been let through within the interval (and counts this time). */
  allow(key: string): boolean {
    const now = this.#now();
    const last = this.#last.get(key);
    if (last !== undefined && now - last < this.#intervalMs) return false;
    if (this.#last.size > 1024) this.#prune(now);
    this.#last.set(key, now);
    return true;
  }

  #prune(now: number): void {
    for (const [k, t] of this.#last) if (now - t >= this.#intervalMs) this.#last.delete(k);
  }
}
