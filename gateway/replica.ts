import type { Span } from "@opentelemetry/api";
import type { InputType } from "../core/input-types.js";
import type { WireTraceContext } from "../core/telemetry/tracing.js";
import { LatencyModel } from "./latency-model.js";
import { Liveness, type LivenessPolicy } from "./liveness.js";
import type { Task } from "./task.js";

export type Dialect = "clipper-v3" | "native";

/** Why a replica left. */
/** Why a replica left; "key-revoked": its CURVE key left the allow-list or no longer allows its model. */
export type RemovalReason = "evicted" | "drained" | "disconnected" | "model-removed" | "key-revoked";

/** A batch sent to a replica and not yet answered. */
export interface SentBatch {
  readonly id: number;
  readonly tasks: readonly Task[];
  /** When it was sent, ms since epoch (for the latency model). */
  readonly sentAt: number;
  /** When it was sent, performance.now() ms (for the batch duration histogram). */
  readonly startedAt: number;
  /** The batch's span; null while tracing is off. */
  readonly span: Span | null;
  /** Trace context its native message carries (see gateway/spans.ts). */
  readonly wire: WireTraceContext | undefined;
  /** Fires when the batch has run past its timeout (the model may hang); cleared when it is answered or its replica leaves. */
  timeout: NodeJS.Timeout | null;
}

/**
 * How the gateway reaches one replica: the worker RPC's dialect for it.
 * A replica carries its link (as a grpc-js subchannel carries its
 * transport), so the dispatcher sends batches without knowing the RPC.
 */
export interface ReplicaLink {
  /** Sends a batch; false when the send failed at once (the peer is gone or stuck). */
  sendBatch(replica: Replica, batch: SentBatch, deadline: number): Promise<boolean>;
  /** Asks the peer to stop serving, if its dialect can say so (Clipper RPC v3 cannot). */
  dismiss(replica: Replica, reason: string): void;
}

/**
 * A replica's life, one phase at a time:
 *
 *     serving ──drain──▶ draining ──idle──▶ gone("drained")
 *        │                  │
 *        ├──batch timeout───┴──▶ quarantined
 *        │                            │
 *        └──────leave─────────────────┴──▶ gone(evicted | disconnected | model-removed)
 *
 * Only serving replicas get new batches; a draining one finishes what it
 * has. A quarantined one ran a batch past its timeout (its model may hang):
 * it gets nothing new and stays listed until its peer goes (a worker asked
 * to drain exits once its model returns or its own model timeout ends it;
 * a Clipper v3 container, which cannot be asked, is removed as drained when
 * its late answer comes, and registers again).
 * Gone is final: a peer that comes back registers as a new replica.
 */
export type ReplicaPhase =
  | { readonly name: "serving" }
  | { readonly name: "draining" }
  | { readonly name: "quarantined" }
  | { readonly name: "gone"; readonly reason: RemovalReason };

const SERVING: ReplicaPhase = { name: "serving" };
const DRAINING: ReplicaPhase = { name: "draining" };
const QUARANTINED: ReplicaPhase = { name: "quarantined" };

/** What registering a replica takes; ids are assigned by the registry. */
export interface ReplicaFields {
  readonly identity: Buffer;
  readonly dialect: Dialect;
  readonly modelName: string;
  readonly modelVersion: string;
  readonly inputType: InputType;
  /** Batches it may run at once (Clipper v3: 1). */
  readonly slots: number;
  /** Its own batch-size limit; Infinity when it has none. */
  readonly maxBatchSize: number;
  readonly link: ReplicaLink;
  readonly liveness: LivenessPolicy;
  readonly now: number;
  /** The Z85 CURVE key it proved it holds; absent when its port runs no CURVE. */
  readonly principal?: string;
  /** The worker process's own instance id (RegisterWorker.worker_id); absent when it sent none. */
  readonly workerId?: string;
}

/** One connected model replica (a worker process or a Clipper container). */
export class Replica {
  readonly identity: Buffer;
  /** Hex of the ZeroMQ routing identity; the registry's key. */
  readonly address: string;
  readonly dialect: Dialect;
  readonly modelName: string;
  readonly modelVersion: string;
  /** The in-memory key of its model version's pool (not a Redis key). */
  readonly pool: string;
  readonly inputType: InputType;
  readonly replicaId: number;
  readonly connectionId: number;
  readonly slots: number;
  readonly maxBatchSize: number;
  readonly link: ReplicaLink;
  /** The Z85 CURVE key it proved it holds; null when its port runs no CURVE. */
  readonly principal: string | null;
  /** The worker process's instance id, the same on every gateway it connects to; null when it sent none (Clipper containers). */
  readonly workerId: string | null;
  readonly latency = new LatencyModel();
  readonly liveness: Liveness;
  readonly inFlight = new Map<number, SentBatch>();
  /**
   * Time the model itself took on the last batch, in ms, as the worker
   * reported it (native workers only; 0 when unknown).
   */
  lastModelMs = 0;
  #phase: ReplicaPhase = SERVING;

  constructor(fields: ReplicaFields, replicaId: number, connectionId: number) {
    this.identity = fields.identity;
    this.address = fields.identity.toString("hex");
    this.dialect = fields.dialect;
    this.modelName = fields.modelName;
    this.modelVersion = fields.modelVersion;
    this.pool = poolKey(fields.modelName, fields.modelVersion);
    this.inputType = fields.inputType;
    this.replicaId = replicaId;
    this.connectionId = connectionId;
    this.slots = fields.slots;
    this.maxBatchSize = fields.maxBatchSize;
    this.link = fields.link;
    this.principal = fields.principal ?? null;
    this.workerId = fields.workerId ?? null;
    this.liveness = new Liveness(fields.liveness, fields.now);
  }

  get phase(): ReplicaPhase {
    return this.#phase;
  }

  get draining(): boolean {
    return this.#phase.name === "draining";
  }

  get quarantined(): boolean {
    return this.#phase.name === "quarantined";
  }

  /** Serving: takes new batches. */
  get serving(): boolean {
    return this.#phase.name === "serving";
  }

  get hasFreeSlot(): boolean {
    return this.#phase.name === "serving" && this.inFlight.size < this.slots;
  }

  /**
   * Moves serving → draining; false (and no change) from any other phase.
   * Only the registry calls it, so that every move is announced.
   */
  startDraining(): boolean {
    if (this.#phase.name !== "serving") return false;
    this.#phase = DRAINING;
    return true;
  }

  /** Moves serving | draining → quarantined; false (and no change) from any other phase. Only the registry calls it. */
  quarantine(): boolean {
    if (this.#phase.name !== "serving" && this.#phase.name !== "draining") return false;
    this.#phase = QUARANTINED;
    return true;
  }

  /** Moves serving | draining | quarantined → gone; false (and no change) once gone. Only the registry calls it. */
  leave(reason: RemovalReason): boolean {
    if (this.#phase.name === "gone") return false;
    this.#phase = { name: "gone", reason };
    return true;
  }
}

/** The in-memory key of a model version (Redis keys are spelled by core/redis-layout.ts). */
export function poolKey(name: string, version: string): string {
  return `${name}\u0000${version}`;
}
