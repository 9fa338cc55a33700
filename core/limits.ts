/**
 * Bounds on the numbers that configure serving (an app's SLO, a model's
 * batch size, a deployment's replicas and worker settings): the one home of
 * these limits. Management refuses values outside them; a value read from
 * Redis that someone else wrote outside them is clamped (with a warning for
 * the reader to log once) or, when it is not a number at all, makes the
 * entry invalid. Either way no reader ever arms a timer or sizes anything
 * from an unbounded number: Node's timers overflow above 2^31-1 ms (~24.8
 * days) and fire at once.
 */

/** An inclusive range of whole numbers, and what it bounds (for messages). */
export interface Bounds {
  readonly what: string;
  readonly min: number;
  readonly max: number;
}

/**
 * An app's latency SLO, in µs: at most 30 minutes, below both the timer
 * limit and the int32 of admin.proto's latency_slo_micros.
 */
export const LATENCY_SLO_MICROS: Bounds = { what: "latency_slo_micros", min: 1, max: 1_800_000_000 };
/** A model version's fixed batch size (-1, adaptive, is allowed besides). */
export const BATCH_SIZE: Bounds = { what: "batch_size", min: 1, max: 100_000 };
/** Replicas of one version on one machine: a typo such as 1000 must not fork-bomb the host. */
export const REPLICAS: Bounds = { what: "replicas", min: 0, max: 64 };
/** Batches one worker runs at once (0: the worker's default). */
export const WORKER_CONCURRENCY: Bounds = { what: "worker.concurrency", min: 0, max: 1_024 };
/** Largest batch a worker takes (0: no limit). */
export const WORKER_MAX_BATCH_SIZE: Bounds = { what: "worker.max_batch_size", min: 0, max: BATCH_SIZE.max };

/** Whether `n` is a whole number within `b`. */
export function inBounds(n: number, b: Bounds): boolean {
  return Number.isSafeInteger(n) && n >= b.min && n <= b.max;
}

/** "latency_slo_micros must be a whole number from 1 to 3600000000, got 5e12": for refusals and warnings alike. */
export function boundsMessage(b: Bounds, got: unknown): string {
  return `${b.what} must be a whole number from ${b.min} to ${b.max}, got ${String(got)}`;
}

/**
 * A number read from Redis brought within `b`: null when it is not a whole
 * number or is below the minimum (the entry is invalid: a zero or negative
 * SLO has no sensible stand-in), else the value, lowered to the maximum with
 * a warning when it was above.
 */
export function clampStored(n: number, b: Bounds): { value: number; warning: string | null } | null {
  if (!Number.isInteger(n) || n < b.min) return null;
  if (n > b.max) return { value: b.max, warning: `${boundsMessage(b, n)}; using ${b.max}` };
  return { value: n, warning: null };
}
