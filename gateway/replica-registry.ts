import { EventEmitter } from "node:events";
import type { Logger } from "../core/telemetry/logger.js";
import { poolKey, Replica, type RemovalReason, type ReplicaFields } from "./replica.js";
import { LocalReplicaIds, type ReplicaIdSource } from "./replica-ids.js";

export interface ReplicaEvents {
  added: [Replica];
  draining: [Replica];
  /** Taken out of service: a batch ran past its timeout (the reason says which). */
  quarantined: [Replica, string];
  removed: [Replica, RemovalReason];
  /** Heartbeat intervals a replica let pass in silence since the last report. */
  missedBeats: [Replica, number];
}

/**
 * Live replicas by ZeroMQ identity, and the one place their phases change
 * (gateway/replica.ts draws them): every move is logged and announced, so
 * the dispatcher, the DB 3 records (gateway/replica-records.ts), metrics and
 * WatchWorkers follow one story. A peer joins in two steps: it is
 * "joining" while its replica id is drawn (from Redis, shared by every
 * gateway: gateway/replica-ids.ts), then serving. Connection ids follow
 * Clipper: one counter per process from 0, never reused while it lives.
 * It also evicts replicas that fall silent.
 */
export class ReplicaRegistry extends EventEmitter<ReplicaEvents> {
  readonly #log: Logger;
  readonly #byAddress = new Map<string, Replica>();
  readonly #ids: ReplicaIdSource;
  /** Addresses whose replica id is being drawn. */
  readonly #joining = new Set<string>();
  #nextConnectionId = 0;
  #closed = false;
  #sweeper: NodeJS.Timeout | null = null;

  constructor(log: Logger, ids: ReplicaIdSource = new LocalReplicaIds()) {
    super();
    this.#log = log;
    this.#ids = ids;
  }

  /** True while the peer at `address` waits for its replica id: its messages are neither a new peer's nor a replica's yet. */
  joining(address: string): boolean {
    return this.#joining.has(address);
  }

  get(address: string): Replica | undefined {
    return this.#byAddress.get(address);
  }

  all(): IterableIterator<Replica> {
    return this.#byAddress.values();
  }

  get size(): number {
    return this.#byAddress.size;
  }

  /**
   * Draws a replica id and registers the peer; null when it is registered
   * or joining already, or the registry was cleared meanwhile (the gateway
   * is stopping). Never rejects: the id source does not.
   */
  async join(fields: ReplicaFields): Promise<Replica | null> {
    const address = fields.identity.toString("hex");
    if (this.#closed || this.#byAddress.has(address) || this.#joining.has(address)) return null;
    this.#joining.add(address);
    let replicaId: number;
    try {
      replicaId = await this.#ids.next(fields.modelName, fields.modelVersion);
    } finally {
      this.#joining.delete(address);
    }
    if (this.#closed || this.#byAddress.has(address)) return null;
    return this.add(fields, replicaId);
  }

  /** Registers a replica under an id already drawn, serving from now on. */
  add(fields: ReplicaFields, replicaId: number): Replica {
    const replica = new Replica(fields, replicaId, this.#nextConnectionId++);
    this.#byAddress.set(replica.address, replica);
    this.#log.info(
      { model: replica.modelName, version: replica.modelVersion, replicaId, dialect: replica.dialect, address: replica.address },
      "worker registered",
    );
    this.emit("added", replica);
    return replica;
  }

  /** The peer at `address` spoke; returns its replica, if registered. */
  seen(address: string, now: number): Replica | undefined {
    const replica = this.#byAddress.get(address);
    replica?.liveness.seen(now);
    return replica;
  }

  /** Serving → draining: it gets nothing new, and leaves once its batches are answered (at once when idle). */
  drain(replica: Replica): void {
    if (!replica.startDraining()) return;
    this.#log.info({ model: replica.modelName, version: replica.modelVersion, replicaId: replica.replicaId }, "worker draining");
    this.emit("draining", replica);
    this.leaveIfDrained(replica);
  }

  /**
   * Serving | draining → quarantined: it gets nothing new, and its peer is
   * asked to drain (a native worker then exits, and under the replica
   * manager is restarted); it stays listed until the peer goes. False when
   * it was quarantined or gone already.
   */
  quarantine(replica: Replica, reason: string): boolean {
    if (!replica.quarantine()) return false;
    this.#log.warn({ model: replica.modelName, version: replica.modelVersion, replicaId: replica.replicaId, reason }, "worker quarantined");
    this.emit("quarantined", replica, reason);
    replica.link.dismiss(replica, `quarantined: ${reason}`);
    return true;
  }

  /** Call after each answered batch: a draining replica that is now idle leaves. */
  leaveIfDrained(replica: Replica): void {
    if (replica.draining && replica.inFlight.size === 0) this.remove(replica, "drained");
  }

  /** Asks the peer to stop (in its dialect) and removes it. */
  dismiss(replica: Replica, reason: RemovalReason, message: string): void {
    if (replica.phase.name === "gone") return;
    replica.link.dismiss(replica, message);
    this.remove(replica, reason);
  }

  /** Removes a replica (if still present); its batches in flight are the dispatcher's to re-queue. */
  remove(replica: Replica, reason: RemovalReason): boolean {
    if (this.#byAddress.get(replica.address) !== replica || !replica.leave(reason)) return false;
    this.#byAddress.delete(replica.address);
    this.#log.info(
      { model: replica.modelName, version: replica.modelVersion, replicaId: replica.replicaId, reason, inFlight: replica.inFlight.size },
      reason === "evicted" ? "worker evicted" : "worker removed",
    );
    this.emit("removed", replica, reason);
    return true;
  }

  /** True when no replica of a model version is left (its per-version state may go). */
  noneLeft(name: string, version: string): boolean {
    const key = poolKey(name, version);
    for (const r of this.#byAddress.values()) if (r.pool === key) return false;
    return true;
  }

  /** Removes every replica, and admits none from now on (the gateway is stopping). */
  clear(reason: RemovalReason): void {
    this.#closed = true;
    for (const r of [...this.#byAddress.values()]) this.remove(r, reason);
  }

  /** Counts missed heartbeats and evicts replicas silent past their limit. */
  sweep(now: number): void {
    for (const r of [...this.#byAddress.values()]) {
      const { newlyMissed, expired } = r.liveness.check(now, r.inFlight.size > 0);
      if (newlyMissed > 0) this.emit("missedBeats", r, newlyMissed);
      if (expired) this.remove(r, "evicted");
    }
  }

  /** Sweeps every `everyMs` until {@link stopSweeping}; the timer never holds the process open. */
  startSweeping(everyMs: number): void {
    this.stopSweeping();
    this.#sweeper = setInterval(() => this.sweep(Date.now()), everyMs);
    this.#sweeper.unref();
  }

  stopSweeping(): void {
    if (this.#sweeper !== null) clearInterval(this.#sweeper);
    this.#sweeper = null;
  }
}
