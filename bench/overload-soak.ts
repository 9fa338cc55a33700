/**
 * Overload, soak and kill -9 figures, against the batching model (a fixed
 * cost per batch plus a cost per item: 5 ms + 1 ms by default) behind one
 * gateway, driven open loop over Clipper REST and, for a share of the calls,
 * gRPC Predict:
 *
 *   node --import tsx bench/overload-soak.ts [--phase overload|soak|kill|all] [--seconds S]
 *       [--slo-ms 50] [--fixed-ms 5] [--item-ms 1] [--grpc-share 0.2] [--queue-capacity N]
 *
 * The default per-item cost gives the model a capacity of 800 req/s within
 * a 50 ms SLO, so 2x is 1600 req/s: a rate the driver, the gateway and the
 * worker can carry together on a 2-core machine. With --item-ms 0.1 (the
 * model of `npm run bench`) capacity is 8000 req/s and 2x is 16000 req/s,
 * which such a machine cannot offer while also serving it: the figures
 * then measure the machine, not the gateway's admission.
 *
 * - overload: 2x the model's capacity within the SLO (as bench/open-loop.ts
 *   computes it) for 60 s (or --seconds): gateway RSS
 *   every 250 ms, how the excess was shed (429 / RESOURCE_EXHAUSTED and
 *   whether a Retry-After came with it), the share of admitted calls the
 *   model answered within the SLO.
 * - soak: 70 % of that capacity for 600 s (or --seconds): gateway RSS every
 *   5 s and its least-squares slope, errors.
 * - kill: 70 % load, kill -9 of the gateway, a new one on the same ports 2 s
 *   later: the longest any caller waited after the kill for an answer or an
 *   error, calls never answered, how long the worker took to register with
 *   the new gateway, and Redis DB 3 against ListWorkers afterwards.
 *
 * The phases run in that order on one stack (kill last: it replaces the
 * gateway). The gateway runs with its own defaults: admission by predicted
 * wait (gateway/admission.ts) sheds the excess, not the queue's capacity
 * (--queue-capacity sets one for comparison). Not part of CI: it takes ~13 min.
 * Exit code 0 when it ran, 2 for bad flags; the figures are for reading.
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { loadavg } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { credentials, Metadata } from "@grpc/grpc-js";
import { HeartbeatClient, type ListWorkersResponse } from "../gen/clipper/v1/heartbeat.js";
import { containerKey, DB } from "../core/redis-layout.js";
import { redisDb } from "../test/helpers/redis-dump.js";
import { BenchStack } from "./lib/stack.js";
import { MAX_PENDING, OpenLoopDriver, type Tally } from "./lib/open-loop-driver.js";
import { readMemory } from "./lib/proc-status.js";
import { leastSquaresSlope, quantileSorted } from "./lib/stats.js";
import { batchModelCapacity } from "./lib/batch-capacity.js";

const BATCH_MODULE = fileURLToPath(new URL("./models/batch-cost.ts", import.meta.url));
const APP = "batch";
const MODEL = "batch-cost";
/** How long the driver waits for calls in flight when a load stops, in ms; any still open then is counted as hung. */
const STOP_GRACE_MS = 10_000;
/** How long the gateway stays dead in the kill phase before its restart, in ms. */
const DOWN_MS = 2_000;

const USAGE =
  "usage: node --import tsx bench/overload-soak.ts [--phase overload|soak|kill|all] [--seconds S] [--slo-ms MS > 10] [--fixed-ms MS] [--item-ms MS] [--grpc-share 0..1] [--queue-capacity N]";
let values: { phase: string; seconds?: string; "slo-ms": string; "fixed-ms": string; "item-ms": string; "grpc-share": string; "queue-capacity"?: string };
try {
  values = parseArgs({
    options: {
      phase: { type: "string", default: "all" },
      seconds: { type: "string" },
      "slo-ms": { type: "string", default: "50" },
      "fixed-ms": { type: "string", default: "5" },
      "item-ms": { type: "string", default: "1" },
      "grpc-share": { type: "string", default: "0.2" },
      "queue-capacity": { type: "string" },
    },
  }).values;
} catch (err) {
  console.error(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
  process.exit(2);
}
const sloMs = Number(values["slo-ms"]);
const grpcShare = Number(values["grpc-share"]);
const seconds = values.seconds === undefined ? null : Number(values.seconds);
const phases = values.phase === "all" ? ["overload", "soak", "kill"] : [values.phase];
const fixedMs = Number(values["fixed-ms"]);
const itemMs = Number(values["item-ms"]);
const { batchItems, perSecond: capacity } = batchModelCapacity(sloMs, fixedMs, itemMs);
const queueCapacity = values["queue-capacity"] === undefined ? null : Number(values["queue-capacity"]);
if (
  !(fixedMs >= 0 && itemMs > 0 && batchItems >= 1) ||
  !(sloMs > 10) || !(grpcShare >= 0 && grpcShare <= 1) || (seconds !== null && !(seconds > 0)) || (queueCapacity !== null && !(Number.isInteger(queueCapacity) && queueCapacity >= 1)) ||
  phases.some((p) => !["overload", "soak", "kill"].includes(p))
) {
  console.error(USAGE);
  process.exit(2);
}

/** Table rows: figure, measured, target. */
const rows: [string, string, string][] = [];
/** Adds rows to the table and shows them at once on stderr, so a phase's figures survive a later failure. */
function report(...added: [string, string, string][]): void {
  rows.push(...added);
  for (const [f, m] of added) console.error(`  ${new Date().toISOString().slice(11, 19)} ${f}: ${m}`);
}
const pct = (n: number, d: number): string => (d === 0 ? "–" : `${((100 * n) / d).toFixed(1)} %`);
const ms = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : String(x));
const kinds = (t: Tally): string => [...t.errorKinds].map(([k, n]) => `${k} ×${n}`).join(", ") || "none";

/** Samples the gateway's VmRSS every `everyMs` until stopped; t in s from the start. */
function sampleRss(pid: number, everyMs: number): { stop(): { t: number; mib: number }[] } {
  const t0 = performance.now();
  const samples: { t: number; mib: number }[] = [];
  const take = (): void => {
    const m = readMemory(pid);
    if (m !== null) samples.push({ t: (performance.now() - t0) / 1000, mib: m.rssMiB });
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return samples;
    },
  };
}

async function overload(stack: BenchStack, driver: OpenLoopDriver): Promise<void> {
  const secs = seconds ?? 60;
  const rate = 2 * capacity;
  console.error(`overload: ${rate} req/s for ${secs} s`);
  const rss = sampleRss(stack.gateway.pid, 250);
  const load = driver.start(rate, grpcShare, { keepLog: false });
  await sleep(secs * 1000);
  const t = await load.stop(STOP_GRACE_MS);
  const samples = rss.stop();
  const peak = readMemory(stack.gateway.pid)?.peakMiB ?? NaN;
  const admitted = t.answers + t.defaults;
  const lat = t.latenciesMs.sort((a, b) => a - b);
  const shed = t.shed.http + t.shed.grpc;
  report(
    ["**overload**: offered", `${rate} req/s (2× ${capacity}) for ${secs} s, ${(grpcShare * 100).toFixed(0)} % over gRPC; ${t.sent} calls sent, ${t.unsent} not sent (driver at ${MAX_PENDING} open calls)`, ""],
    ["overload: gateway RSS, max of samples every 250 ms", `${Math.max(...samples.map((s) => s.mib)).toFixed(1)} MiB (VmHWM since start ${peak.toFixed(1)} MiB)`, "≤ 150 MiB"],
    ["overload: shed (429 / RESOURCE_EXHAUSTED)", `${shed} (${pct(shed, t.sent)} of calls): HTTP ${t.shed.http}, gRPC ${t.shed.grpc}`, "the excess"],
    ["overload: shed with Retry-After", `HTTP ${pct(t.shedWithRetryAfter.http, t.shed.http)}, gRPC ${pct(t.shedWithRetryAfter.grpc, t.shed.grpc)}`, "all"],
    ["overload: admitted", `${admitted} (${(admitted / secs).toFixed(0)} req/s)`, ""],
    ["overload: admitted answered by the model within the SLO", `${pct(t.inTime, admitted)} (${t.inTime}); defaults ${t.defaults}; p50 ${ms(quantileSorted(lat, 0.5))} ms, p99 ${ms(quantileSorted(lat, 0.99))} ms`, "all"],
    ["overload: errors, hung", `${t.errors} (${kinds(t)}), ${t.hung}`, "0, 0"],
  );
}

async function soak(stack: BenchStack, driver: OpenLoopDriver): Promise<void> {
  const secs = seconds ?? 600;
  const rate = Math.round(0.7 * capacity);
  console.error(`soak: ${rate} req/s for ${secs} s`);
  const rss = sampleRss(stack.gateway.pid, 5_000);
  const load = driver.start(rate, grpcShare, { keepLog: false });
  await sleep(secs * 1000);
  const t = await load.stop(STOP_GRACE_MS);
  const samples = rss.stop();
  const slope = (from: number): number => {
    const s = samples.filter((x) => x.t >= from);
    return leastSquaresSlope(s.map((x) => x.t / 60), s.map((x) => x.mib));
  };
  const admitted = t.answers + t.defaults;
  const lat = t.latenciesMs.sort((a, b) => a - b);
  const mibs = samples.map((s) => s.mib);
  report(
    ["**soak**: offered", `${rate} req/s (70 % of ${capacity}) for ${secs} s; ${t.sent} calls sent, ${t.unsent} not sent (driver at ${MAX_PENDING} open calls)`, ""],
    ["soak: gateway RSS (every 5 s): first, last, max", `${mibs[0]!.toFixed(1)}, ${mibs[mibs.length - 1]!.toFixed(1)}, ${Math.max(...mibs).toFixed(1)} MiB (${samples.length} samples)`, "flat"],
    ["soak: RSS slope, least squares", `${slope(0).toFixed(3)} MiB/min over the run; ${slope(60).toFixed(3)} MiB/min after the first minute`, "≈ 0"],
    ["soak: errors, hung", `${t.errors} (${kinds(t)}), ${t.hung}`, "0, 0"],
    ["soak: shed, defaults", `${t.shed.http + t.shed.grpc}, ${t.defaults}`, ""],
    ["soak: admitted answered by the model within the SLO", `${pct(t.inTime, admitted)}; p50 ${ms(quantileSorted(lat, 0.5))} ms, p99 ${ms(quantileSorted(lat, 0.99))} ms`, ""],
  );
}

async function listWorkers(grpcPort: number): Promise<ListWorkersResponse["workers"] | null> {
  const client = new HeartbeatClient(`127.0.0.1:${grpcPort}`, credentials.createInsecure());
  try {
    return await new Promise((resolve) => {
      client.listWorkers({ modelName: "" }, new Metadata(), { deadline: Date.now() + 1_000 }, (err, res) => resolve(err === null ? res.workers : null));
    });
  } finally {
    client.close();
  }
}

async function kill(stack: BenchStack, driver: OpenLoopDriver): Promise<void> {
  const rate = Math.round(0.7 * capacity);
  console.error(`kill: ${rate} req/s, kill -9 of the gateway after 3 s, a new one ${DOWN_MS} ms later`);
  const load = driver.start(rate, grpcShare, { keepLog: true });
  await sleep(3_000);
  console.error(`  ${new Date().toISOString().slice(11, 19)} kill -9 of the gateway, ${load.pending} calls open`);
  // SIGKILL goes out synchronously at the start of the call.
  const killAt = performance.now();
  await stack.killAndRestartGateway({ killed: () => sleep(DOWN_MS) });
  const readyAt = performance.now();
  console.error(`  ${new Date().toISOString().slice(11, 19)} new gateway up`);
  // When the worker registered again: the time of its own "worker registered"
  // log line (pino, ms since the epoch) after the new gateway's ports line.
  // Polling ListWorkers measured the poll instead: a fresh gRPC channel to a
  // gateway just started under load took seconds to answer.
  const workerLog = stack.workers[0]!.proc;
  const registeredEpoch = async (): Promise<number> => {
    for (let waited = 0; waited < 30_000; waited += 50) {
      for (const line of workerLog.output.split("\n")) {
        if (!line.includes('"worker registered"')) continue;
        const time = Number((JSON.parse(line) as { time?: unknown }).time);
        if (time >= performance.timeOrigin + readyAt - 1_000) return time;
      }
      await sleep(50);
    }
    return NaN;
  };
  const registeredAt = (await registeredEpoch()) - performance.timeOrigin;
  await sleep(3_000);
  const t = await load.stop(STOP_GRACE_MS);
  await sleep(1_000);
  const workers = (await listWorkers(stack.gateway.grpc)) ?? [];
  const listed = new Set(workers.map((w) => containerKey(w.modelName, w.modelVersion, w.replicaId)));
  const redis = await redisDb(stack.redis.url, DB.CONTAINERS);
  const db3 = await redis.keys("*").finally(() => redis.disconnect());
  const stale = db3.filter((k) => !listed.has(k));
  const missing = [...listed].filter((k) => !db3.includes(k));

  // Calls open at the kill or sent while no gateway ran: how long after the kill (or their start) they ended.
  const hit = t.log.filter((c) => c.end > killAt && c.start < readyAt);
  const openAtKill = hit.filter((c) => c.start <= killAt);
  const wait = (c: (typeof hit)[number]): number => c.end - Math.max(c.start, killAt);
  const maxWait = Math.max(...hit.map(wait));
  const maxOpenWait = Math.max(...openAtKill.map(wait));
  const over1s = hit.filter((c) => wait(c) > 1_000).length;
  // The slowest calls, to tell where a long wait came from.
  const slowest = [...hit].sort((a, b) => wait(b) - wait(a)).slice(0, 3)
    .map((c) => `${c.transport} ${c.outcome}, sent ${ms(c.start - killAt)} ms after the kill, waited ${ms(wait(c))} ms`).join("; ");
  const afterReg = t.log.filter((c) => c.start >= registeredAt);
  const count = (cs: typeof hit, o: string): number => cs.filter((c) => c.outcome === o).length;
  report(
    ["**kill**: load", `${rate} req/s, ${(grpcShare * 100).toFixed(0)} % over gRPC; ${t.sent} calls sent, ${t.unsent} not sent`, ""],
    ["kill: calls open at the kill", `${openAtKill.length}: ${count(openAtKill, "error")} errors, ${count(openAtKill, "answer") + count(openAtKill, "default")} answers`, ""],
    ["kill: longest wait for an answer or error after the kill, calls open at the kill", `${ms(maxOpenWait)} ms`, "≤ 1000 ms"],
    ["kill: longest wait, any call open at the kill or sent while down", `${ms(maxWait)} ms over ${hit.length} calls; ${over1s} over 1 s`, "≤ 1000 ms"],
    ["kill: the three longest waits", slowest, ""],
    ["kill: what callers saw", kinds(t), "connection error / UNAVAILABLE"],
    ["kill: calls never answered (hung)", `${t.hung}`, "0"],
    ["kill: worker registered with the new gateway, after its ports line (by the worker's log)", `${ms(registeredAt - readyAt)} ms (gateway start took ${ms(readyAt - killAt - DOWN_MS)} ms)`, "≤ 2000 ms"],
    ["kill: calls sent after re-registration", `${afterReg.length}: ${count(afterReg, "answer")} answers, ${count(afterReg, "default")} defaults, ${count(afterReg, "error")} errors, ${count(afterReg, "shed")} shed`, ""],
    ["kill: Redis DB 3 against ListWorkers afterwards", `DB 3 [${db3.sort().join(" ")}], ListWorkers [${[...listed].sort().join(" ")}]; stale ${stale.length}, missing ${missing.length}`, "stale 0"],
  );
}

const load0 = loadavg();
// The worker inherits the environment: the model's costs.
process.env.BENCH_MODEL_FIXED_MS = String(fixedMs);
process.env.BENCH_MODEL_ITEM_MS = String(itemMs);
const stack = await BenchStack.start({ profileDir: null, profileIntervalUs: 0, gatewayArgs: queueCapacity === null ? [] : ["--queue-capacity", String(queueCapacity)] });
const started = Date.now();
try {
  await stack.deploy(APP, MODEL, { sloMicros: sloMs * 1000 });
  await stack.worker(MODEL, BATCH_MODULE);
  const driver = new OpenLoopDriver({ app: APP, httpPort: stack.gateway.http, grpcPort: stack.gateway.grpc, sloMs });
  try {
    // Warm-up: connections up, JIT warm, the model's latency estimate settled.
    const warm = driver.start(Math.round(capacity / 2), grpcShare, { keepLog: false });
    await sleep(2_000);
    await warm.stop(STOP_GRACE_MS);
    for (const phase of phases) {
      if (phase === "overload") await overload(stack, driver);
      else if (phase === "soak") await soak(stack, driver);
      else await kill(stack, driver);
    }
  } finally {
    driver.close();
  }
} finally {
  await stack.close();
}
const load1 = loadavg();
console.log(
  `Overload, soak and kill -9 (${phases.join(", ")}), Clipper REST + gRPC Predict, SLO ${sloMs} ms, model ${fixedMs} ms + ${itemMs} ms per item, capacity within the SLO ${capacity} req/s, ` +
    `gateway --queue-capacity ${queueCapacity ?? "default"}; ${((Date.now() - started) / 1000).toFixed(0)} s; load average before ${load0.map((x) => x.toFixed(2)).join(" ")}, after ${load1.map((x) => x.toFixed(2)).join(" ")}.\n`,
);
console.log("| figure | measured | target |");
console.log("|---|---|---|");
for (const [figure, measured, target] of rows) console.log(`| ${figure} | ${measured} | ${target} |`);
