/**
 * The whole benchmark: starts the stack and the ceilings, runs every point
 * for several rounds (alternating target and ceiling, each round in the
 * other order), the batching points, and returns the results.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { atStop, stopAll } from "./cleanup.js";
import { countsDelta, settledCounts, type Counts } from "./counter.js";
import { runGrpcLoad, warmUpGrpc, writeFrames } from "./h2load.js";
import type { LoadResult } from "./load-result.js";
import { readCpuSeconds, readMemory } from "./proc-status.js";
import { judgeTargets, type BenchResults, type BenchSettings } from "./report.js";
import {
  aggregateBatch,
  aggregatePoint,
  batchCostMs,
  recordMemory,
  type BatchPoint,
  type Check,
  type MemoryRecord,
  type PathName,
  type Point,
  type RunRecord,
} from "./results.js";
import { ROOT } from "../../test/helpers/processes.js";
import { formatRefusals, readRefusals, refusalsDelta, type Refusals } from "./refusals.js";
import { BenchStack, startBareServer, type CountedProc } from "./stack.js";
import { waitForQuiet } from "./quiet.js";
import { round3 } from "./stats.js";
import { toolVersion } from "./tools.js";
import { CLIPPER_BODY, runHttpLoad, TRANSCODED_BODY, type HttpScenario } from "./wrk.js";

const NOOP_MODULE = fileURLToPath(new URL("../models/noop.ts", import.meta.url));
const BATCH_MODULE = fileURLToPath(new URL("../models/batch-cost.ts", import.meta.url));

/** The no-op app's SLO, µs: far above any latency here, so no call of a no-op run gets the default output. */
const NOOP_SLO_MICROS = 10_000_000;

/** Warm-up per target before the first round, seconds (JIT, connection pools, the batcher's latency model). */
const WARM_UP_SECONDS = 2;

/** Length of the h2load run that sizes each gRPC point's counted runs, seconds. */
const CALIBRATION_SECONDS = 1;

/** Fewest calls each gRPC caller makes in a counted run. */
const MIN_CALLS_PER_CALLER = 20;

/** Longest wait for an app's model to answer a first call, ms. */
const SERVING_TIMEOUT_MS = 15_000;

/**
 * How long the batching app may answer only defaults before its worker is
 * replaced, ms. One batch slower than the SLO budget makes the gateway drop
 * every later query of that model version as "doomed" without ever sending
 * another batch (bench/README.md, hot spot list); a fresh replica starts
 * with a fresh latency model.
 */
const STARVED_PROBE_MS = 1_000;

/** Concurrency of the warm-up runs. */
const WARM_UP_CONCURRENCY = 16;

/** How much of a process's output to show after a failed run. */
const TAIL_CHARS = 2_000;

/** Progress output (stderr), one line per step. */
export type Log = (line: string) => void;

/** A server-side process to read CPU time and memory of. */
interface Watched {
  readonly name: string;
  readonly pid: number;
}

interface Env {
  readonly stack: BenchStack;
  readonly noop: CountedProc;
  /** Replaced when the gateway starves it (see STARVED_PROBE_MS). */
  batch: CountedProc | null;
  readonly bareGrpc: CountedProc & { port: number };
  readonly bareHttp: CountedProc & { port: number };
  readonly workDir: string;
  readonly memory: Record<string, MemoryRecord>;
  readonly watched: Watched[];
  readonly log: Log;
  readonly cpus: number;
  /** Time all runs together may still spend waiting for a quiet machine, ms. */
  readonly quietBudget: { ms: number };
}

/** Runs `load`, reading the far side's counter and the CPU time of `cpuOf` around it. */
async function counted(
  env: Env,
  counterPort: number,
  cpuOf: readonly Watched[],
  load: () => Promise<LoadResult>,
): Promise<{ result: LoadResult; counts: Counts; cpuMicrosPerCall: Record<string, number>; backgroundCores: number }> {
  const backgroundCores = round3(await waitForQuiet(env.cpus, env.quietBudget));
  const before = await settledCounts(counterPort);
  const cpu0 = cpuOf.map((w) => readCpuSeconds(w.pid));
  const result = await load();
  const after = await settledCounts(counterPort);
  const cpu1 = cpuOf.map((w) => readCpuSeconds(w.pid));
  const counts = countsDelta(before, after);
  const cpuMicrosPerCall: Record<string, number> = {};
  cpuOf.forEach((w, i) => (cpuMicrosPerCall[w.name] = round3(((cpu1[i]! - cpu0[i]!) * 1e6) / Math.max(1, counts.items))));
  for (const w of env.watched) recordMemory(env.memory, w.name, readMemory(w.pid));
  return { result, counts, cpuMicrosPerCall, backgroundCores };
}

/** Exact check of a counted gRPC run: h2load's successes all happened on the far side. */
function grpcCheck(label: string, r: LoadResult, items: number, expected: number): Check {
  const ok = r.failed === 0 && r.succeeded === expected && items === r.succeeded;
  const stuck = r.stuck ? `, ${r.stuck} caller(s) got no answer until killed` : "";
  return { ok, detail: `${label}: sent ${expected}, h2load ok ${r.succeeded}, failed ${r.failed}${stuck}, far side handled ${items}` };
}

/** A failed check of a gateway run, with what the gateway's counters say became of the calls the model never saw. */
async function explained(check: Check, gatewayHttpPort: number, before: Refusals): Promise<Check> {
  if (check.ok) return check;
  return { ok: false, detail: `${check.detail}; ${formatRefusals(refusalsDelta(await readRefusals(gatewayHttpPort), before))}` };
}

/**
 * Check of a wrk run: no errors, no default outputs (a default is a call the
 * model did not answer), and the far side handled every completed call; calls
 * still in flight when wrk stops (≤ c) may reach it uncounted by wrk.
 */
function httpCheck(label: string, r: LoadResult, items: number, c: number): Check {
  const ok = r.failed === 0 && r.defaults === 0 && items >= r.requests && items <= r.requests + c;
  return { ok, detail: `${label}: wrk completed ${r.requests}, failed ${r.failed}, defaults ${r.defaults}, far side handled ${items} (allowed ${r.requests}..${r.requests + c})` };
}

function record(target: RunRecord["target"], round: number, m: Awaited<ReturnType<typeof counted>>, check: Check): RunRecord {
  return { target, round, result: m.result, counted: m.counts, cpuMicrosPerCall: m.cpuMicrosPerCall, backgroundCores: m.backgroundCores, check };
}

/** Starts everything, runs the points and returns the results; always stops what it started. */
export async function runBenchmark(settings: BenchSettings, log: Log): Promise<BenchResults> {
  const startedAt = new Date();
  const loadAvgStart = loadavg();
  const workDir = mkdtempSync(join(tmpdir(), "clipper-bench-"));
  try {
    log(`starting redis, management, gateway (--cache-bytes 0), workers (over ${settings.workerTransport}) and the bare servers`);
    const stack = await BenchStack.start({ profileDir: null, profileIntervalUs: 0, workerTransport: settings.workerTransport });
    atStop(() => stack.close());
    const bareGrpc = await startBareServer("bare-grpc");
    atStop(() => bareGrpc.proc.stop("SIGTERM", 5_000));
    const bareHttp = await startBareServer("bare-http");
    atStop(() => bareHttp.proc.stop("SIGTERM", 5_000));
    await stack.deploy("noop", "noop", { sloMicros: NOOP_SLO_MICROS });
    const noop = await stack.worker("noop", NOOP_MODULE);
    let batch: CountedProc | null = null;
    if (settings.callers.length > 0) {
      await stack.deploy("batch", "batch-cost", { sloMicros: settings.sloMs * 1000 });
      batch = await stack.worker("batch-cost", BATCH_MODULE);
    }
    const watched: Watched[] = [
      { name: "gateway", pid: stack.gateway.pid },
      { name: "worker (no-op)", pid: noop.pid },
      ...(batch === null ? [] : [{ name: "worker (batching)", pid: batch.pid }]),
      { name: "bare grpc-js", pid: bareGrpc.pid },
      { name: "bare node:http", pid: bareHttp.pid },
    ];
    const env: Env = { stack, noop, batch, bareGrpc, bareHttp, workDir, memory: {}, watched, log, cpus: cpus().length, quietBudget: { ms: settings.quietWaitSeconds * 1000 } };
    await waitUntilServing(stack, "noop");
    if (batch !== null) await waitUntilServing(stack, "batch");

    const points = settings.concurrency.length === 0 ? [] : await runPoints(env, settings);
    const batching = batch === null ? [] : await runBatching(env, settings);
    const memory = env.memory;
    const runs = [
      ...points.flatMap((p) => p.rounds.flatMap((r) => [r.gateway, r.ceiling])),
      ...batching.flatMap((b) => b.rounds),
    ];
    const failures = [...new Set(runs.filter((r) => !r.check.ok).map((r) => r.check.detail))];
    const finishedAt = new Date();
    const cpu = cpus();
    return {
      schema: "clipper-ts-bench/1",
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      wallSeconds: round3((finishedAt.getTime() - startedAt.getTime()) / 1000),
      machine: {
        cpuModel: cpu[0]?.model.trim() ?? "unknown",
        cpus: cpu.length,
        memGiB: round3(totalmem() / 2 ** 30),
        kernel: release(),
        node: process.version,
        loadAvgStart,
        loadAvgEnd: loadavg(),
        tools: { h2load: toolVersion("h2load"), wrk: toolVersion("wrk"), gnuplot: toolVersion("gnuplot") },
        code: codeState(),
      },
      settings,
      points,
      batching,
      memory,
      targets: judgeTargets(points, batching, memory),
      checks: { total: runs.length, failures },
      ok: failures.length === 0,
    };
  } finally {
    await stopAll();
    rmSync(workDir, { recursive: true, force: true });
  }
}

/** After a failed gateway run: what the gateway and worker last printed (warnings and errors). */
function logTails(env: Env, worker: CountedProc): void {
  const tail = (text: string): string => text.slice(-TAIL_CHARS).trim() || "(nothing)";
  env.log(`gateway output, last ${TAIL_CHARS} chars:\n${tail(env.stack.gateway.proc.output)}`);
  env.log(`worker output, last ${TAIL_CHARS} chars:\n${tail(worker.proc.output)}`);
}

/** HEAD and the serving code's uncommitted files, so a result says what it measured ("unknown" outside git). */
function codeState(): { commit: string; uncommitted: string[] } {
  const git = (args: string[]): string => {
    try {
      return execFileSync("git", args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trimEnd();
    } catch {
      return "";
    }
  };
  const commit = git(["rev-parse", "--short", "HEAD"]) || "unknown";
  const uncommitted = git(["status", "--porcelain", "--", "gateway", "core", "worker", "gen", "package.json"])
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => l.slice(3));
  return { commit, uncommitted };
}

/** Waits until the gateway's catalog knows the app and a call reaches its model (bounded). */
async function waitUntilServing(stack: BenchStack, app: string): Promise<void> {
  const last = await servedWithin(stack, app, SERVING_TIMEOUT_MS);
  if (last !== null) throw new Error(`app ${app} is not served by its model within ${SERVING_TIMEOUT_MS} ms; last answer: ${last}`);
}

/** Probes `app` until its model answers a call; null when it did, else the last answer seen. */
async function servedWithin(stack: BenchStack, app: string, ms: number): Promise<string | null> {
  const end = Date.now() + ms;
  let last = "";
  while (Date.now() < end) {
    const res = await fetch(`http://127.0.0.1:${stack.gateway.http}/${app}/predict`, { method: "POST", body: JSON.stringify({ input: [Math.random()] }) });
    last = await res.text();
    if (res.status === 200 && !last.includes('"default":true')) return null;
    await new Promise((r) => setTimeout(r, 100));
  }
  return last;
}

const HTTP_SCENARIOS: Readonly<Record<Exclude<PathName, "grpc">, (app: string) => HttpScenario>> = {
  "http-transcoded": (app) => ({ path: `/v1/apps/${app}:predict`, bodyFormat: TRANSCODED_BODY }),
  "clipper-rest": (app) => ({ path: `/${app}/predict`, bodyFormat: CLIPPER_BODY }),
};

async function runPoints(env: Env, s: BenchSettings): Promise<Point[]> {
  const { stack, noop, bareGrpc, bareHttp, workDir, log } = env;
  const gw: Watched[] = [{ name: "gateway", pid: stack.gateway.pid }, { name: "worker", pid: noop.pid }];
  const bareG: Watched[] = [{ name: "server", pid: bareGrpc.pid }];
  const bareH: Watched[] = [{ name: "server", pid: bareHttp.pid }];
  let salt = 1;

  log(`warm-up: ${WARM_UP_SECONDS} s per target`);
  await warmUpGrpc(stack.gateway.grpc, writeFrames(workDir, "noop", WARM_UP_CONCURRENCY, salt++), WARM_UP_SECONDS);
  await warmUpGrpc(bareGrpc.port, writeFrames(workDir, "noop", WARM_UP_CONCURRENCY, salt++), WARM_UP_SECONDS);
  for (const scenario of Object.values(HTTP_SCENARIOS)) await runHttpLoad(stack.gateway.http, scenario("noop"), WARM_UP_CONCURRENCY, WARM_UP_SECONDS, workDir, salt++);
  await runHttpLoad(bareHttp.port, HTTP_SCENARIOS["clipper-rest"]("noop"), WARM_UP_CONCURRENCY, WARM_UP_SECONDS, workDir, salt++);

  // Each gRPC point's counted runs are sized by a short timed run of its own.
  // Every run gets inputs never sent before: a call abandoned when a timed run
  // ends must not share an input with a later call (the gateway would make the
  // later one wait for the abandoned one; see bench/README.md).
  const perCaller = new Map<string, number>();
  for (const c of s.concurrency) {
    for (const [name, port] of [["gateway", stack.gateway.grpc], ["ceiling", bareGrpc.port]] as const) {
      const rate = await warmUpGrpc(port, writeFrames(workDir, "noop", c, salt++), CALIBRATION_SECONDS);
      perCaller.set(`${name}/${c}`, Math.max(MIN_CALLS_PER_CALLER, Math.round((rate * s.runSeconds) / c)));
    }
  }

  const points = new Map<string, Point>();
  const pointOf = (path: PathName, c: number): Point => {
    const key = `${path}/${c}`;
    let p = points.get(key);
    if (p === undefined) {
      p = { path, concurrency: c, rounds: [], median: null };
      points.set(key, p);
    }
    return p;
  };

  for (let round = 1; round <= s.rounds; round++) {
    for (const c of s.concurrency) {
      const grpcRun = async (target: "gateway" | "ceiling"): Promise<RunRecord> => {
        const n = perCaller.get(`${target}/${c}`)!;
        const port = target === "gateway" ? stack.gateway.grpc : bareGrpc.port;
        const refusedBefore = target === "gateway" ? await readRefusals(stack.gateway.http) : null;
        const m = await counted(env, target === "gateway" ? noop.counterPort : bareGrpc.counterPort, target === "gateway" ? gw : bareG, () =>
          runGrpcLoad(port, writeFrames(workDir, "noop", c, salt++), n, s.runSeconds, workDir),
        );
        const checked = grpcCheck(`round ${round} grpc c=${c} ${target}`, m.result, m.counts.items, n * c);
        const check = refusedBefore === null ? checked : await explained(checked, stack.gateway.http, refusedBefore);
        return record(target, round, m, check);
      };
      const httpRun = async (path: Exclude<PathName, "grpc"> | "ceiling"): Promise<RunRecord> => {
        const scenario = HTTP_SCENARIOS[path === "ceiling" ? "clipper-rest" : path]("noop");
        const isCeiling = path === "ceiling";
        const refusedBefore = isCeiling ? null : await readRefusals(stack.gateway.http);
        const m = await counted(env, isCeiling ? bareHttp.counterPort : noop.counterPort, isCeiling ? bareH : gw, () =>
          runHttpLoad(isCeiling ? bareHttp.port : stack.gateway.http, scenario, c, s.runSeconds, workDir, salt++),
        );
        const checked = httpCheck(`round ${round} ${path} c=${c}`, m.result, m.counts.items, c);
        const check = refusedBefore === null ? checked : await explained(checked, stack.gateway.http, refusedBefore);
        return record(isCeiling ? "ceiling" : "gateway", round, m, check);
      };
      // Target and ceiling alternate; every other round runs the list backwards.
      const steps: [string, () => Promise<RunRecord>][] = [
        ["grpc ceiling", () => grpcRun("ceiling")],
        ["grpc gateway", () => grpcRun("gateway")],
        ["http ceiling", () => httpRun("ceiling")],
        ["http-transcoded gateway", () => httpRun("http-transcoded")],
        ["clipper-rest gateway", () => httpRun("clipper-rest")],
      ];
      if (round % 2 === 0) steps.reverse();
      const got = new Map<string, RunRecord>();
      for (const [name, step] of steps) {
        const r = await step();
        got.set(name, r);
        log(`round ${round}/${s.rounds} c=${c} ${name}: ${r.result.throughput.toFixed(0)} req/s, mean ${r.result.meanMs.toFixed(3)} ms, p99 ${r.result.p99Ms.toFixed(2)} ms, background ${r.backgroundCores.toFixed(2)} cores${r.check.ok ? "" : `  CHECK FAILED: ${r.check.detail}`}`);
        if (!r.check.ok && r.target === "gateway") logTails(env, noop);
      }
      const pair = (path: PathName, gateway: RunRecord, ceiling: RunRecord): void => {
        pointOf(path, c).rounds.push({
          round,
          gateway,
          ceiling,
          throughputRatio: round3(gateway.result.throughput / ceiling.result.throughput),
          addedMeanMs: round3(gateway.result.meanMs - ceiling.result.meanMs),
          addedP99Ms: round3(gateway.result.p99Ms - ceiling.result.p99Ms),
        });
      };
      pair("grpc", got.get("grpc gateway")!, got.get("grpc ceiling")!);
      pair("http-transcoded", got.get("http-transcoded gateway")!, got.get("http ceiling")!);
      pair("clipper-rest", got.get("clipper-rest gateway")!, got.get("http ceiling")!);
    }
  }
  const out = [...points.values()].sort((a, b) => a.path.localeCompare(b.path) || a.concurrency - b.concurrency);
  for (const p of out) aggregatePoint(p);
  return out;
}

/** Replaces the batching worker when the gateway no longer sends it anything; returns whether it did. */
async function unstarve(env: Env): Promise<boolean> {
  if (env.batch === null || (await servedWithin(env.stack, "batch", STARVED_PROBE_MS)) === null) return false;
  env.log("the batching app answers only defaults (its model version is starved): replacing its worker");
  const old = env.batch;
  env.batch = await env.stack.restartWorker(old, "batch-cost", BATCH_MODULE);
  const w = env.watched.find((x) => x.pid === old.pid);
  if (w !== undefined) env.watched[env.watched.indexOf(w)] = { name: w.name, pid: env.batch.pid };
  await waitUntilServing(env.stack, "batch");
  return true;
}

async function runBatching(env: Env, s: BenchSettings): Promise<BatchPoint[]> {
  const { stack, workDir, log } = env;
  if (env.batch === null) return [];
  const scenario = HTTP_SCENARIOS["clipper-rest"]("batch");
  let salt = 1_000_000;
  log(`batching warm-up: ${WARM_UP_SECONDS} s`);
  await unstarve(env);
  await runHttpLoad(stack.gateway.http, scenario, s.callers[0]!, WARM_UP_SECONDS, workDir, salt++);
  const points = s.callers.map((callers): BatchPoint => ({ callers, sloMs: s.sloMs, rounds: [], median: null }));
  for (let round = 1; round <= s.rounds; round++) {
    const order = round % 2 === 1 ? points : [...points].reverse();
    for (const p of order) {
      const restarted = await unstarve(env);
      const batch = env.batch!;
      const watched: Watched[] = [{ name: "gateway", pid: stack.gateway.pid }, { name: "worker", pid: batch.pid }];
      const refusedBefore = await readRefusals(stack.gateway.http);
      const m = await counted(env, batch.counterPort, watched, () => runHttpLoad(stack.gateway.http, scenario, p.callers, s.batchSeconds, workDir, salt++));
      const r = m.result;
      const capacityRps = (p.callers * 1000) / batchCostMs(p.callers);
      const checked = httpCheck(`round ${round} batching callers=${p.callers}`, r, m.counts.items, p.callers);
      const check = await explained(checked, stack.gateway.http, refusedBefore);
      p.rounds.push({
        round,
        result: r,
        counted: m.counts,
        meanBatch: round3(m.counts.items / Math.max(1, m.counts.calls)),
        capacityRps: round3(capacityRps),
        capacityShare: round3(r.throughput / capacityRps),
        modelBusyShare: round3(m.counts.busyMicros / 1e6 / r.seconds),
        modelMsPerCall: round3(m.counts.busyMicros / 1000 / Math.max(1, m.counts.calls)),
        modelIdleMsPerCall: round3(Math.max(0, r.seconds * 1000 - m.counts.busyMicros / 1000) / Math.max(1, m.counts.calls)),
        cpuMicrosPerCall: m.cpuMicrosPerCall,
        backgroundCores: m.backgroundCores,
        workerReplaced: restarted,
        check,
      });
      log(`round ${round}/${s.rounds} batching ${p.callers} callers: ${r.throughput.toFixed(0)} req/s of ${capacityRps.toFixed(0)}, p99 ${r.p99Ms.toFixed(1)} ms, batch ${(m.counts.items / Math.max(1, m.counts.calls)).toFixed(1)}, defaults ${r.defaults}, background ${m.backgroundCores.toFixed(2)} cores${check.ok ? "" : `  CHECK FAILED: ${check.detail}`}`);
      if (!check.ok) logTails(env, batch);
    }
  }
  for (const p of points) aggregateBatch(p);
  return points;
}
