import type { Redis } from "ioredis";
import { encodeContainerOwner } from "../core/deployment-layout.js";
import { DbBatch } from "../core/redis-batch.js";
import { containerKey, DB, encodeContainer } from "../core/redis-layout.js";
import type { Logger } from "../core/telemetry/logger.js";
import type { Replica } from "./replica.js";
import type { ReplicaRegistry } from "./replica-registry.js";

/** The gateway process that owns the DB 3 entries it writes. */
export interface GatewayIdentity {
  /** Stable across restarts on one host and port (--gateway-id). */
  readonly gatewayId: string;
  /** New at every start, so a restarted gateway tells its predecessor's entries from its own. */
  readonly run: string;
}

/**
 * Keeps Clipper's DB 3 (one hash per connected replica, clipper.md §1.3) in
 * step with the registry: a hash written when a replica registers, deleted
 * when it leaves, and every live one rewritten when Redis comes back (or
 * when this gateway's liveness key had lapsed, gateway/gateway-presence.ts).
 * Each hash carries Clipper's seven fields plus its owner (deployment-layout.ts
 * CONTAINER_OWNER_FIELDS). A Redis outage is logged, never fatal: serving
 * does not depend on DB 3.
 */
export class ReplicaRecords {
  readonly #redis: Redis;
  readonly #where: string;
  readonly #log: Logger;
  readonly #registry: ReplicaRegistry;
  readonly #owner: GatewayIdentity;
  readonly #pending = new Set<Promise<void>>();
  readonly #onAdded = (r: Replica): void => this.#track(this.#write(r, true));
  readonly #onRemoved = (r: Replica): void => this.#track(this.#write(r, false));
  readonly #onReady = (): void => this.rewriteAll();

  constructor(registry: ReplicaRegistry, redis: Redis, where: string, owner: GatewayIdentity, log: Logger) {
    this.#registry = registry;
    this.#owner = owner;
    this.#redis = redis;
    this.#where = where;
    this.#log = log;
    registry.on("added", this.#onAdded).on("removed", this.#onRemoved);
    redis.on("ready", this.#onReady);
  }

  /** Writes every live replica's entry again (it may have been lost or swept). */
  rewriteAll(): void {
    for (const r of this.#registry.all()) this.#track(this.#write(r, true));
  }

  /** Stops following the registry and waits for the writes already started (the last ones delete the entries of a stopping gateway). */
  async close(): Promise<void> {
    this.#registry.off("added", this.#onAdded).off("removed", this.#onRemoved);
    this.#redis.off("ready", this.#onReady);
    await Promise.all(this.#pending);
  }

  #track(write: Promise<void>): void {
    this.#pending.add(write);
    void write.finally(() => this.#pending.delete(write));
  }

  async #write(r: Replica, present: boolean): Promise<void> {
    const key = containerKey(r.modelName, r.modelVersion, r.replicaId);
    const batch = new DbBatch(this.#redis, this.#where);
    if (present) {
      // One HSET, so a keyspace subscriber sees one event per entry, as from Clipper.
      batch.hset(DB.CONTAINERS, key, {
        ...encodeContainer({
          name: r.modelName,
          version: r.modelVersion,
          replicaId: r.replicaId,
          zmqConnectionId: r.connectionId,
          inputType: r.inputType,
        }),
        ...encodeContainerOwner({ ...this.#owner, workerId: r.workerId }),
      });
    } else {
      batch.del(DB.CONTAINERS, key);
    }
    try {
      await batch.run();
    } catch (err) {
      this.#log.warn({ key, err: (err as Error).message }, "could not update replica in Redis; will rewrite on reconnect");
    }
  }
}
