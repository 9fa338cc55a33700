import type { Redis } from "ioredis";
import { DEPLOYMENT_DB, replicaIdCounterKey } from "../core/deployment-layout.js";
import { DbBatch } from "../core/redis-batch.js";
import type { Logger } from "../core/telemetry/logger.js";

/** Where the registry gets replica ids: at once when they are decided locally, else a promise that never rejects. */
export interface ReplicaIdSource {
  next(name: string, version: string): number | Promise<number>;
}

/**
 * Clipper's own numbering: per model version from 0, in this process only.
 * For a gateway alone with its Redis-less tests; two gateways on one Redis
 * would collide, so the gateway itself uses {@link RedisReplicaIds}.
 */
export class LocalReplicaIds implements ReplicaIdSource {
  readonly #next = new Map<string, number>();

  next(name: string, version: string): number {
    const key = `${name}\u0000${version}`;
    const id = this.#next.get(key) ?? 0;
    this.#next.set(key, id + 1);
    return id;
  }
}

/**
 * First provisional id. Ids from the Redis counters stay below it (a
 * version would need a billion registrations to reach it), so a
 * provisional id never equals a counted one.
 */
export const PROVISIONAL_BASE = 2 ** 30;
/** Provisional ids run from PROVISIONAL_BASE up to int32's maximum (WorkerRegistered.replica_id is int32). */
const PROVISIONAL_SPAN = 2 ** 31 - 1 - PROVISIONAL_BASE;
/** Provisional ids one process may hand out before its range wraps. */
const PROVISIONAL_RUN = 2 ** 20;

/** Longest a registration waits for Redis to hand out an id (connecting included) before it takes a provisional one, in ms. */
export const DEFAULT_ID_WAIT_MS = 1_000;

/**
 * Replica ids from a Redis counter per model version (DB 8, INCR), so they
 * are unique across every gateway sharing one Redis. Serving must not wait
 * for Redis for long: a registration waits at most `waitMs` for an id (for
 * the connection to come up, then for INCR), and after that gets a
 * provisional id, from a range no counter reaches,
 * starting at a random point per process so two gateways cut off at the
 * same time are unlikely to pick the same ids (docs/architecture.md, "DB 3
 * ownership").
 */
export class RedisReplicaIds implements ReplicaIdSource {
  readonly #redis: Redis;
  readonly #where: string;
  readonly #log: Logger;
  readonly #waitMs: number;
  readonly #provisionalStart: number;
  #provisionalCount = 0;
  #ready: Promise<void> | null = null;

  constructor(redis: Redis, where: string, log: Logger, options: { waitMs?: number; random?: () => number } = {}) {
    this.#redis = redis;
    this.#where = where;
    this.#log = log;
    this.#waitMs = options.waitMs ?? DEFAULT_ID_WAIT_MS;
    this.#provisionalStart = Math.floor((options.random ?? Math.random)() * (PROVISIONAL_SPAN - PROVISIONAL_RUN));
  }

  next(name: string, version: string): Promise<number> {
    return new Promise((resolve) => {
      let settled = false;
      const settle = (id: number | null, why: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(id ?? this.#provisional(name, version, why));
      };
      const timer = setTimeout(() => settle(null, `Redis gave no id within ${this.#waitMs} ms`), this.#waitMs);
      timer.unref();
      // Not connected yet (a gateway just started) or reconnecting: wait for it, within the same bound.
      void this.#whenReady()
        .then(() => (settled ? null : this.#counted(name, version)))
        .then(
          (id) => settle(id, "its Redis counter is exhausted"),
          (err: unknown) => settle(null, (err as Error).message),
        );
    });
  }

  /** Resolves when the commands connection is ready; one listener for any number of waiting registrations. */
  #whenReady(): Promise<void> {
    if (this.#redis.status === "ready") return Promise.resolve();
    return (this.#ready ??= new Promise<void>((resolve) =>
      this.#redis.once("ready", () => {
        this.#ready = null;
        resolve();
      }),
    ));
  }

  /** The next counted id, or null past the counted range. */
  async #counted(name: string, version: string): Promise<number | null> {
    const [n] = await new DbBatch(this.#redis, this.#where).incr(DEPLOYMENT_DB, replicaIdCounterKey(name, version)).run();
    const id = Number(n) - 1;
    return Number.isSafeInteger(id) && id >= 0 && id < PROVISIONAL_BASE ? id : null;
  }

  #provisional(name: string, version: string, why: string): number {
    const id = PROVISIONAL_BASE + ((this.#provisionalStart + this.#provisionalCount++) % PROVISIONAL_SPAN);
    this.#log.warn({ model: name, version, replicaId: id, why }, "replica gets a provisional id: no id from Redis");
    return id;
  }
}
