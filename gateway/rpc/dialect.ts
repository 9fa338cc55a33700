import type { Logger } from "../../core/telemetry/logger.js";
import type { ReplicaLink } from "../replica.js";
import type { Replica } from "../replica.js";
import type { ReplicaRegistry } from "../replica-registry.js";
import type { TaskOutcome } from "../task.js";
import type { AuthFailure, WorkerAuth } from "./worker-auth.js";

/** Where a dialect delivers a replica's answers (the dispatcher). */
export interface BatchAnswers {
  /** Resolves a batch's tasks and frees its slot; false for a batch the replica does not have in flight. */
  batchAnswered(replica: Replica, batchId: number, outcomes: readonly TaskOutcome[], modelMs?: number, waitMs?: number): boolean;
}

/** What a dialect needs from the worker RPC. */
export interface DialectContext {
  readonly registry: ReplicaRegistry;
  readonly answers: BatchAnswers;
  readonly log: Logger;
  /** Silence after which a native replica is evicted, in ms. */
  readonly evictionMs: number;
  /** Sends frames to one peer, after every message queued for that peer before it (never waiting on another peer); false when it failed. */
  send(identity: Buffer, frames: Buffer[]): Promise<boolean>;
  now(): number;
  /** Set when the port runs CURVE: every native registration must prove its key. */
  readonly auth: WorkerAuth | null;
  /** Counts (and rate-limits the log of) a worker turned away. */
  authFailed(reason: AuthFailure, address: string, message: string): void;
  /** Models Clipper v3 containers may register for on this port; null for any. */
  readonly clipperV3Models: ReadonlySet<string> | null;
  /**
   * True at most once per peer-log interval for `key`: a peer that keeps
   * repeating a refused message (a container re-registering every few
   * seconds) is logged once a minute, not every time.
   */
  mayLog(key: string): boolean;
}

/**
 * A wire dialect: handles its peers' messages, and is the link through
 * which the gateway reaches the replicas it registered.
 */
export interface WorkerDialect extends ReplicaLink {
  handle(identity: Buffer, frames: Buffer[]): void;
}
