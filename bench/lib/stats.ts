/** Small statistics helpers for the benchmark (no dependencies). */

/** Nearest-rank quantile of an ascending-sorted array (q in [0, 1]); NaN when empty. */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** Arithmetic mean; NaN when empty. */
export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  let sum = 0;
  for (const x of xs) sum += x;
  return sum / xs.length;
}

/** Median (the mean of the middle two for an even count); NaN when empty or all NaN. */
export function median(xs: readonly number[]): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Latency summary of one run, in milliseconds. */
export interface LatencySummary {
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Summarizes request durations given in microseconds. */
export function summarizeMicros(durationsUs: number[]): LatencySummary {
  const s = durationsUs.sort((a, b) => a - b);
  return {
    meanMs: mean(s) / 1000,
    p50Ms: quantileSorted(s, 0.5) / 1000,
    p90Ms: quantileSorted(s, 0.9) / 1000,
    p99Ms: quantileSorted(s, 0.99) / 1000,
    maxMs: (s[s.length - 1] ?? NaN) / 1000,
  };
}

/** Rounds for tables and JSON: 3 significant decimals are plenty on a noisy box. */
export function round3(x: number): number {
  return Number.isFinite(x) ? Math.round(x * 1000) / 1000 : x;
}

/** Slope of the least-squares line through (xs[i], ys[i]); NaN with fewer than two distinct xs. */
export function leastSquaresSlope(xs: readonly number[], ys: readonly number[]): number {
  const mx = mean(xs);
  const my = mean(ys);
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < xs.length; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
  }
  return sxx > 0 ? sxy / sxx : NaN;
}
