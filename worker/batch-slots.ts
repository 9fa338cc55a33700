/**
 * Runs at most `limit` jobs at a time (the worker's --concurrency), holding
 * the rest in a bounded FIFO, and tells a drain when everything is done.
 */
export class BatchSlots<J> {
  readonly #limit: number;
  readonly #maxWaiting: number;
  readonly #run: (job: J) => Promise<void>;
  #active = 0;
  readonly #waiting: J[] = [];
  #idleWaiters: (() => void)[] = [];

  /**
   * @param limit jobs run at the same time (>= 1)
   * @param maxWaiting jobs held beyond the running ones before offer() refuses
   * @param run runs one job; must not reject (a rejection is counted as done)
   */
  constructor(limit: number, maxWaiting: number, run: (job: J) => Promise<void>) {
    this.#limit = limit;
    this.#maxWaiting = maxWaiting;
    this.#run = run;
  }

  /** Jobs running now. */
  get running(): number {
    return this.#active;
  }

  /** Jobs waiting for a slot. */
  get queued(): number {
    return this.#waiting.length;
  }

  /** Starts `job` now or queues it; false (and nothing done) when the queue is full. */
  offer(job: J): boolean {
    if (this.#waiting.length >= this.#maxWaiting) return false;
    this.#waiting.push(job);
    this.#pump();
    return true;
  }

  /** Removes and returns the jobs not yet started (those `which` picks, or all). */
  clearWaiting(which: (job: J) => boolean = () => true): J[] {
    const dropped: J[] = [];
    const kept: J[] = [];
    for (const job of this.#waiting) (which(job) ? dropped : kept).push(job);
    this.#waiting.splice(0, this.#waiting.length, ...kept);
    this.#notifyIfIdle();
    return dropped;
  }

  /** Resolves when nothing runs or waits (at once if idle already), or on release(). */
  idle(): Promise<void> {
    return new Promise((resolve) => {
      this.#idleWaiters.push(resolve);
      this.#notifyIfIdle();
    });
  }

  /** Resolves every idle() waiter now, idle or not (shutdown without waiting). */
  release(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  #pump(): void {
    while (this.#active < this.#limit && this.#waiting.length > 0) {
      const job = this.#waiting.shift()!;
      this.#active++;
      void this.#run(job)
        .catch(() => {})
        .finally(() => {
          this.#active--;
          this.#pump();
          this.#notifyIfIdle();
        });
    }
  }

  #notifyIfIdle(): void {
    if (this.#active === 0 && this.#waiting.length === 0) this.release();
  }
}
