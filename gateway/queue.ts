/**
 * A bounded earliest-deadline-first queue, one per model version
 * (clipper.md §5.1: Clipper's `ModelQueue` is a priority queue ordered by
 * deadline, and replicas pull batches from it). Pure logic: no timers, the
 * caller passes `now`.
 */

/** What the queue needs to know about a task. */
export interface QueuedTask {
  /** Absolute deadline, ms since the Unix epoch (`Date.now()` scale); `Infinity` for none. */
  readonly deadline: number;
  /**
   * Set by the owner once the caller already has an answer (default output
   * after the SLO, cancellation). The queue never reads it eagerly: such
   * tasks are skipped when they reach the head, purged when the queue is full.
   */
  settled: boolean;
}

/**
 * Heap slot. `seq` is the insertion number: equal deadlines pop in arrival
 * order (FIFO), so a burst sharing one deadline is served fairly instead of
 * in whatever order the heap happens to leave them.
 */
interface Slot<T> {
  readonly task: T;
  readonly seq: number;
}

function before<T extends QueuedTask>(a: Slot<T>, b: Slot<T>): boolean {
  const da = a.task.deadline;
  const db = b.task.deadline;
  return da < db || (da === db && a.seq < b.seq);
}

/**
 * Binary min-heap of tasks keyed by (deadline, insertion order); push and
 * pop are O(log n). Capacity is a hard bound: a full queue refuses work so
 * the caller can answer RESOURCE_EXHAUSTED instead of letting latency grow
 * without limit.
 */
export class DeadlineQueue<T extends QueuedTask> {
  #heap: Slot<T>[] = [];
  #nextSeq = 0;
  readonly #cap: number;

  /** @param capacity most tasks held at once: a non-negative integer, or `Infinity`. */
  constructor(capacity: number) {
    if (!(capacity === Infinity || (Number.isInteger(capacity) && capacity >= 0))) {
      throw new RangeError(`DeadlineQueue capacity must be a non-negative integer or Infinity, got ${capacity}`);
    }
    this.#cap = capacity;
  }

  /**
   * Tasks held. Settled tasks are removed lazily (at the head, or by the
   * purge when full), so this may over-count them until then; popped tasks
   * are never counted.
   */
  get size(): number {
    return this.#heap.length;
  }

  /** The bound given to the constructor. */
  get capacity(): number {
    return this.#cap;
  }

  /**
   * Enqueues `task`. Returns false, leaving the queue unchanged, when it is
   * full of live tasks (the caller answers RESOURCE_EXHAUSTED). Settled tasks
   * still held are purged before refusing, so abandoned work can never keep
   * the queue full.
   * @throws RangeError if the deadline is NaN (it would corrupt the heap order).
   */
  push(task: T): boolean {
    if (Number.isNaN(task.deadline)) throw new RangeError("DeadlineQueue.push: task deadline is NaN");
    if (this.#heap.length >= this.#cap) {
      this.purgeSettled();
      if (this.#heap.length >= this.#cap) return false;
    }
    this.#heap.push({ task, seq: this.#nextSeq++ });
    this.#siftUp(this.#heap.length - 1);
    return true;
  }

  /** Earliest deadline (absolute ms) among live tasks, or `Infinity` when there are none. */
  earliestDeadline(): number {
    this.#dropSettledHead();
    return this.#heap[0]?.task.deadline ?? Infinity;
  }

  /**
   * Removes and returns up to `max` live tasks, earliest deadline first.
   * Every task at the head with `deadline <= now` (ms) is removed and passed
   * to `onExpired` instead (even when `max` is 0): Clipper drops late tasks
   * before batching (§5.1 step 2) because a model call can no longer help
   * them. Settled tasks are dropped silently.
   */
  take(max: number, now: number, onExpired: (task: T) => void): T[] {
    const limit = max > 0 ? max : 0; // NaN or negative: take nothing, still expire
    const out: T[] = [];
    for (;;) {
      const head = this.#heap[0];
      if (head === undefined) break;
      const task = head.task;
      if (!task.settled && task.deadline > now && out.length >= limit) break;
      // Pop before calling back, so a re-entrant push/take sees a valid heap.
      this.#pop();
      if (task.settled) continue;
      if (task.deadline <= now) onExpired(task);
      else out.push(task);
    }
    return out;
  }

  /**
   * Removes every task (e.g. the model version was deleted) and returns the
   * live ones, earliest deadline first, so the caller can answer each.
   */
  drain(): T[] {
    const slots = this.#heap;
    this.#heap = [];
    return slots
      .filter((s) => !s.task.settled)
      .sort((a, b) => (before(a, b) ? -1 : 1))
      .map((s) => s.task);
  }

  /**
   * Removes every settled task now, in O(n), and returns how many were
   * removed. `push` calls this when full; owners may call it too.
   */
  purgeSettled(): number {
    const live = this.#heap.filter((s) => !s.task.settled);
    const removed = this.#heap.length - live.length;
    if (removed > 0) {
      this.#heap = live;
      // Floyd's bottom-up heapify: O(n).
      for (let i = (live.length >>> 1) - 1; i >= 0; i--) this.#siftDown(i);
    }
    return removed;
  }

  #dropSettledHead(): void {
    while (this.#heap[0]?.task.settled === true) this.#pop();
  }

  #pop(): void {
    const last = this.#heap.pop();
    if (last === undefined || this.#heap.length === 0) return;
    this.#heap[0] = last;
    this.#siftDown(0);
  }

  #siftUp(i: number): void {
    const h = this.#heap;
    const slot = h[i]!;
    while (i > 0) {
      const parent = (i - 1) >>> 1;
      const p = h[parent]!;
      if (!before(slot, p)) break;
      h[i] = p;
      i = parent;
    }
    h[i] = slot;
  }

  #siftDown(i: number): void {
    const h = this.#heap;
    const n = h.length;
    const slot = h[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && before(h[r]!, h[l]!) ? r : l;
      const c = h[child]!;
      if (!before(c, slot)) break;
      h[i] = c;
      i = child;
    }
    h[i] = slot;
  }
}
