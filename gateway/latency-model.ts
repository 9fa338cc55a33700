/**
 * Online model of one replica's batch latency, used to size its batches
 * (see batch-sizer.ts). Pure logic, no clock: observations are weighted by
 * how many newer observations came after them, not by wall time, so it is
 * deterministic and testable.
 *
 * Formula. Every observation (size x items, latency y ms) weighs λ^k, where
 * k is the number of newer observations and λ = 0.5^(1/halfLife):
 *
 *   fit         y ≈ a + b·x          (weighted least squares, b clamped ≥ 0)
 *   σ²          = SSR / (W − 2)      (residual variance; W = Σ weights)
 *   linear(n)   = min(a + b·n + Z·σ·√(1 + 1/W + (n − x̄)² / Sxx), envelope(n))
 *   envelope(n) = (ȳ + Z·σ_y·√(1 + 1/W))·max(1, n/x̄)
 *   perSize(n)  = mean_n + Z·σ_n     (only when size n has ≥ 5 effective samples)
 *   predict(n)  = max(linear(n), perSize(n))
 *
 * The √ term is the standard prediction interval of a linear fit: the margin
 * widens the further n is from the sizes actually seen, so extrapolating to
 * untried batch sizes is cautious. Z = 3 follows Clipper's p99 estimate
 * (mean + 3σ, clipper.md §5.2); the per-size term keeps its "≥ 5 samples
 * before trusting a size" rule and catches sizes where latency is not linear.
 *
 * The envelope needs no slope: with a, b ≥ 0 latency is flat below x̄ at
 * most and proportional above it. Until two distinct sizes are seen it is
 * the whole estimate; after that it caps the fit, whose interval away from
 * x̄ grows without bound once steady load makes every batch the same size.
 *
 * Exponential decay alone adapts slowly to a step change in speed, so two
 * observations in a row outside the fit's own bounds (by a further 10%), on
 * the same side, restart the statistics from those two (see SURPRISE_RATIO).
 * A lone one is an outlier (a GC pause, a busy moment on the host): it is
 * recorded clipped to the bound it broke, so it widens the margin a little
 * but cannot steer the fit.
 */

/** Hard cap on batch size when none is given. Far above useful GPU batches; bounds scans and per-size state. */
const DEFAULT_MAX_BATCH_SIZE = 1024;
/**
 * Observations after which an old one weighs half. ~32 batches is a few
 * hundred ms to a few s of a busy replica: quick enough to follow a model
 * that slows down (co-tenant, thermal throttling), slow enough to average noise.
 */
const DEFAULT_HALF_LIFE_SAMPLES = 32;
/** Margin in standard deviations: mean + 3σ ≈ p99.9 for normal noise (Clipper's LATENCY_Z_SCORE). */
const LATENCY_Z_SCORE = 3;
/** Effective samples a batch size needs before its own statistics are used (Clipper's MINIMUM_BATCH_SAMPLE_SIZE). */
const MIN_SIZE_SAMPLES = 5;
/**
 * A batch slower than SURPRISE_RATIO × its upper estimate (a 3σ miss plus
 * 10%), or faster than its lower estimate ÷ SURPRISE_RATIO, is a surprise.
 * Two in a row on the same side mean the fit is out of date: the replica got
 * slower (co-tenant, throttling, a new input mix) or faster (contention
 * gone), and the statistics restart from those two observations. Letting
 * them decay in instead is worse: mixing old and new latencies at the same
 * size inflates σ so much that nothing but batches of one fit for dozens of
 * batches (simulated 4× slowdown: ~30 batches of one, versus two late
 * batches with the restart).
 *
 * A single surprise is not trusted. Restarting from one GC pause several
 * times longer than the usual batch made the one-item estimate many times
 * too high for dozens of batches, long enough for the dispatcher to shed
 * fresh queries as doomed and run batches of one or two; under closed-loop
 * load the early defaults then kept the gateway busy enough to cause the
 * next spike (bench/README.md). So a lone surprise is clipped to the bound
 * it broke.
 */
const SURPRISE_RATIO = 1.1;
/** Effective samples needed before surprises count: early fits are too rough to be "wrong". */
const SURPRISE_MIN_WEIGHT = 10;
/** Below this weighted variance of sizes the slope is treated as unknown (only one size really seen). */
const MIN_SIZE_SPREAD = 1e-9;

/** Exponentially weighted mean/variance of the latencies at one batch size. */
interface SizeStats {
  weight: number; // at tick `tick`
  mean: number;
  m2: number; // weighted sum of squared deviations, at tick `tick`
  tick: number;
}

/** One per replica: learns latency (ms) as a function of batch size. */
export class LatencyModel {
  readonly #maxSize: number;
  readonly #decay: number;
  #count = 0;
  #largest = 0;
  // Weighted, decayed co-moments (West's incremental algorithm: numerically
  // stable, unlike raw Σx², Σxy sums).
  #w = 0;
  #meanX = 0;
  #meanY = 0;
  #cxx = 0;
  #cxy = 0;
  #cyy = 0;
  readonly #bySize = new Map<number, SizeStats>();
  #restartCount = 0;
  /** The last observation, when it was a surprise: a second one on the same side restarts the fit. */
  #surprise: { size: number; ms: number; slower: boolean } | null = null;

  /**
   * @param options.maxBatchSize hard cap on batch size (items), default 1024.
   * @param options.halfLifeSamples observations after which an old one weighs half, default 32.
   */
  constructor(options?: { maxBatchSize?: number; halfLifeSamples?: number }) {
    const max = options?.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE;
    const half = options?.halfLifeSamples ?? DEFAULT_HALF_LIFE_SAMPLES;
    if (!(Number.isInteger(max) && max >= 1)) throw new RangeError(`maxBatchSize must be a positive integer, got ${max}`);
    if (!(half > 0 && half < Infinity)) throw new RangeError(`halfLifeSamples must be positive and finite, got ${half}`);
    this.#maxSize = max;
    this.#decay = Math.pow(0.5, 1 / half);
  }

  /** Hard cap on batch size (items). */
  get maxBatchSize(): number {
    return this.#maxSize;
  }

  /** Largest batch size ever observed (items); 0 before any observation. */
  get largestObserved(): number {
    return this.#largest;
  }

  /** Number of observations recorded (not decayed). */
  get samples(): number {
    return this.#count;
  }

  /** Times the fit restarted after batches far slower or faster than predicted (see SURPRISE_RATIO); counted by clipper_latency_model_restarts_total. */
  get restarts(): number {
    return this.#restartCount;
  }

  /** True once two distinct batch sizes have been seen (since the last restart), so latency per item can be estimated. */
  get hasSlope(): boolean {
    return this.#w > 0 && this.#cxx > MIN_SIZE_SPREAD * this.#w;
  }

  /**
   * Records that a batch of `size` items took `ms` milliseconds, from send to
   * answer. Invalid measurements (size not a positive integer, ms negative or
   * not finite) are ignored: a clock glitch must not poison the model.
   */
  observe(size: number, ms: number): void {
    if (!Number.isInteger(size) || size < 1 || !Number.isFinite(ms) || ms < 0) return;
    let recorded = ms;
    if (this.#w >= SURPRISE_MIN_WEIGHT) {
      const upper = SURPRISE_RATIO * this.predict(size);
      const lower = this.#linearBound(size, -1) / SURPRISE_RATIO;
      const previous = this.#surprise;
      this.#surprise = null;
      if (ms > upper || ms < lower) {
        const slower = ms > upper;
        if (previous !== null && previous.slower === slower) {
          this.#forget();
          this.#add(previous.size, previous.ms);
        } else {
          this.#surprise = { size, ms, slower };
          recorded = slower ? upper : lower;
        }
      }
    }
    this.#count++;
    if (size > this.#largest) this.#largest = size;
    this.#add(size, recorded);
  }

  /** Adds one observation at tick `count` to the decayed statistics. */
  #add(size: number, ms: number): void {
    const d = this.#decay;

    // Decay everything, then add the new point with weight 1.
    this.#w = this.#w * d + 1;
    this.#cxx *= d;
    this.#cxy *= d;
    this.#cyy *= d;
    const dx = size - this.#meanX;
    const dy = ms - this.#meanY;
    this.#meanX += dx / this.#w;
    this.#meanY += dy / this.#w;
    this.#cxx += dx * (size - this.#meanX);
    this.#cxy += dx * (ms - this.#meanY);
    this.#cyy += dy * (ms - this.#meanY);

    if (size > this.#maxSize) return; // keeps per-size state bounded
    let s = this.#bySize.get(size);
    if (s === undefined) {
      s = { weight: 0, mean: 0, m2: 0, tick: this.#count };
      this.#bySize.set(size, s);
    }
    const f = Math.pow(d, this.#count - s.tick);
    s.weight = s.weight * f + 1;
    s.m2 *= f;
    const ds = ms - s.mean;
    s.mean += ds / s.weight;
    s.m2 += ds * (ms - s.mean);
    s.tick = this.#count;
  }

  /** Drops every statistic except `samples` and `largestObserved`. */
  #forget(): void {
    this.#restartCount++;
    this.#surprise = null;
    this.#w = 0;
    this.#meanX = 0;
    this.#meanY = 0;
    this.#cxx = 0;
    this.#cxy = 0;
    this.#cyy = 0;
    this.#bySize.clear();
  }

  /**
   * Conservative (upper) estimate of the latency in ms of a batch of `size`
   * items; see the module comment for the formula. `Infinity` before any
   * observation (nothing is known to fit), 0 for sizes ≤ 0, never NaN.
   */
  predict(size: number): number {
    if (!(size > 0)) return Number.isNaN(size) ? Infinity : 0;
    if (this.#count === 0) return Infinity;
    const linear = this.#linearBound(size, 1);
    const s = this.#bySize.get(size);
    if (s === undefined) return linear;
    const f = Math.pow(this.#decay, this.#count - s.tick);
    const weight = s.weight * f;
    if (weight < MIN_SIZE_SAMPLES) return linear;
    const perSize = s.mean + LATENCY_Z_SCORE * Math.sqrt(Math.max(0, s.m2 * f) / (weight - 1));
    return Math.max(linear, perSize);
  }

  /**
   * Central estimate of the latency in ms of a batch of `size` items: the
   * linear fit without its margin. Without a positive slope (one size seen,
   * or sizes too alike for the fit to see growth) the latency of larger
   * batches is taken as the mean's and of smaller ones as proportional
   * (the optimistic end: a caller of this must not stop the batch sizer
   * from trying other batch sizes). `Infinity` before any observation, 0 for
   * sizes ≤ 0. For rates (gateway/admission.ts); decisions about a
   * deadline use the conservative {@link predict}.
   */
  expected(size: number): number {
    if (!(size > 0)) return Number.isNaN(size) ? Infinity : 0;
    if (this.#count === 0) return Infinity;
    const meanY = Math.max(0, this.#meanY);
    const b = this.hasSlope ? this.#cxy / this.#cxx : 0;
    // No slope, or none above noise (a fit of batches that all had about one
    // size): nothing is known of how latency grows with size, so below the
    // mean size it is taken as proportional and above it as flat, the
    // optimistic end both ways. Taking the flat mean for small batches too
    // would call a model that ran large batches too slow for one item.
    if (!(b > 0)) return size < this.#meanX ? (meanY * size) / this.#meanX : meanY;
    // A latency of a + b·size with a ≥ 0 lies between the flat and the
    // proportional line through the mean point. A fitted slope steeper than
    // that (a negative intercept) is noise in sizes that barely vary, and
    // taken as it is it made the largest batch within a budget, and with it
    // the drain rate admission uses, swing by 20× from one estimate to the
    // next under steady open-loop load (bench/README.md, round two §3).
    const fit = meanY + b * (size - this.#meanX);
    const proportional = (meanY * size) / this.#meanX;
    return size < this.#meanX ? Math.max(fit, proportional) : Math.min(fit, proportional);
  }

  /**
   * Upper (sign 1) or lower (sign −1) bound of the linear fit at `size` > 0
   * (ms); requires at least one observation since the last restart.
   */
  #linearBound(size: number, sign: 1 | -1): number {
    const w = this.#w;
    const margin = sign * LATENCY_Z_SCORE;
    // With latency = a + b·size, a, b ≥ 0, and the mean point (x̄, ȳ) on the
    // line, the latency of `size` is at most ȳ·max(1, size/x̄) and at least
    // ȳ·min(1, size/x̄): flat on one side, proportional on the other. This
    // envelope is all there is while one size is seen, and it caps the fit:
    // under steady load the batch size stops varying, older sizes decay out,
    // Sxx shrinks towards 0 and the fit's interval away from x̄ grows without
    // bound (at a steady 16 items the one-item estimate passed 90 ms after
    // ~500 batches, so every query looked doomed).
    const sigmaY = w > 1 ? Math.sqrt(Math.max(0, this.#cyy) / (w - 1)) : 0;
    const r = size / this.#meanX;
    const ratio = sign > 0 ? Math.max(1, r) : Math.min(1, r);
    const envelope = ratio * Math.max(0, this.#meanY + margin * sigmaY * Math.sqrt(1 + 1 / w));
    if (!this.hasSlope) return envelope;

    let b = this.#cxy / this.#cxx;
    let ssr = this.#cyy - (this.#cxy * this.#cxy) / this.#cxx;
    if (b < 0) {
      // Bigger batches are never faster; a negative slope is noise.
      b = 0;
      ssr = this.#cyy;
    }
    const a = this.#meanY - b * this.#meanX;
    const sigma = w > 2 ? Math.sqrt(Math.max(0, ssr) / (w - 2)) : 0;
    const dx = size - this.#meanX;
    const spread = Math.sqrt(1 + 1 / w + (dx * dx) / this.#cxx);
    const fit = Math.max(0, a + b * size + margin * sigma * spread);
    return sign > 0 ? Math.min(fit, envelope) : Math.max(fit, envelope);
  }
}
