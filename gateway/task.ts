import type { Context, Span } from "@opentelemetry/api";
import type { QueuedTask } from "./queue.js";

/** A model's answer to one query: its output text, or a per-item error. */
export type TaskOutcome = { readonly ok: true; readonly output: string } | { readonly ok: false; readonly code: number; readonly message: string };

/**
 * One query waiting for, or running on, a model replica. The predictor
 * creates it; the dispatcher moves it through queue → batch → answer.
 */
export interface Task extends QueuedTask {
  /** Absolute deadline, ms since epoch: min(app SLO, caller's deadline). */
  readonly deadline: number;
  /** Set once the caller has its answer (model output, default, or error). */
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
   * Called exactly once with the model's answer, even after `settled` (a
   * late answer still fills the cache).
   */
  complete(outcome: TaskOutcome): void;
}
