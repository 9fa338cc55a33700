import type { LatencySummary } from "./stats.js";

/** One load run against one target, as both load generators report it. */
export interface LoadResult extends LatencySummary {
  /** Requests the generator completed in the measured window (all statuses). */
  readonly requests: number;
  /** Completed requests per second over the measured window. */
  readonly throughput: number;
  /** Length of the measured window, in seconds. */
  readonly seconds: number;
  /** Requests the generator counted as successes over the whole run (HTTP 2xx). */
  readonly succeeded: number;
  /** Requests the generator counted as failed or errored (no answer, non-2xx). */
  readonly failed: number;
  /** Answers that were the app's default output instead of the model's (HTTP paths only; -1 when not checked). */
  readonly defaults: number;
  /** Callers (h2load processes) killed at the time bound because a call never finished (gRPC only). */
  readonly stuck?: number;
}
