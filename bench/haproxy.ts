/**
 * HAProxy in front of two gateways (issue 13 item 4), with
 * deploy/haproxy/haproxy.cfg as shipped:
 *
 *   node --import tsx bench/haproxy.ts [--seconds 4] [--rounds 3] [--callers 16] [--kill-rounds 3]
 *
 * - cost: closed-loop gRPC Predict and Clipper REST calls (no-op model, cache
 *   off), `--callers` at once, straight to one gateway and through haproxy
 *   to two, alternating in each round; medians of throughput and p50/p99,
 *   and the haproxy/direct ratio, plus how haproxy split the calls between
 *   the gateways (one gRPC connection from the client).
 * - kill: the 5 ms + 0.1 ms/item model, 4 gRPC callers on one channel and 4
 *   REST callers through haproxy; 1.5 s in, the second gateway is killed
 *   with -9; 2.5 s later the load stops and the failed calls are counted.
 *   Each round runs with the shipped configuration and with the same file
 *   without its `retry-on` line (HAProxy's default: only connection
 *   failures retried), then the gateway is started again on its ports.
 *
 * Everything runs on 127.0.0.1; the load generator shares the machine with
 * haproxy, both gateways and the workers, so on a 2-core box the ratios,
 * not the absolute rates, are the figures. Not part of CI (~1.5 min).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { credentials } from "@grpc/grpc-js";
import { pino } from "pino";
import { PredictClient, PredictRequest, type PredictResponse } from "../gen/clipper/v1/predict.js";
import { startManagement } from "../management/management.js";
import { call } from "../test/helpers/grpc.js";
import { HAPROXY_CFG, TestHaproxy } from "../test/helpers/haproxy.js";
import { eventually, spawnBin, startGatewayProcess, type Proc } from "../test/helpers/processes.js";
import { Scrape } from "../test/helpers/prometheus.js";
import { TestRedis } from "../test/helpers/redis-server.js";
import { median, quantileSorted } from "./lib/stats.js";

const USAGE = "usage: node --import tsx bench/haproxy.ts [--seconds S] [--rounds N] [--callers N] [--kill-rounds N]";
let opts: { seconds: number; rounds: number; callers: number; killRounds: number };
try {
  const v = parseArgs({ options: { seconds: { type: "string", default: "4" }, rounds: { type: "string", default: "3" }, callers: { type: "string", default: "16" }, "kill-rounds": { type: "string", default: "3" } } }).values;
  opts = { seconds: Number(v.seconds), rounds: Number(v.rounds), callers: Number(v.callers), killRounds: Number(v["kill-rounds"]) };
  if (!(opts.seconds > 0) || ![opts.rounds, opts.callers, opts.killRounds].every((n) => Number.isInteger(n) && n >= 1 && n <= 256)) throw new Error("bad value");
} catch (err) {
  console.error(`${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}

const NOOP = fileURLToPath(new URL("./models/noop.ts", import.meta.url));
const BATCH = fileURLToPath(new URL("./models/batch-cost.ts", import.meta.url));
type Gateway = Awaited<ReturnType<typeof startGatewayProcess>>;

const redis = await TestRedis.start();
const management = await startManagement({ redisUrl: redis.url, host: "127.0.0.1", grpcPort: 0, httpPort: 0 }, pino({ level: "silent" }));
const procs: Proc[] = [];
const dir = mkdtempSync(join(tmpdir(), "clipper-bench-haproxy-"));
let lb: TestHaproxy | null = null;
const gateways: Gateway[] = [];

async function admin(endpoint: string, body: unknown): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${management.httpPort}/admin/${endpoint}`, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });
  if (res.status !== 200) throw new Error(`admin ${endpoint}: ${res.status} ${await res.text()}`);
}

async function deploy(app: string, model: string): Promise<void> {
  await admin("add_app", { name: app, input_type: "doubles", default_output: "-1", latency_slo_micros: 10_000_000 });
  await admin("add_model", { model_name: model, model_version: "1", labels: [], input_type: "doubles", container_name: "", model_data_path: "", batch_size: -1 });
  await admin("add_model_links", { app_name: app, model_names: [model] });
}

function startWorker(model: string, module: string): Proc {
  const w = spawnBin("clipper-worker", ["--model", model, "--version", "1", "--input-type", "doubles", "--module", module, "--gateway", gateways.map((g) => `tcp://127.0.0.1:${g.rpc}`).join(",")], { CLIPPER_LOG_LEVEL: "warn" });
  procs.push(w);
  return w;
}

/** Model answers each gateway gave `app` so far. */
async function answeredByEach(app: string): Promise<number[]> {
  return Promise.all(gateways.map(async (g) => (await Scrape.of(`http://127.0.0.1:${g.http}/metrics`)).value("clipper_predictions_total", { app, outcome: "ok" }) ?? 0));
}

interface Target {
  readonly grpc: PredictClient;
  readonly http: number;
}
function target(grpcPort: number, httpPort: number): Target {
  return { grpc: new PredictClient(`127.0.0.1:${grpcPort}`, credentials.createInsecure()), http: httpPort };
}

let salt = 0;
/** One call; true when the model answered. */
async function once(t: Target, path: "grpc" | "rest", app: string): Promise<boolean> {
  const x = salt++;
  if (path === "grpc") {
    const r = await call<PredictRequest, PredictResponse>(t.grpc, "predict", PredictRequest.fromPartial({ app, input: { doubles: [x, 0.5] } }));
    return r.ok && !r.value.default;
  }
  try {
    const res = await fetch(`http://127.0.0.1:${t.http}/${app}/predict`, { method: "POST", body: JSON.stringify({ input: [x, 0.5] }) });
    const json = (await res.json()) as { default?: boolean };
    return res.status === 200 && json.default === false;
  } catch {
    return false;
  }
}

interface Run {
  readonly perSecond: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly failed: number;
}
async function closedLoop(t: Target, path: "grpc" | "rest", app: string, callers: number, seconds: number): Promise<Run> {
  const end = performance.now() + seconds * 1000;
  const durations: number[] = [];
  let failed = 0;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        const ok = await once(t, path, app);
        durations.push((performance.now() - t0) * 1000);
        if (!ok) failed++;
      }
    }),
  );
  durations.sort((a, b) => a - b);
  return { perSecond: durations.length / seconds, p50Us: quantileSorted(durations, 0.5), p99Us: quantileSorted(durations, 0.99), failed };
}

function haproxyAddresses(): [{ grpc: number; http: number }, { grpc: number; http: number }] {
  return [gateways[0]!, gateways[1]!];
}

const lines: string[] = [];
const say = (line: string): void => {
  lines.push(line);
  console.log(line);
};

try {
  gateways.push(await startGatewayProcess(redis.url, ["--cache-bytes", "0"]), await startGatewayProcess(redis.url, ["--cache-bytes", "0"]));
  procs.push(...gateways.map((g) => g.proc));
  await deploy("noop", "noop");
  await deploy("batch", "batch-cost");
  startWorker("noop", NOOP);
  startWorker("noop", NOOP);
  startWorker("batch-cost", BATCH);
  lb = await TestHaproxy.start(haproxyAddresses());
  if (!(await eventually(async () => (await lb!.isUp("gw1")) && (await lb!.isUp("gw2")), 30_000))) throw new Error("haproxy did not see both gateways ready");
  const direct = target(gateways[0]!.grpc, gateways[0]!.http);
  const viaLb = target(lb.grpcPort, lb.httpPort);
  if (!(await eventually(async () => (await once(direct, "grpc", "noop")) && (await once(direct, "grpc", "batch")) && (await once(viaLb, "rest", "noop")), 30_000))) throw new Error("the stack does not answer");

  // --- cost ---
  const results: Record<string, Run[]> = {};
  const split: number[][] = [];
  for (let r = 0; r < opts.rounds; r++) {
    for (const path of ["grpc", "rest"] as const) {
      for (const [name, t] of [["direct", direct], ["haproxy", viaLb]] as const) {
        const before = await answeredByEach("noop");
        const run = await closedLoop(t, path, "noop", opts.callers, opts.seconds);
        if (name === "haproxy") split.push((await answeredByEach("noop")).map((n, i) => n - before[i]!));
        (results[`${path} ${name}`] ??= []).push(run);
      }
    }
  }
  say(`## cost: ${opts.callers} closed-loop callers, ${opts.seconds} s, median of ${opts.rounds} rounds (no-op model, cache off)`);
  say("");
  say("| path | target | calls/s | p50 µs | p99 µs | failed | calls/s vs direct | p50 added µs |");
  say("|---|---|---|---|---|---|---|---|");
  for (const path of ["grpc", "rest"]) {
    const d = results[`${path} direct`]!;
    const h = results[`${path} haproxy`]!;
    const row = (runs: Run[]) => ({ rate: median(runs.map((x) => x.perSecond)), p50: median(runs.map((x) => x.p50Us)), p99: median(runs.map((x) => x.p99Us)), failed: runs.reduce((a, x) => a + x.failed, 0) });
    const dr = row(d);
    const hr = row(h);
    say(`| ${path} | one gateway, direct | ${dr.rate.toFixed(0)} | ${dr.p50.toFixed(0)} | ${dr.p99.toFixed(0)} | ${dr.failed} | 1 | 0 |`);
    say(`| ${path} | haproxy, two gateways | ${hr.rate.toFixed(0)} | ${hr.p50.toFixed(0)} | ${hr.p99.toFixed(0)} | ${hr.failed} | ${(hr.rate / dr.rate).toFixed(2)} | ${(hr.p50 - dr.p50).toFixed(0)} |`);
  }
  say("");
  say(`calls per gateway (gw1/gw2) through haproxy, each run in order (per round: gRPC over one client connection, then REST): ${split.map((s) => s.join("/")).join(", ")}`);
  say("");

  // --- kill ---
  const noRetry = join(dir, "haproxy-no-l7-retry.cfg");
  writeFileSync(noRetry, readFileSync(HAPROXY_CFG, "utf8").replace(/^\s*retry-on .*$/m, ""));
  const killed: Record<string, { failed: number; answered: number }[]> = {};
  for (let r = 0; r < opts.killRounds; r++) {
    for (const [name, cfg] of [["shipped (retry-on conn-failure empty-response junk-response)", HAPROXY_CFG], ["without retry-on (HAProxy default: conn-failure only)", noRetry]] as const) {
      await lb.stop();
      lb = await TestHaproxy.start(haproxyAddresses(), { config: cfg });
      if (!(await eventually(async () => (await lb!.isUp("gw1")) && (await lb!.isUp("gw2")), 30_000))) throw new Error("haproxy did not see both gateways ready");
      const t = target(lb.grpcPort, lb.httpPort);
      let stop = false;
      let failed = 0;
      let answered = 0;
      const loop = async (path: "grpc" | "rest"): Promise<void> => {
        while (!stop) {
          if (await once(t, path, "batch")) answered++;
          else failed++;
        }
      };
      const load = Promise.all([...Array.from({ length: 4 }, () => loop("grpc")), ...Array.from({ length: 4 }, () => loop("rest"))]);
      await sleep(1_500);
      const g = gateways[1]!;
      await g.proc.stop("SIGKILL");
      await sleep(2_500);
      stop = true;
      await load;
      t.grpc.close();
      (killed[name] ??= []).push({ failed, answered });
      gateways[1] = await startGatewayProcess(redis.url, ["--cache-bytes", "0", "--grpc-port", String(g.grpc), "--http-port", String(g.http), "--rpc-port", String(g.rpc)]);
      procs.push(gateways[1].proc);
      await eventually(async () => (await Scrape.of(`http://127.0.0.1:${g.http}/metrics`)).value("clipper_live_replicas", { model: "batch-cost", version: "1" }) === 1, 30_000);
    }
  }
  say("## kill -9 of one of two gateways under load (8 callers through haproxy, 5 ms + 0.1 ms/item model)");
  say("");
  say("| haproxy configuration | failed calls per round | answered per round |");
  say("|---|---|---|");
  for (const [name, runs] of Object.entries(killed)) say(`| ${name} | ${runs.map((x) => x.failed).join(", ")} | ${runs.map((x) => x.answered).join(", ")} |`);
  direct.grpc.close();
  viaLb.grpc.close();
} finally {
  await lb?.stop();
  for (const p of procs) await p.stop("SIGKILL");
  await management.close(0);
  await redis.destroy();
  rmSync(dir, { recursive: true, force: true });
}
