import type { Context, Span } from "@opentelemetry/api";
import type { QueuedTask } from "./queue.js";

/**
 * How one query ended on the model side, told apart by kind (the predictor
 * turns each into the caller's answer in one place):
 * - value: the model's output text;
 * - failed: the model, the worker or the gateway could not produce an
 *   output for it (`code` is the gRPC status to report); `wholeBatch` when
 *   the model call failed for every item of the batch together, so the
 *   input at fault may be another one (the dispatcher splits the batch);
 * - expired: it was not run before its deadline (dropped from the queue, or
 *   skipped by the worker);
 * - shed: it was refused by its queue, or put back in one that had no room
 *   (its replica left); `overloaded` when refused because the queries ahead
 *   were predicted to outlast its deadline (gateway/admission.ts);
 * - removed: its model version was deleted while it waited;
 * - abandoned: the caller leading it gave up, so nobody waits for it.
 */
export type TaskOutcome =
  | { readonly kind: "value"; readonly output: string }
  | { readonly kind: "failed"; readonly code: number; readonly message: string; readonly wholeBatch?: boolean }
  | { readonly kind: "expired"; readonly message: string }
  | { readonly kind: "shed"; readonly overloaded?: boolean }
  | { readonly kind: "removed" }
  | { readonly kind: "abandoned" };

/**
 * One query waiting for, or running on, a model replica. The predictor
 * creates it; the dispatcher moves it through queue → batch → answer.
 */
export interface Task extends QueuedTask {
  /** Absolute deadline, ms since epoch: min(app SLO, caller's deadline). */
  readonly deadline: number;
  /** Set once nobody waits for its answer any more; the dispatcher then skips it. */
  settled: boolean;
  /** The raw input bytes the model receives. */
  readonly input: Buffer;
  /** The caller's W3C traceparent as received ("" when none); passed on to workers while the gateway does not trace. */
  readonly traceparent: string;
  /** The trace context of the call the query belongs to (its server span); null while tracing is off. */
  readonly traceContext: Context | null;
  /** The span timing the current wait in the queue; null when not traced or not queued. */
  queueSpan: Span | null;
  /** When the task last entered a queue, performance.now() ms (for the queue wait histogram). */
  enqueuedAt: number;
  /** Times the task was sent to a replica (re-dispatch after an eviction adds one). */
  attempts: number;
  /**
   * The dispatcher calls it once, with the model's answer or why there is
   * none; it is called even after `settled` (a late value still fills the
   * cache).
   */
  complete(outcome: TaskOutcome): void;
}
