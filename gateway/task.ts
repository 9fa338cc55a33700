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
  /** W3C traceparent of the query's span ("" when not traced). */
  readonly traceparent: string;
  /** Times the task was sent to a replica (re-dispatch after an eviction adds one). */
  attempts: number;
  /**
   * Called exactly once with the model's answer, even after `settled` (a
   * late answer still fills the cache).
   */
  complete(outcome: TaskOutcome): void;
}
