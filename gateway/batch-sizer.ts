/**
 * Adaptive batch size per replica: the largest batch the replica's
 * LatencyModel expects to finish within the earliest queued deadline,
 * capped by the model's fixed `batch_size` when one is set (clipper.md §5.2).
 *
 * Differences from Clipper's released code, and why:
 * - No padding. Clipper fills an exploratory batch with copies of the last
 *   task ("artificial" tasks), so models receive duplicate inputs
 *   (ucbrise/clipper issue #513) and waste compute. Here a batch is never
 *   larger than the live tasks waiting (`queued`); exploration only happens
 *   when there is real load to explore with.
 * - No randomness. Clipper grows by ×(1 + N(0.1, 0.05)); this is
 *   deterministic, and bounded instead by the model's prediction interval,
 *   which widens with the distance from sizes already seen.
 */
import type { LatencyModel } from "./latency-model.js";

/** Below this largest-seen size, exploration grows by one item at a time (Clipper's ADDITIVE_EXPANSION_THRESHOLD). */
const ADDITIVE_EXPLORATION_BELOW = 10;
/**
 * Above it, the largest size considered is this multiple of the largest seen:
 * fast enough to reach a large batch in a handful of batches, while the
 * prediction (whose margin grows with extrapolation) still has to fit.
 */
const EXPLORATION_GROWTH_FACTOR = 2;

/** Share of the time left before a deadline a batch may use (Clipper's budget_decay_): the rest absorbs transport and jitter. */
const BUDGET_FACTOR = 0.92;

/** The time a batch may take for a query due at `deadline`, in ms (negative once it is lost). */
export function budgetMs(deadline: number, now: number): number {
  return (deadline - now) * BUDGET_FACTOR;
}

/**
 * True when not even a one-item batch is expected to finish within
 * `budget`: the query is doomed. A model that has seen no batch yet dooms
 * nothing (it has no estimate).
 */
export function isDoomed(model: LatencyModel, budget: number): boolean {
  return model.samples > 0 && budget < model.predict(1);
}

/** Inputs to {@link chooseBatchSize}. */
export interface BatchSizeArgs {
  /** The replica's latency model. */
  model: LatencyModel;
  /** Live tasks waiting in the queue (items). */
  queued: number;
  /**
   * Time left until the earliest queued deadline, in ms, already reduced by
   * the caller's safety factor (Clipper uses 0.92 × (deadline − now)).
   */
  budgetMs: number;
  /** The model's fixed `batch_size` (items), or `Infinity` when adaptive (`-1`). Values below 1 act as 1. */
  cap: number;
}

/**
 * The batch size (items) to take now, in [1, min(queued, cap, model.maxBatchSize)],
 * or 0 when nothing is queued.
 *
 * - No observations yet: 1.
 * - Otherwise the largest n up to an exploration ceiling (largest seen + 1
 *   while small, else ×2) with `model.predict(n) <= budgetMs`.
 * - Before two distinct sizes are seen the slope is unknown and predict()
 *   assumes latency ∝ size above the size seen; if that allows nothing
 *   larger, the sizer still tries largest seen + 1 when the largest seen
 *   size itself fits (Clipper's additive exploration), to learn the slope.
 *   This is the only case where the result can exceed what predict() allows.
 * - If nothing fits, 1: a deadline already lost is the caller's to handle,
 *   and the smallest batch is the fastest way to make progress.
 */
export function chooseBatchSize(args: BatchSizeArgs): number {
  const { model, budgetMs } = args;
  const queued = Math.floor(args.queued);
  if (!(queued >= 1)) return 0;
  const cap = Number.isNaN(args.cap) ? Infinity : Math.max(1, Math.floor(args.cap));
  const limit = Math.min(queued, cap, model.maxBatchSize);
  if (limit <= 1 || model.samples === 0) return 1;
  if (!(budgetMs > 0)) return 1;

  const largest = Math.max(1, model.largestObserved);
  const ceiling = explorationCeiling(model);
  // predict() need not be monotone (per-size statistics can exceed the line),
  // so scan down for the largest fitting size rather than binary-search.
  // The scan is bounded by `queued` and maxBatchSize, and runs once per batch.
  for (let n = Math.min(limit, ceiling); n > 1; n--) {
    if (model.predict(n) <= budgetMs) return n;
  }
  // Without a slope, predict() assumes latency ∝ size, so a replica whose
  // 1-item batch takes most of the budget (fixed overhead dominates) would
  // never try 2 and never learn otherwise. Try one more item, once the size
  // already seen is known to fit.
  if (!model.hasSlope && model.predict(largest) <= budgetMs) return Math.min(limit, largest + 1);
  return 1;
}

/** Inputs to {@link choosePlan}. */
export interface PlanArgs {
  /** The replica's latency model. */
  model: LatencyModel;
  /**
   * Time left (ms, already reduced by the safety factor) of the tasks at the
   * head of the queue, earliest deadline first: ascending.
   */
  budgetsMs: readonly number[];
  /** Live tasks in the whole queue (≥ budgetsMs.length). */
  queued: number;
  /** As in {@link BatchSizeArgs}. */
  cap: number;
}

/** Which tasks to send: skip the first `skip` (they cannot make their deadline in this plan), send the next `size`. */
export interface Plan {
  skip: number;
  size: number;
}

/**
 * The next batch, given the head of the queue. Normally the largest batch
 * that finishes before the earliest deadline ({@link chooseBatchSize}), which
 * serves every task in deadline order without dropping any.
 *
 * Under a backlog that size collapses: the head of the queue has waited
 * longest, so its small budget makes the batch small, the small batch makes
 * the model slow, and the queue behind it ages in turn (open-loop arrivals
 * at 75 % of a 5 ms + 0.1 ms/item model's capacity got batches of ~12 and
 * three quarters of the queries answered with defaults). So when the rest of
 * the queue could not be served by one more batch after this one anyway,
 * the plan that serves the most queries on time is taken instead: the
 * largest batch whose own earliest budget fits, skipping the head tasks that
 * cannot wait for it (the caller answers those at once).
 */
export function choosePlan(args: PlanArgs): Plan {
  const { model, budgetsMs: b, cap } = args;
  const head = b.length;
  if (head === 0) return { skip: 0, size: 0 };
  const size = chooseBatchSize({ model, queued: Math.max(args.queued, head), budgetMs: b[0]!, cap });
  const rest = args.queued - size;
  if (rest <= 0 || size >= head) return { skip: 0, size };
  // Would the rest fit in one batch that starts when this one ends?
  if (b[size]! - model.predict(size) >= model.predict(Math.min(rest, cap))) return { skip: 0, size };
  const limit = Math.min(head, Math.max(1, Math.floor(cap)), model.maxBatchSize, explorationCeiling(model));
  for (let m = limit; m > size; m--) {
    const need = model.predict(m);
    const skip = firstAtLeast(b, need);
    if (skip + m <= head) return { skip, size: m };
  }
  return { skip: 0, size };
}

/** Largest batch worth trying: one more than the largest seen while small, else a multiple of it. */
function explorationCeiling(model: LatencyModel): number {
  const largest = Math.max(1, model.largestObserved);
  return largest < ADDITIVE_EXPLORATION_BELOW ? largest + 1 : Math.floor(largest * EXPLORATION_GROWTH_FACTOR);
}

/** Index of the first element of ascending `xs` that is ≥ `x` (xs.length when none). */
function firstAtLeast(xs: readonly number[], x: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid]! >= x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
