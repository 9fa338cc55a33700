/**
 * Admission by predicted wait. A bounded queue alone sheds too late: a
 * queue that holds more than the replicas can serve before the callers'
 * deadlines admits calls that can only end in the app's default output (or
 * DEADLINE_EXCEEDED), after waiting their whole SLO, while the work they
 * queue delays everyone behind them. So a query is admitted only while the
 * queries ahead of it and its own batch are predicted to finish before its
 * deadline; otherwise its caller is told at once to retry later
 * (RESOURCE_EXHAUSTED / 429 with Retry-After), which is the signal a client
 * or a balancer can act on.
 *
 * The prediction comes from each serving replica's own latency model: the
 * largest batch it can run within half of the budget (a query may wait for
 * the batch in progress, then run in the next one) gives its drain rate in
 * items per ms, times its slots; the replicas' rates add up. A new query
 * first waits for a slot to free (the earliest end of the batches running
 * now, by the same estimate); then, if the queue ahead and itself fit in
 * that one batch, it runs in it; otherwise the queue drains at the rate
 * and it runs in a batch of that size. A replica with
 * no latency estimate yet (fewer than 32 batches answered) makes no
 * prediction: with any such replica the query is admitted (only the
 * queue's capacity bounds it), so a cold start is never refused. The rate
 * uses the latency model's central estimate, not the conservative bound the batch sizer decides with: that
 * bound widens far from the sizes seen, and a rate taken from it would keep
 * the queue too short for the batches that would show the bound wrong.
 * When no replica can run even one query within the budget, the model is
 * too slow for that deadline, not overloaded: nothing is predicted, and the
 * queue's capacity and the deadlines (the app's default for a query out of
 * time) govern, as without admission. (A stricter test, one query in half
 * the budget, let an early fit with too high an intercept switch admission
 * off exactly while the first overload built up.)
 * Pure logic: the dispatcher owns when to ask.
 */
import type { LatencyModel } from "./latency-model.js";

/** What admission reads of one serving replica. */
export interface ReplicaCapacity {
  readonly latency: LatencyModel;
  /** Batches it runs at once. */
  readonly slots: number;
  /** Largest batch it may be sent (its own limit, its latency model's and the model's fixed batch size), ≥ 1. */
  readonly cap: number;
}

/** How fast a model version's serving replicas empty its queue, for a given budget. */
export interface DrainEstimate {
  /** Items per ms all replicas together complete; 0 when any replica has no estimate (admit). */
  readonly itemsPerMs: number;
  /** The batch size behind the rate, on the fastest replica (items). */
  readonly batchSize: number;
  /** Its latency, ms. */
  readonly batchMs: number;
  /** Latency of a smaller batch of `items` on that replica, ms. */
  readonly batchMsFor: (items: number) => number;
}

/**
 * Batches a replica must have answered before it predicts anything: the
 * first ones of a fresh worker (module load, JIT) run far slower than the
 * rest, and an estimate made of them would refuse calls at light load.
 */
const MIN_SAMPLES = 32;

/** Never scan batch sizes past this, whatever a replica's limits (the queue's own bound is far below in practice). */
const LARGEST_BATCH_CONSIDERED = 65_536;

/** An estimate that predicts nothing: every query is admitted. */
export const NO_ESTIMATE: DrainEstimate = { itemsPerMs: 0, batchSize: 0, batchMs: 0, batchMsFor: () => 0 };

/**
 * The drain rate of `replicas` for queries with `budgetMs` left (already
 * reduced by the batch sizer's safety factor).
 */
export function drainEstimate(replicas: Iterable<ReplicaCapacity>, budgetMs: number): DrainEstimate {
  let itemsPerMs = 0;
  let fastest: { size: number; ms: number; rate: number; latency: LatencyModel } | null = null;
  let fits = false;
  for (const r of replicas) {
    if (r.latency.samples < MIN_SAMPLES) return NO_ESTIMATE;
    const limit = Math.max(1, Math.min(r.cap, r.latency.maxBatchSize, LARGEST_BATCH_CONSIDERED));
    const size = largestWithin(r.latency, limit, budgetMs / 2);
    const ms = r.latency.expected(size);
    if (!(ms > 0 && Number.isFinite(ms))) return NO_ESTIMATE;
    if (r.latency.expected(1) <= budgetMs) fits = true;
    const rate = (Math.max(1, r.slots) * size) / ms;
    itemsPerMs += rate;
    if (fastest === null || rate > fastest.rate) fastest = { size, ms, rate, latency: r.latency };
  }
  if (!fits || fastest === null) return NO_ESTIMATE;
  const { latency } = fastest;
  return { itemsPerMs, batchSize: fastest.size, batchMs: fastest.ms, batchMsFor: (items) => latency.expected(items) };
}

/**
 * The wait in ms predicted for a query with `ahead` queries before it, once
 * a replica's slot frees in `slotFreeMs`: the queue and the query in one
 * batch when they fit the estimate's batch size, else the queue drained at
 * the rate and then the query's own batch. 0 when the estimate predicts
 * nothing.
 */
export function predictedWaitMs(ahead: number, estimate: DrainEstimate, slotFreeMs = 0): number {
  if (!(estimate.itemsPerMs > 0)) return 0;
  const free = Math.max(0, slotFreeMs);
  if (ahead + 1 <= estimate.batchSize) return free + estimate.batchMsFor(ahead + 1);
  return free + ahead / estimate.itemsPerMs + estimate.batchMs;
}

/**
 * Largest n in [1, limit] whose predicted latency fits `ms` (1 when none
 * does). The central estimate is affine in size, so a binary search finds
 * the boundary.
 */
function largestWithin(model: LatencyModel, limit: number, ms: number): number {
  if (!(model.expected(1) <= ms)) return 1;
  let lo = 1;
  let hi = Math.floor(limit);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (model.expected(mid) <= ms) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Admission decisions (admitted or refused) per adjustment of the share. */
const SHARE_WINDOW = 200;
/** Late queries tolerated per window, as a share of those it admitted, before the share is lowered. */
const LATE_TOLERATED = 0.01;
const SHARE_START = 0.8;
const SHARE_MIN = 0.2;
const SHARE_MAX = 0.9;
/** Multiplied into the share after a window with too many late queries… */
const SHARE_DECREASE = 0.85;
/** …and added to it after a window without. */
const SHARE_INCREASE = 0.02;

/**
 * The share of a query's budget its predicted wait may take, corrected by
 * what happened to the queries admitted: the prediction is an estimate of
 * a queue whose batches the sizer cuts by the earliest deadline, and its
 * error depends on the model and the load. After every window of
 * admission decisions, more than 1 % of the queries it admitted late
 * (answered after their deadline, or dropped at it) lowers the share by
 * 15 %; fewer raises it by 0.02, between 0.2 and 0.9 (additive increase,
 * multiplicative decrease, as TCP's congestion window). Pure logic.
 *
 * Every queued query counts as admitted, also one admitted without a
 * prediction (nothing queued ahead, or a cold replica): its lateness is
 * counted too, so leaving it out of the window made a cold start's first
 * late queries look like 100 % of what was admitted. Refusals close windows
 * as well: a share that refused everything would otherwise never be
 * revised, and a low one, set while the model was briefly slow, shed most
 * of the load at 75 % of capacity for good (bench/README.md, round two §3).
 */
export class AdmissionShare {
  #share = SHARE_START;
  #decisions = 0;
  #admitted = 0;
  #late = 0;

  get value(): number {
    return this.#share;
  }

  /** A query was queued. */
  admitted(): void {
    this.#admitted++;
    this.#decided();
  }

  /** A query was refused as overloaded. */
  refused(): void {
    this.#decided();
  }

  /** An admitted query ended after its deadline (or was dropped at it). */
  late(): void {
    this.#late++;
  }

  #decided(): void {
    if (++this.#decisions < SHARE_WINDOW) return;
    const lateRatio = this.#admitted === 0 ? 0 : this.#late / this.#admitted;
    this.#share = lateRatio > LATE_TOLERATED ? Math.max(SHARE_MIN, this.#share * SHARE_DECREASE) : Math.min(SHARE_MAX, this.#share + SHARE_INCREASE);
    this.#decisions = 0;
    this.#admitted = 0;
    this.#late = 0;
  }
}

/** Length of each of the two windows a busy share adds up, ms: together about a second, tens of batches of a fast model. */
const BUSY_WINDOW_MS = 500;

/**
 * Below this share of their time spent running batches, a pool's replicas
 * are not the limit, and admission refuses nothing by predicted wait.
 */
export const BUSY_TO_REFUSE = 0.5;

/**
 * How busy a model version's replicas have been lately, from the time the
 * workers report their model took on each batch (and the time a batch
 * waited there behind other gateways' batches, which kept the worker busy
 * too), over the last one to two windows. Pure logic.
 *
 * Admission's predicted wait comes from round trips measured by the
 * gateway, which include its own event loop's delay. When the gateway's CPU
 * is taken by callers that are refused and ask again at once, that delay
 * inflates the estimate, admission refuses nearly everything, and the few
 * batches still sent keep the estimate inflated: a collapse in which the
 * model sits idle most of the time (bench/README.md, round two §18). The
 * workers' own account of their time does not carry the gateway's delay,
 * so a queue in front of replicas that are mostly idle is not refused as
 * overload, whatever the estimate says.
 */
export class BusyShare {
  #windowStart: number;
  #previousStart: number;
  #previousMs = 0;
  #currentMs = 0;
  #previousBatches = 0;
  #currentBatches = 0;
  /** Batches answered in the window before the previous one. */
  #olderBatches = 0;

  constructor(now: number) {
    this.#windowStart = now;
    this.#previousStart = now;
  }

  /** A batch was answered at `now` after the worker spent `ms` on it. */
  add(ms: number, now: number): void {
    this.#roll(now);
    if (!(ms >= 0 && Number.isFinite(ms))) return;
    this.#currentMs += ms;
    this.#currentBatches++;
  }

  /**
   * Share of `slots` replica slots' time spent on batches over the windows
   * up to `now`; null unless batches were answered in each of the two
   * windows before the current one. A load that starts after a quiet spell
   * (or a batch longer than a window) is not known to be light: the window
   * it started in holds idle time, so refusals by predicted wait go on
   * until a whole window of answers measures the replicas.
   */
  value(now: number, slots: number): number | null {
    this.#roll(now);
    if (this.#previousBatches === 0 || this.#olderBatches === 0) return null;
    const span = now - this.#previousStart;
    if (!(span > 0) || !(slots > 0)) return null;
    return (this.#previousMs + this.#currentMs) / (span * slots);
  }

  #roll(now: number): void {
    if (now - this.#windowStart < BUSY_WINDOW_MS) return;
    if (now - this.#windowStart < 2 * BUSY_WINDOW_MS) {
      this.#previousStart = this.#windowStart;
      this.#previousMs = this.#currentMs;
      this.#olderBatches = this.#previousBatches;
      this.#previousBatches = this.#currentBatches;
    } else {
      // Silent for a whole window: nothing from before it counts.
      this.#previousStart = now - BUSY_WINDOW_MS;
      this.#previousMs = 0;
      this.#previousBatches = 0;
      this.#olderBatches = 0;
    }
    this.#windowStart = now;
    this.#currentMs = 0;
    this.#currentBatches = 0;
  }
}
