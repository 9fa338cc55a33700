/**
 * The shapes of a benchmark's results (what bench/results/*.json holds) and
 * their aggregation: per-round ratios to the ceiling measured in the same
 * round, then medians over rounds.
 */
import type { Counts } from "./counter.js";
import type { LoadResult } from "./load-result.js";
import type { Memory } from "./proc-status.js";
import { median, round3 } from "./stats.js";

/** The three ways into the gateway the issue names. */
export type PathName = "grpc" | "http-transcoded" | "clipper-rest";

/** What each path is compared with. */
export const CEILING_OF: Readonly<Record<PathName, string>> = {
  grpc: "bare grpc-js",
  "http-transcoded": "bare node:http",
  "clipper-rest": "bare node:http",
};

/** Whether every call a run counted as a success did the work on the far side. */
export interface Check {
  readonly ok: boolean;
  readonly detail: string;
}

/** One run of one load against one target. */
export interface RunRecord {
  readonly target: "gateway" | "ceiling";
  readonly round: number;
  readonly result: LoadResult;
  /** What the model (gateway) or the bare server (ceiling) itself counted during the run. */
  readonly counted: Counts;
  /** CPU time per completed call of each server-side process, in µs. */
  readonly cpuMicrosPerCall: Readonly<Record<string, number>>;
  /** Cores other work kept busy just before the run (the benchmark idle). */
  readonly backgroundCores: number;
  readonly check: Check;
}

/** One round of one point: the gateway and the ceiling, back to back. */
export interface PointRound {
  readonly round: number;
  readonly gateway: RunRecord;
  readonly ceiling: RunRecord;
  /** gateway throughput ÷ ceiling throughput, this round. */
  readonly throughputRatio: number;
  /** gateway mean latency − ceiling mean latency, this round, ms. */
  readonly addedMeanMs: number;
  /** gateway p99 − ceiling p99, this round, ms. */
  readonly addedP99Ms: number;
}

/** Medians over rounds of one point. */
export interface PointMedian {
  readonly gatewayRps: number;
  readonly ceilingRps: number;
  readonly throughputRatio: number;
  readonly gatewayMeanMs: number;
  readonly ceilingMeanMs: number;
  readonly addedMeanMs: number;
  readonly gatewayP50Ms: number;
  readonly gatewayP99Ms: number;
  readonly ceilingP99Ms: number;
  readonly addedP99Ms: number;
  /** Items per model call the no-op worker saw (the gateway batches under load). */
  readonly meanBatch: number;
  readonly gatewayCpuMicrosPerCall: number;
  readonly workerCpuMicrosPerCall: number;
  readonly ceilingCpuMicrosPerCall: number;
}

export interface Point {
  readonly path: PathName;
  readonly concurrency: number;
  readonly rounds: PointRound[];
  median: PointMedian | null;
}

/** One batching run (no ceiling server: the ceiling is the model's capacity). */
export interface BatchRound {
  readonly round: number;
  readonly result: LoadResult;
  readonly counted: Counts;
  /** Items per model call. */
  readonly meanBatch: number;
  /** Best throughput `callers` closed-loop callers can get from this model: all in one batch, back to back, req/s. */
  readonly capacityRps: number;
  /** throughput ÷ capacityRps. */
  readonly capacityShare: number;
  /** Share of the run's wall time the model was busy (measured inside the model). */
  readonly modelBusyShare: number;
  /** Mean time inside the model per call, ms. */
  readonly modelMsPerCall: number;
  /**
   * Mean time the model sat idle per call, ms: the turnaround between one
   * batch and the next (answers out, callers' next queries in, next batch
   * sent). capacityShare ≤ modelMsPerCall ÷ (modelMsPerCall + this).
   */
  readonly modelIdleMsPerCall: number;
  readonly cpuMicrosPerCall: Readonly<Record<string, number>>;
  readonly backgroundCores: number;
  /** The worker had to be replaced before this run: the gateway had stopped sending it batches. */
  readonly workerReplaced: boolean;
  readonly check: Check;
}

export interface BatchPoint {
  readonly callers: number;
  readonly sloMs: number;
  readonly rounds: BatchRound[];
  median: {
    readonly rps: number;
    readonly capacityRps: number;
    readonly capacityShare: number;
    readonly p50Ms: number;
    readonly p99Ms: number;
    readonly meanBatch: number;
    readonly modelBusyShare: number;
    readonly modelMsPerCall: number;
    readonly modelIdleMsPerCall: number;
    readonly defaults: number;
  } | null;
}

/** Memory of one process over the benchmark. */
export interface MemoryRecord {
  /** Largest VmHWM read (peak RSS since the process started), MiB. */
  peakMiB: number;
  /** Largest VmRSS read after a run, MiB. */
  maxRssMiB: number;
  /** VmRSS read after the last run, MiB. */
  lastRssMiB: number;
}

/** The model's cost per batch, as the issue states it: 5 ms + 0.1 ms per item. */
export function batchCostMs(items: number): number {
  return 5 + 0.1 * items;
}

export function recordMemory(into: Record<string, MemoryRecord>, name: string, m: Memory | null): void {
  if (m === null) return;
  const r = (into[name] ??= { peakMiB: 0, maxRssMiB: 0, lastRssMiB: 0 });
  r.peakMiB = Math.max(r.peakMiB, round3(m.peakMiB));
  r.maxRssMiB = Math.max(r.maxRssMiB, round3(m.rssMiB));
  r.lastRssMiB = round3(m.rssMiB);
}

/** Fills `point.median` from its rounds. */
export function aggregatePoint(point: Point): void {
  const rs = point.rounds;
  if (rs.length === 0) return;
  const med = (f: (r: PointRound) => number): number => round3(median(rs.map(f)));
  point.median = {
    gatewayRps: med((r) => r.gateway.result.throughput),
    ceilingRps: med((r) => r.ceiling.result.throughput),
    throughputRatio: med((r) => r.throughputRatio),
    gatewayMeanMs: med((r) => r.gateway.result.meanMs),
    ceilingMeanMs: med((r) => r.ceiling.result.meanMs),
    addedMeanMs: med((r) => r.addedMeanMs),
    gatewayP50Ms: med((r) => r.gateway.result.p50Ms),
    gatewayP99Ms: med((r) => r.gateway.result.p99Ms),
    ceilingP99Ms: med((r) => r.ceiling.result.p99Ms),
    addedP99Ms: med((r) => r.addedP99Ms),
    meanBatch: med((r) => (r.gateway.counted.calls > 0 ? r.gateway.counted.items / r.gateway.counted.calls : NaN)),
    gatewayCpuMicrosPerCall: med((r) => r.gateway.cpuMicrosPerCall.gateway ?? NaN),
    workerCpuMicrosPerCall: med((r) => r.gateway.cpuMicrosPerCall.worker ?? NaN),
    ceilingCpuMicrosPerCall: med((r) => r.ceiling.cpuMicrosPerCall.server ?? NaN),
  };
}

/** Fills `point.median` from its rounds. */
export function aggregateBatch(point: BatchPoint): void {
  const rs = point.rounds;
  if (rs.length === 0) return;
  const med = (f: (r: BatchRound) => number): number => round3(median(rs.map(f)));
  point.median = {
    rps: med((r) => r.result.throughput),
    capacityRps: med((r) => r.capacityRps),
    capacityShare: med((r) => r.capacityShare),
    p50Ms: med((r) => r.result.p50Ms),
    p99Ms: med((r) => r.result.p99Ms),
    meanBatch: med((r) => r.meanBatch),
    modelBusyShare: med((r) => r.modelBusyShare),
    modelMsPerCall: med((r) => r.modelMsPerCall),
    modelIdleMsPerCall: med((r) => r.modelIdleMsPerCall),
    defaults: med((r) => r.result.defaults),
  };
}
