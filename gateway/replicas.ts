import { EventEmitter } from "node:events";
import type { Span } from "@opentelemetry/api";
import type { Redis } from "ioredis";
import type { InputType } from "../core/input-types.js";
import { DbBatch } from "../core/redis-batch.js";
import { containerKey, DB, encodeContainer, modelKey } from "../core/redis-layout.js";
import type { Logger } from "../core/telemetry/logger.js";
import type { WireTraceContext } from "../core/telemetry/tracing.js";
import { LatencyModel } from "./latency-model.js";

export type Dialect = "clipper-v3" | "native";

/** Why a replica left. */
export type RemovalReason = "evicted" | "drained" | "disconnected" | "model-removed";

/** A batch sent to a replica and not yet answered. */
export interface SentBatch<T> {
  readonly id: number;
  readonly tasks: readonly T[];
  /** When it was sent, ms since epoch (for the latency model). */
  readonly sentAt: number;
  /** When it was sent, performance.now() ms (for the batch duration histogram). */
  readonly startedAt: number;
  /** The batch's span; null while tracing is off. */
  readonly span: Span | null;
  /** Trace context its native message carries (see gateway/spans.ts). */
  readonly wire: WireTraceContext | undefined;
}

/** One connected model replica (a worker process or a Clipper container). */
export class Replica<T = unknown> {
  readonly identity: Buffer;
  /** Hex of the ZeroMQ routing identity; the registry's key. */
  readonly address: string;
  readonly dialect: Dialect;
  readonly modelName: string;
  readonly modelVersion: string;
  readonly inputType: InputType;
  readonly replicaId: number;
  readonly connectionId: number;
  /** Batches it may run at once (Clipper v3: 1). */
  readonly slots: number;
  /** Its own batch-size limit; Infinity when it has none. */
  readonly maxBatchSize: number;
  readonly latency: LatencyModel;
  readonly inFlight = new Map<number, SentBatch<T>>();
  lastSeen: number;
  draining = false;
  /**
   * Time the model itself took on the last batch, in ms, as the worker
   * reported it (native workers only; 0 when unknown).
   */
  lastModelMs = 0;
  /** Heartbeat intervals counted as missed since `lastSeen` was `missedSince` (see WorkerRpc). */
  missedBeats = 0;
  missedSince: number;

  constructor(fields: {
    identity: Buffer;
    dialect: Dialect;
    modelName: string;
    modelVersion: string;
    inputType: InputType;
    replicaId: number;
    connectionId: number;
    slots: number;
    maxBatchSize: number;
    now: number;
  }) {
    this.identity = fields.identity;
    this.address = fields.identity.toString("hex");
    this.dialect = fields.dialect;
    this.modelName = fields.modelName;
    this.modelVersion = fields.modelVersion;
    this.inputType = fields.inputType;
    this.replicaId = fields.replicaId;
    this.connectionId = fields.connectionId;
    this.slots = fields.slots;
    this.maxBatchSize = fields.maxBatchSize;
    this.latency = new LatencyModel();
    this.lastSeen = fields.now;
    this.missedSince = fields.now;
  }

  /** "name:version", the key of its model version's pool. */
  get modelKey(): string {
    return modelKey(this.modelName, this.modelVersion);
  }

  get hasFreeSlot(): boolean {
    return !this.draining && this.inFlight.size < this.slots;
  }
}

export interface ReplicaEvents<T> {
  added: [Replica<T>];
  removed: [Replica<T>, RemovalReason];
  draining: [Replica<T>];
}

/**
 * Live replicas by ZeroMQ identity, with Clipper's counters: replica ids per
 * model version and one connection id counter, both from 0 and never reused
 * while the process lives. Registration writes the replica's DB 3 hash
 * exactly as Clipper does; removal deletes it.
 */
export class ReplicaRegistry<T> extends EventEmitter<ReplicaEvents<T>> {
  readonly #redis: Redis;
  readonly #where: string;
  readonly #log: Logger;
  readonly #byAddress = new Map<string, Replica<T>>();
  readonly #nextReplicaId = new Map<string, number>();
  #nextConnectionId = 0;

  constructor(redis: Redis, where: string, log: Logger) {
    super();
    this.#redis = redis;
    this.#where = where;
    this.#log = log;
  }

  get(address: string): Replica<T> | undefined {
    return this.#byAddress.get(address);
  }

  all(): IterableIterator<Replica<T>> {
    return this.#byAddress.values();
  }

  get size(): number {
    return this.#byAddress.size;
  }

  /** Registers a replica and records it in DB 3 (a Redis outage is logged, not fatal). */
  add(fields: Omit<ConstructorParameters<typeof Replica<T>>[0], "replicaId" | "connectionId">): Replica<T> {
    const key = modelKey(fields.modelName, fields.modelVersion);
    const replicaId = this.#nextReplicaId.get(key) ?? 0;
    this.#nextReplicaId.set(key, replicaId + 1);
    const replica = new Replica<T>({ ...fields, replicaId, connectionId: this.#nextConnectionId++ });
    this.#byAddress.set(replica.address, replica);
    this.#log.info(
      { model: replica.modelName, version: replica.modelVersion, replicaId, dialect: replica.dialect, address: replica.address },
      "worker registered",
    );
    void this.#write(replica, true);
    this.emit("added", replica);
    return replica;
  }

  /** Removes a replica (if still present) and deletes its DB 3 entry. */
  remove(replica: Replica<T>, reason: RemovalReason): boolean {
    if (this.#byAddress.get(replica.address) !== replica) return false;
    this.#byAddress.delete(replica.address);
    this.#log.info(
      { model: replica.modelName, version: replica.modelVersion, replicaId: replica.replicaId, reason, inFlight: replica.inFlight.size },
      reason === "evicted" ? "worker evicted" : "worker removed",
    );
    void this.#write(replica, false);
    this.emit("removed", replica, reason);
    return true;
  }

  markDraining(replica: Replica<T>): void {
    if (replica.draining) return;
    replica.draining = true;
    this.#log.info({ model: replica.modelName, version: replica.modelVersion, replicaId: replica.replicaId }, "worker draining");
    this.emit("draining", replica);
  }

  /** Rewrites every live replica's DB 3 entry (after Redis comes back). */
  async rewriteAll(): Promise<void> {
    await Promise.all([...this.#byAddress.values()].map((r) => this.#write(r, true)));
  }

  async #write(r: Replica<T>, present: boolean): Promise<void> {
    const key = containerKey(r.modelName, r.modelVersion, r.replicaId);
    const batch = new DbBatch(this.#redis, this.#where);
    if (present) {
      batch.hset(DB.CONTAINERS, key, encodeContainer({
        name: r.modelName,
        version: r.modelVersion,
        replicaId: r.replicaId,
        zmqConnectionId: r.connectionId,
        inputType: r.inputType,
      }));
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
