import type { Redis } from "ioredis";
import { DbBatch } from "../core/redis-batch.js";
import { DB, containerKeysPattern } from "../core/redis-layout.js";
import { deleteIfStale, readReplicaEntries } from "../core/replica-entries.js";
import type { Logger } from "../core/telemetry/logger.js";

/** Keys asked for per SCAN step: each step, and the reads that follow it, stay short for Redis. */
const SWEEP_SCAN_COUNT = 200;

/**
 * Removes DB 3 entries whose owning gateway stopped renewing its liveness
 * key, or restarted since writing them (core/deployment-layout.ts
 * containerEntryIsLive): every gateway sweeps every entry, its own
 * predecessor's included, so one surviving gateway cleans up after any
 * number of dead ones. A pass walks DB 3 by SCAN in bounded steps and
 * deletes each stale entry with a check-and-delete inside Redis. Entries
 * without an owner (Clipper's, older gateways') are never touched, nor are
 * this run's own.
 */
export class StaleReplicaSweep {
  readonly #redis: Redis;
  readonly #where: string;
  readonly #log: Logger;
  readonly #run: string;
  #timer: NodeJS.Timeout | null = null;
  #passing: Promise<number> | null = null;
  #again = false;

  constructor(redis: Redis, where: string, run: string, log: Logger) {
    this.#redis = redis;
    this.#where = where;
    this.#run = run;
    this.#log = log;
  }

  /** Sweeps every `everyMs` until {@link stop}; the timer never holds the process open. */
  start(everyMs: number): void {
    this.stop();
    this.#timer = setInterval(() => void this.sweep(), everyMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /**
   * One pass; resolves to the entries it removed. A call during a pass
   * waits for it and then runs one more (what prompted it may postdate the
   * pass's reads). Never rejects: a Redis failure ends the pass, logged.
   */
  async sweep(): Promise<number> {
    if (this.#passing !== null) {
      this.#again = true;
      return this.#passing;
    }
    this.#passing = this.#pass().finally(() => {
      this.#passing = null;
      if (this.#again) {
        this.#again = false;
        void this.sweep();
      }
    });
    return this.#passing;
  }

  async #pass(): Promise<number> {
    if (this.#redis.status !== "ready") return 0;
    let removed = 0;
    let cursor = "0";
    try {
      do {
        const [reply] = await new DbBatch(this.#redis, this.#where).scan(DB.CONTAINERS, cursor, containerKeysPattern("", ""), SWEEP_SCAN_COUNT).run();
        const [next, page] = reply as [string, string[]];
        cursor = next;
        for (const e of await readReplicaEntries(this.#redis, this.#where, page)) {
          if (e.live || e.owner === null || e.owner.run === this.#run) continue;
          if (await deleteIfStale(this.#redis, this.#where, e.key)) {
            removed++;
            this.#log.info({ key: e.key, gatewayId: e.owner.gatewayId }, "removed a replica entry whose gateway is gone");
          }
        }
      } while (cursor !== "0");
    } catch (err) {
      this.#log.warn({ where: this.#where, err: (err as Error).message }, "stale replica sweep stopped early; the next one continues");
    }
    return removed;
  }
}
