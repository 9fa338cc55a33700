/**
 * Reads the gateway's `GET /metrics` (Prometheus text) for `clipper status`
 * and `clipper up`'s live line: calls per second, p99 latency and mean
 * batch size between two scrapes. Metrics it cannot find are reported as
 * null, so an older gateway (or one with other metric names) degrades to
 * what it has instead of failing.
 */
import { get as httpGet, type IncomingMessage } from "node:http";
import { get as httpsGet } from "node:https";
import { isIP } from "node:net";

/** Samples of one scrape: series text (name plus labels) → value. */
export interface Scrape {
  readonly at: number;
  readonly samples: ReadonlyMap<string, number>;
}

/** Derived figures; null when the gateway does not expose what they need. */
export interface MetricsSummary {
  readonly callsPerSec: number | null;
  readonly p99Ms: number | null;
  readonly meanBatchSize: number | null;
  /** Predictions counted since the gateway started. */
  readonly totalCalls: number | null;
}

/** Metric names tried in order (the first the gateway has wins); the patterns catch renamed ones. */
const CALLS = ["clipper_predictions_total", /^clipper_.*(prediction|predict|quer(y|ies)|request).*_total$/];
const LATENCY = ["clipper_prediction_duration_seconds", /^clipper_(?!queue|batch|rpc).*(latency|duration).*_seconds$/];
const BATCH = ["clipper_batch_size", /^clipper_.*batch_size$/];

/** Longest wait for /metrics, in ms: the status line must not stall. */
const SCRAPE_TIMEOUT_MS = 2_000;

/**
 * Fetches and parses `<address>/metrics`: over HTTPS trusting `ca` (PEM)
 * when given, else plain HTTP; with the token when there is one (it needs
 * the read scope). Null when unreachable or refused.
 */
export function scrape(httpAddress: string, token?: string, ca?: Buffer): Promise<Scrape | null> {
  const url = new URL(`${ca === undefined ? "http" : "https"}://${httpAddress}/metrics`);
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  return new Promise((resolve) => {
    const options = { headers, timeout: SCRAPE_TIMEOUT_MS, agent: false as const };
    const onResponse = (res: IncomingMessage): void => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve(res.statusCode === 200 ? { at: Date.now(), samples: parsePrometheusText(body) } : null));
      res.on("error", () => resolve(null));
    };
    // SNI takes names only; a certificate for 127.0.0.1 is checked against the IP either way.
    const req = ca === undefined ? httpGet(url, options, onResponse) : httpsGet(url, { ...options, ca, ...(isIP(url.hostname) === 0 ? { servername: url.hostname } : {}) }, onResponse);
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(null));
  });
}

/** Parses the Prometheus text format into series → value (comments skipped). */
export function parsePrometheusText(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    // The value follows the last space outside the label set (an optional timestamp is not used by prom-client).
    const close = line.lastIndexOf("}");
    const space = line.indexOf(" ", close === -1 ? 0 : close);
    if (space === -1) continue;
    const value = Number(line.slice(space + 1).trim().split(" ")[0]);
    if (!Number.isNaN(value)) samples.set(line.slice(0, space), value);
  }
  return samples;
}

/** Figures over the window between two scrapes (or since the start, without `prev`). */
export function summarize(cur: Scrape | null, prev: Scrape | null): MetricsSummary {
  if (cur === null) return { callsPerSec: null, p99Ms: null, meanBatchSize: null, totalCalls: null };
  const base = prev ?? { at: cur.at, samples: new Map<string, number>() };
  const calls = pick(cur, CALLS, "");
  const total = calls === null ? null : sum(cur, calls, "");
  const seconds = (cur.at - base.at) / 1000;
  const callsPerSec = calls === null || prev === null || seconds <= 0 ? null : Math.max(0, (total! - sum(base, calls, "")) / seconds);
  const latency = pick(cur, LATENCY, "_bucket");
  const batch = pick(cur, BATCH, "_count");
  let meanBatchSize: number | null = null;
  if (batch !== null) {
    const n = sum(cur, batch, "_count") - sum(base, batch, "_count");
    meanBatchSize = n > 0 ? (sum(cur, batch, "_sum") - sum(base, batch, "_sum")) / n : null;
  }
  return { callsPerSec, p99Ms: latency === null ? null : quantileMs(cur, base, latency, 0.99), meanBatchSize, totalCalls: total };
}

/** The first candidate metric name present in the scrape (with `suffix`, e.g. "_bucket"). */
function pick(s: Scrape, candidates: readonly (string | RegExp)[], suffix: string): string | null {
  const names = new Set<string>();
  for (const series of s.samples.keys()) {
    const name = series.split("{")[0]!;
    if (name.endsWith(suffix)) names.add(name.slice(0, name.length - suffix.length));
  }
  for (const c of candidates) {
    if (typeof c === "string") {
      if (names.has(c)) return c;
    } else {
      const hit = [...names].sort().find((n) => c.test(n));
      if (hit !== undefined) return hit;
    }
  }
  return null;
}

/** Sum over every label set of `name + suffix`. */
function sum(s: Scrape, name: string, suffix: string): number {
  let total = 0;
  const exact = name + suffix;
  for (const [series, v] of s.samples) if (series === exact || series.startsWith(`${exact}{`)) total += v;
  return total;
}

/** A quantile of a histogram over the window, from its buckets summed over labels, in ms. */
function quantileMs(cur: Scrape, base: Scrape, name: string, q: number): number | null {
  const buckets = (s: Scrape): Map<number, number> => {
    const m = new Map<number, number>();
    for (const [series, v] of s.samples) {
      if (!series.startsWith(`${name}_bucket{`)) continue;
      const le = /le="([^"]+)"/.exec(series)?.[1];
      if (le === undefined) continue;
      const bound = le === "+Inf" ? Infinity : Number(le);
      m.set(bound, (m.get(bound) ?? 0) + v);
    }
    return m;
  };
  const now = buckets(cur);
  const before = buckets(base);
  const bounds = [...now.keys()].sort((a, b) => a - b);
  const counts = bounds.map((b) => (now.get(b) ?? 0) - (before.get(b) ?? 0));
  const total = counts[counts.length - 1] ?? 0;
  if (total <= 0) return null;
  const target = q * total;
  for (let i = 0; i < bounds.length; i++) {
    if (counts[i]! >= target) {
      const b = bounds[i]!;
      // Above the last finite bucket all we know is "more than" that bound.
      return (Number.isFinite(b) ? b : (bounds[i - 1] ?? 0)) * 1000;
    }
  }
  return null;
}
