/**
 * The benchmark's written outcome: the JSON document, the issue-6 target
 * verdicts, and the markdown table printed and saved beside it.
 */
import type { BatchPoint, MemoryRecord, Point } from "./results.js";
import { QUIET_CORES } from "./quiet.js";
import { CEILING_OF } from "./results.js";
import type { WorkerTransport } from "./stack.js";

/** Where and with what the numbers were taken. */
export interface Machine {
  readonly cpuModel: string;
  readonly cpus: number;
  readonly memGiB: number;
  readonly kernel: string;
  readonly node: string;
  readonly loadAvgStart: readonly number[];
  readonly loadAvgEnd: readonly number[];
  readonly tools: Readonly<Record<string, string>>;
  /** The checkout measured: HEAD and the files of the serving code that differ from it. */
  readonly code: { readonly commit: string; readonly uncommitted: readonly string[] };
}

/** The knobs of one benchmark run. */
export interface BenchSettings {
  readonly rounds: number;
  readonly runSeconds: number;
  readonly concurrency: readonly number[];
  readonly callers: readonly number[];
  readonly sloMs: number;
  readonly batchSeconds: number;
  /** Longest all runs together wait for other work on the machine to finish, seconds. */
  readonly quietWaitSeconds: number;
  /** How the workers reach the gateway (--worker-transport). */
  readonly workerTransport: WorkerTransport;
  readonly smoke: boolean;
}

/** One issue-6 target and whether this run met it. */
export interface TargetVerdict {
  readonly target: string;
  readonly measured: string;
  readonly met: boolean | null;
}

export interface BenchResults {
  readonly schema: "clipper-ts-bench/1";
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly wallSeconds: number;
  readonly machine: Machine;
  readonly settings: BenchSettings;
  readonly points: readonly Point[];
  readonly batching: readonly BatchPoint[];
  readonly memory: Readonly<Record<string, MemoryRecord>>;
  readonly targets: readonly TargetVerdict[];
  readonly checks: { readonly total: number; readonly failures: readonly string[] };
  /** Every run's check passed (targets are reported, not enforced). */
  readonly ok: boolean;
}

/** Issue 6 "Deliver 2" targets. */
export const TARGETS = {
  grpcThroughputRatio: 0.7,
  addedMeanMsAtC1: 0.5,
  addedP99MsAtC1: 2,
  capacityShare: 0.9,
  gatewayRssMiB: 150,
} as const;

const f = (x: number | undefined, digits = 2): string => (x === undefined || Number.isNaN(x) ? "–" : x.toFixed(digits));

/** Judges the issue's targets against the medians. */
export function judgeTargets(points: readonly Point[], batching: readonly BatchPoint[], memory: Readonly<Record<string, MemoryRecord>>): TargetVerdict[] {
  const out: TargetVerdict[] = [];
  const grpc = points.filter((p) => p.path === "grpc" && p.median !== null);
  const busiest = grpc.reduce<Point | null>((a, p) => (a === null || p.concurrency > a.concurrency ? p : a), null);
  if (busiest?.median) {
    const r = busiest.median.throughputRatio;
    out.push({ target: `gRPC no-op throughput ≥ ${TARGETS.grpcThroughputRatio} × bare grpc-js (c=${busiest.concurrency})`, measured: `${f(r)} ×`, met: r >= TARGETS.grpcThroughputRatio });
  }
  const c1 = grpc.find((p) => p.concurrency === 1)?.median;
  if (c1) {
    out.push({ target: `gRPC added mean latency at c=1 ≤ ${TARGETS.addedMeanMsAtC1} ms`, measured: `${f(c1.addedMeanMs, 3)} ms`, met: c1.addedMeanMs <= TARGETS.addedMeanMsAtC1 });
    out.push({ target: `gRPC added p99 latency at c=1 ≤ ${TARGETS.addedP99MsAtC1} ms`, measured: `${f(c1.addedP99Ms, 3)} ms`, met: c1.addedP99Ms <= TARGETS.addedP99MsAtC1 });
  }
  for (const b of batching) {
    if (b.median === null) continue;
    const m = b.median;
    out.push({
      target: `batching, ${b.callers} callers: ≥ ${TARGETS.capacityShare * 100} % of model capacity, p99 ≤ ${b.sloMs} ms SLO`,
      measured: `${f(m.capacityShare * 100, 1)} % (model busy ${f(m.modelBusyShare * 100, 1)} %), p99 ${f(m.p99Ms, 1)} ms, ${f(m.defaults, 0)} defaults`,
      met: m.capacityShare >= TARGETS.capacityShare && m.p99Ms <= b.sloMs,
    });
  }
  const gw = memory.gateway;
  if (gw) out.push({ target: `gateway RSS ≤ ${TARGETS.gatewayRssMiB} MiB throughout`, measured: `peak ${f(gw.peakMiB, 1)} MiB`, met: gw.peakMiB <= TARGETS.gatewayRssMiB });
  return out;
}

/** The markdown report (also what `npm run bench` prints). */
export function renderMarkdown(r: BenchResults): string {
  const m = r.machine;
  const s = r.settings;
  const lines: string[] = [];
  lines.push(`# clipper-ts benchmark, ${r.startedAt}${s.smoke ? " (smoke run: numbers mean nothing)" : ""}`, "");
  lines.push(`Machine: ${m.cpus} × ${m.cpuModel}, ${f(m.memGiB, 1)} GiB, Linux ${m.kernel}, Node ${m.node}; load average ${m.loadAvgStart.map((x) => x.toFixed(2)).join(" ")} at start, ${m.loadAvgEnd.map((x) => x.toFixed(2)).join(" ")} at end.`);
  lines.push(`Tools: ${Object.entries(m.tools).map(([k, v]) => `${k} (${v})`).join(", ")}.`);
  lines.push(`Code: ${m.code.commit}${m.code.uncommitted.length === 0 ? "" : ` plus uncommitted changes to ${m.code.uncommitted.join(", ")}`}.`);
  lines.push(`Settings: ${s.rounds} rounds, ${s.runSeconds} s per run, concurrency ${s.concurrency.join(", ")}; batching ${s.callers.join(" and ")} callers, SLO ${s.sloMs} ms, ${s.batchSeconds} s per run; workers reach the gateway over ${s.workerTransport === "ipc" ? "its Unix domain socket (ipc://)" : "TCP (127.0.0.1)"}. Wall time ${f(r.wallSeconds, 0)} s.`, "");

  if (r.points.length > 0) {
    lines.push("## Gateway (cache off, no-op worker) against the bare transport", "");
    lines.push("Medians over rounds. Ratio and added latency are taken per round, against the ceiling measured in the same round, then the median. c = concurrent callers (one connection and one call in flight each).", "");
    lines.push("| path | c | gateway req/s | ceiling req/s | ratio | mean ms gw / ceil | added mean ms | p99 ms gw / ceil | added p99 ms | items per model call | CPU µs/call gw + worker / ceil |");
    lines.push("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for (const p of r.points) {
      const x = p.median;
      if (x === null) continue;
      lines.push(
        `| ${p.path} vs ${CEILING_OF[p.path]} | ${p.concurrency} | ${f(x.gatewayRps, 0)} | ${f(x.ceilingRps, 0)} | **${f(x.throughputRatio)}** | ${f(x.gatewayMeanMs, 3)} / ${f(x.ceilingMeanMs, 3)} | **${f(x.addedMeanMs, 3)}** | ${f(x.gatewayP99Ms, 2)} / ${f(x.ceilingP99Ms, 2)} | ${f(x.addedP99Ms, 2)} | ${f(x.meanBatch)} | ${f(x.gatewayCpuMicrosPerCall, 0)} + ${f(x.workerCpuMicrosPerCall, 0)} / ${f(x.ceilingCpuMicrosPerCall, 0)} |`,
      );
    }
    lines.push("");
  }

  if (r.batching.length > 0) {
    lines.push("## Batching (model: 5 ms + 0.1 ms per item per batch; Clipper REST; closed-loop callers)", "");
    lines.push("Capacity = the most these callers can get from the model: all of them in one batch, back to back (callers × 1000 / (5 + 0.1 × callers) req/s). Model busy = share of wall time spent inside the model (measured there). Idle per batch = wall time outside the model per model call: the turnaround from one batch to the next.", "");
    lines.push("| callers | req/s | capacity req/s | share of capacity | p50 ms | p99 ms | SLO ms | mean batch | model ms per batch | idle ms per batch | model busy | defaults |");
    lines.push("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for (const b of r.batching) {
      const x = b.median;
      if (x === null) continue;
      lines.push(
        `| ${b.callers} | ${f(x.rps, 0)} | ${f(x.capacityRps, 0)} | **${f(x.capacityShare * 100, 1)} %** | ${f(x.p50Ms, 1)} | **${f(x.p99Ms, 1)}** | ${b.sloMs} | ${f(x.meanBatch, 1)} | ${f(x.modelMsPerCall, 2)} | ${f(x.modelIdleMsPerCall, 2)} | ${f(x.modelBusyShare * 100, 1)} % | ${f(x.defaults, 0)} |`,
      );
    }
    lines.push("");
    const replaced = r.batching.flatMap((b) => b.rounds).filter((x) => x.workerReplaced).length;
    if (replaced > 0) lines.push(`The batching worker was replaced before ${replaced} run(s): the gateway had stopped sending it batches after one slow batch (see bench/README.md).`, "");
  }

  lines.push("## Memory (from /proc/<pid>/status, read after every run)", "");
  lines.push("| process | peak RSS (VmHWM) MiB | largest VmRSS MiB | last VmRSS MiB |");
  lines.push("|---|--:|--:|--:|");
  for (const [name, mem] of Object.entries(r.memory)) lines.push(`| ${name} | ${f(mem.peakMiB, 1)} | ${f(mem.maxRssMiB, 1)} | ${f(mem.lastRssMiB, 1)} |`);
  lines.push("");

  lines.push("## Issue 6 targets", "");
  lines.push("| target | measured | met |", "|---|--:|:-:|");
  for (const t of r.targets) lines.push(`| ${t.target} | ${t.measured} | ${t.met === null ? "–" : t.met ? "yes" : "**no**"} |`);
  lines.push("");

  const background = [...r.points.flatMap((p) => p.rounds.flatMap((x) => [x.gateway.backgroundCores, x.ceiling.backgroundCores])), ...r.batching.flatMap((b) => b.rounds.map((x) => x.backgroundCores))];
  const busy = background.filter((x) => x > QUIET_CORES).length;
  lines.push("## Background load", "");
  lines.push(
    `Other work on the machine, measured for ${background.length} runs just before each (benchmark idle): ${busy === 0 ? `quiet every time (≤ ${QUIET_CORES} cores)` : `${busy} run(s) started with more than ${QUIET_CORES} cores busy (at most ${Math.max(...background).toFixed(2)})`}.`,
    "",
  );

  lines.push("## Checks", "");
  lines.push(
    r.checks.failures.length === 0
      ? `All ${r.checks.total} runs passed: every call counted as a success reached the model (or the bare server), with no errors and no default outputs.`
      : `${r.checks.failures.length} of ${r.checks.total} runs FAILED their check:\n\n${r.checks.failures.map((x) => `- ${x}`).join("\n")}`,
  );
  lines.push("");
  return lines.join("\n");
}
