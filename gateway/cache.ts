/**
 * Prediction cache (clipper.md §5.4): completed outputs keyed by model,
 * version and exact input bytes, bounded in bytes, evicted with CLOCK; plus
 * coalescing of identical queries that are still in flight.
 *
 * Why CLOCK rather than LRU: a hit only sets a bit, it does not move the
 * entry, so `get` stays O(1) with no list surgery on the hot path, while
 * still giving recently used outputs a second chance over FIFO. It is also
 * what Clipper does, so hit ratios stay comparable.
 */
import { createHash } from "node:crypto";

/**
 * Cache key, in one of two forms that can never be equal: for inputs up to
 * {@link EXACT_KEY_MAX_BYTES}, "\0", the length-prefixed model and version
 * and then the input's own bytes, one latin1 character per byte; for larger
 * inputs, a hex SHA-256 (64 characters, none of them "\0").
 */
export type CacheKey = string;

/**
 * Inputs up to this many bytes are keyed by their bytes: a Map hashes a
 * string of that size faster than SHA-256 runs, and the key stays exact.
 */
export const EXACT_KEY_MAX_BYTES = 1024;

/**
 * Fixed bytes charged per entry on top of key and value bytes: a rough
 * figure for the entry object, its Map slot and ring links in V8, so a
 * cache of many tiny outputs cannot hold far more memory than `maxBytes`.
 */
export const ENTRY_OVERHEAD_BYTES = 64;

function lengthPrefix(n: number): Buffer {
  // 8 bytes big-endian; input lengths stay far below 2^48.
  const b = Buffer.alloc(8);
  b.writeUIntBE(n, 2, 6);
  return b;
}

/**
 * The cache keys of one model version, with what depends only on the model
 * and version built once. Keys never collide across model versions or
 * inputs:
 * - exact form: "\0", the model's length in UTF-16 units, ":", the model,
 *   the version's length, ":", the version, then the input as latin1. The
 *   lengths fix where the model and version end, and the input is all the
 *   rest.
 * - hashed form: SHA-256 over the UTF-8 model, UTF-8 version and input
 *   bytes, each preceded by its 8-byte big-endian length, so ("ab","c") and
 *   ("a","bc") never collide. Unlike Clipper's 64-bit CityHash-based key,
 *   accidental collisions (serving another input's output) are out of
 *   reach.
 */
export class KeySpace {
  readonly #prefix: string;
  /** The hashed form's length-prefixed model and version. */
  readonly #header: Buffer;

  constructor(model: string, version: string) {
    this.#prefix = `\0${model.length}:${model}${version.length}:${version}`;
    const m = Buffer.from(model, "utf8");
    const v = Buffer.from(version, "utf8");
    this.#header = Buffer.concat([lengthPrefix(m.length), m, lengthPrefix(v.length), v]);
  }

  key(input: Uint8Array): CacheKey {
    if (input.byteLength <= EXACT_KEY_MAX_BYTES) {
      const bytes = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
      return this.#prefix + bytes.toString("latin1");
    }
    return createHash("sha256").update(this.#header).update(lengthPrefix(input.byteLength)).update(input).digest("hex");
  }
}

/** The cache key of an input (see {@link KeySpace}; the predictor keeps one KeySpace per model version). */
export function cacheKey(model: string, version: string, input: Uint8Array): CacheKey {
  return new KeySpace(model, version).key(input);
}

/** A ring node: entries form a circular doubly linked list swept by the clock hand. */
class Entry {
  readonly key: CacheKey;
  readonly value: string;
  readonly bytes: number;
  used = false;
  prev: Entry = this;
  next: Entry = this;
  constructor(key: CacheKey, value: string, bytes: number) {
    this.key = key;
    this.value = value;
    this.bytes = bytes;
  }
}

/**
 * Byte-bounded cache of completed outputs. Bytes charged per entry: UTF-8
 * length of key + UTF-8 length of value + {@link ENTRY_OVERHEAD_BYTES}.
 */
export class PredictionCache {
  /** Counters for metrics (hit ratio = hits / (hits + misses)). */
  readonly stats: { hits: number; misses: number; evictions: number } = { hits: 0, misses: 0, evictions: 0 };
  readonly #limit: number;
  readonly #entries = new Map<CacheKey, Entry>();
  /** Next entry the clock hand inspects; new entries go just behind it (visited last). */
  #hand: Entry | null = null;
  #used = 0;

  /** @param maxBytes byte bound; 0 disables storing (get always misses; InFlight coalescing is separate and unaffected). */
  constructor(maxBytes: number) {
    if (!(maxBytes >= 0 && maxBytes !== Infinity)) {
      throw new RangeError(`PredictionCache maxBytes must be a finite non-negative number, got ${maxBytes}`);
    }
    this.#limit = maxBytes;
  }

  /** Bytes currently charged (never above maxBytes). */
  get bytes(): number {
    return this.#used;
  }

  /** Entries held. */
  get size(): number {
    return this.#entries.size;
  }

  /** The byte bound. */
  get maxBytes(): number {
    return this.#limit;
  }

  /** The completed output for `key`, marking it used (second chance), or undefined. */
  get(key: CacheKey): string | undefined {
    const e = this.#entries.get(key);
    if (e === undefined) {
      this.stats.misses++;
      return undefined;
    }
    e.used = true;
    this.stats.hits++;
    return e.value;
  }

  /**
   * Stores a completed output, replacing any previous value for `key`.
   * Evicts with CLOCK until it fits; an output that could never fit
   * (charged bytes > maxBytes) is not stored, and any old value for its key
   * is dropped, so a stale output is never served.
   */
  put(key: CacheKey, value: string): void {
    const old = this.#entries.get(key);
    if (old !== undefined) this.#remove(old);
    const bytes = Buffer.byteLength(key, "utf8") + Buffer.byteLength(value, "utf8") + ENTRY_OVERHEAD_BYTES;
    if (bytes > this.#limit) return;
    while (this.#used + bytes > this.#limit) this.#evictOne();
    const e = new Entry(key, value, bytes);
    const h = this.#hand;
    if (h === null) {
      this.#hand = e;
    } else {
      e.prev = h.prev;
      e.next = h;
      h.prev.next = e;
      h.prev = e;
    }
    this.#entries.set(key, e);
    this.#used += bytes;
  }

  /** Removes `key`; true if it was present. */
  delete(key: CacheKey): boolean {
    const e = this.#entries.get(key);
    if (e === undefined) return false;
    this.#remove(e);
    return true;
  }

  /** Removes every entry (stats are kept). */
  clear(): void {
    this.#entries.clear();
    this.#hand = null;
    this.#used = 0;
  }

  /**
   * Second chance: entries used since the hand last passed get their bit
   * cleared and are skipped; the first unused one is evicted. Terminates
   * within one revolution plus one step, since the sweep clears every bit.
   */
  #evictOne(): void {
    for (;;) {
      const e = this.#hand;
      if (e === null) return; // unreachable while used > 0
      if (e.used) {
        e.used = false;
        this.#hand = e.next;
        continue;
      }
      this.#remove(e);
      this.stats.evictions++;
      return;
    }
  }

  #remove(e: Entry): void {
    this.#entries.delete(e.key);
    this.#used -= e.bytes;
    if (e.next === e) {
      this.#hand = null;
    } else {
      e.prev.next = e.next;
      e.next.prev = e.prev;
      if (this.#hand === e) this.#hand = e.next;
    }
  }
}

/** How a leader reports the outcome of the model call to its followers. */
export type InFlightOutcome<V> = { ok: true; value: V } | { ok: false; error: unknown };

/** Pending state of one key; the promise is made only when a follower arrives. */
interface Pending<V> {
  promise: Promise<V> | null;
  resolve: (value: V) => void;
  reject: (error: unknown) => void;
}

function noop(): void {}

/** A leader's hold on its key (a class rather than a closure: one is made per query). */
class Lead<V> {
  readonly kind = "leader";
  readonly #pending: Map<CacheKey, Pending<V>>;
  readonly #key: CacheKey;
  readonly #p: Pending<V>;
  #done = false;

  constructor(pending: Map<CacheKey, Pending<V>>, key: CacheKey, p: Pending<V>) {
    this.#pending = pending;
    this.#key = key;
    this.#p = p;
  }

  settle(outcome: InFlightOutcome<V>): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#pending.get(this.#key) === this.#p) this.#pending.delete(this.#key);
    if (outcome.ok) this.#p.resolve(outcome.value);
    else this.#p.reject(outcome.error);
  }
}

/**
 * Coalesces identical in-flight queries (Clipper keeps a list of waiting
 * promises on a pending cache entry): the first caller for a key is the
 * leader and runs the query; later callers for the same key share its
 * outcome instead of sending the model a duplicate input.
 */
export class InFlight<V> {
  readonly #pending = new Map<CacheKey, Pending<V>>();

  /**
   * Joins the query for `key`. The leader must call `settle` exactly once
   * (later calls are ignored); followers' promises resolve or reject with
   * the leader's outcome. Settling removes the key first, so a caller
   * arriving afterwards becomes a new leader.
   */
  join(
    key: CacheKey,
  ):
    | { readonly kind: "leader"; settle(outcome: InFlightOutcome<V>): void }
    | { kind: "follower"; promise: Promise<V> } {
    const existing = this.#pending.get(key);
    if (existing !== undefined) {
      if (existing.promise === null) {
        existing.promise = new Promise<V>((resolve, reject) => {
          existing.resolve = resolve;
          existing.reject = reject;
        });
        // A follower that stops waiting (its own deadline passed) must not
        // turn the leader's failure into an unhandled rejection.
        existing.promise.catch(noop);
      }
      return { kind: "follower", promise: existing.promise };
    }
    const p: Pending<V> = { promise: null, resolve: noop, reject: noop };
    this.#pending.set(key, p);
    return new Lead(this.#pending, key, p);
  }

  /** Keys with a query in flight. */
  get size(): number {
    return this.#pending.size;
  }
}
