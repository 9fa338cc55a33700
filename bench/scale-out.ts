/**
 * What scaling out costs, in one command, ratios within one run:
 *
 *   node --import tsx bench/scale-out.ts [--part processes|batching|all] [--rounds 3] [--seconds 3]
 *       [--concurrency 16,64] [--batch-seconds 20] [--item-ms 0.1] [--rate 1600]
 *
 * - processes: one gateway run three ways side by side, each with its own
 *   no-op worker serving every one of its worker endpoints: one process
 *   (no flag, the same as `--processes 1`) and `--processes 2` (a primary
 *   that serves nothing, and two processes). h2load drives gRPC Predict with c
 *   callers, each on its own connection with its own input (the primary
 *   balances connections, not calls, so c ≥ 2 reaches both processes).
 *   Reported: throughput, and gateway CPU µs per call, summed over the
 *   primary and its processes (scale-out must cost nothing per call).
 * - batching: one replica of the batching model (5 ms + 0.1 ms per item by
 *   default; --item-ms changes it) behind one gateway, then the same
 *   replica shared by two gateways on one Redis with the same total load
 *   split between them (open loop at --rate req/s, distinct inputs, SLO
 *   50 ms). The default rate, 1600 req/s, is what one driver process can
 *   offer on a 2-core machine that also runs the gateways and the worker.
 *   Reported: the share of time the model was busy, mean batch size, p99,
 *   the share answered by the model within the SLO.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { countsDelta, readCounts, settledCounts } from "./lib/counter.js";
import { runGrpcLoad, warmUpGrpc, writeFrames } from "./lib/h2load.js";
import { OpenLoopDriver, type Tally } from "./lib/open-loop-driver.js";
import { readTreeCpuSeconds } from "./lib/proc-status.js";
import { BenchStack } from "./lib/stack.js";
import { median, quantileSorted } from "./lib/stats.js";
import { ensureTools } from "./lib/tools.js";
import { batchModelCapacity } from "./lib/batch-capacity.js";

const NOOP_MODULE = fileURLToPath(new URL("./models/noop.ts", import.meta.url));
const BATCH_MODULE = fileURLToPath(new URL("./models/batch-cost.ts", import.meta.url));
const USAGE =
  "usage: node --import tsx bench/scale-out.ts [--part processes|batching|all] [--rounds N] [--seconds S] [--concurrency LIST] [--batch-seconds S] [--item-ms MS] [--rate REQ/S]\n";

let values: { part: string; rounds: string; seconds: string; concurrency: string; "batch-seconds": string; "item-ms": string; rate: string };
try {
  values = parseArgs({
    options: {
      part: { type: "string", default: "all" },
      rounds: { type: "string", default: "3" },
      seconds: { type: "string", default: "3" },
      concurrency: { type: "string", default: "16,64" },
      "batch-seconds": { type: "string", default: "20" },
      "item-ms": { type: "string", default: "0.1" },
      rate: { type: "string", default: "1600" },
    },
  }).values;
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const concurrency = values.concurrency.split(",").map(Number);
const batchSeconds = Number(values["batch-seconds"]);
const itemMs = Number(values["item-ms"]);
const rate = Number(values.rate);
const parts = values.part === "all" ? ["processes", "batching"] : [values.part];
if (
  !(Number.isInteger(rounds) && rounds >= 1 && seconds > 0 && batchSeconds > 0 && itemMs > 0 && itemMs < 100 && rate > 0) ||
  !concurrency.every((c) => Number.isSafeInteger(c) && c >= 1) ||
  parts.some((p) => p !== "processes" && p !== "batching")
) {
  process.stderr.write(USAGE);
  process.exit(2);
}
const log = (line: string): void => void process.stderr.write(`[scale-out] ${new Date().toISOString().slice(11, 19)} ${line}\n`);
const out: string[] = [];

async function processesPart(): Promise<void> {
  ensureTools(["h2load"], log);
  const work = mkdtempSync(join(tmpdir(), "clipper-scale-"));
  const variants: { name: string; args: string[]; stack?: BenchStack }[] = [
    { name: "single process", args: [] },
    { name: "--processes 2", args: ["--processes", "2"] },
  ];
  let salt = 1;
  const results = new Map<string, { throughput: number; cpuUs: number; workerCpuUs: number; failed: number }[]>();
  try {
    for (const v of variants) {
      v.stack = await BenchStack.start({ profileDir: null, profileIntervalUs: 1000, gatewayArgs: v.args });
      await v.stack.deploy("noop", "noop", { sloMicros: 10_000_000 });
      await v.stack.worker("noop", NOOP_MODULE);
      await warmUpGrpc(v.stack.gateway.grpc, writeFrames(work, "noop", 16, salt++), 2);
    }
    for (let round = 1; round <= rounds; round++) {
      for (const c of concurrency) {
        for (const v of round % 2 === 1 ? variants : [...variants].reverse()) {
          const s = v.stack!;
          const rate = await warmUpGrpc(s.gateway.grpc, writeFrames(work, "noop", c, salt++), 1);
          const perCaller = Math.max(20, Math.round((rate * seconds) / c));
          const cpu0 = readTreeCpuSeconds(s.gateway.pid);
          const w0 = readTreeCpuSeconds(s.workers[0]!.pid);
          const r = await runGrpcLoad(s.gateway.grpc, writeFrames(work, "noop", c, salt++), perCaller, seconds, work);
          const calls = c * perCaller;
          const cpuUs = ((readTreeCpuSeconds(s.gateway.pid) - cpu0) * 1e6) / calls;
          const workerCpuUs = ((readTreeCpuSeconds(s.workers[0]!.pid) - w0) * 1e6) / calls;
          const key = `${v.name}/${c}`;
          results.set(key, [...(results.get(key) ?? []), { throughput: r.throughput, cpuUs, workerCpuUs, failed: r.failed }]);
          log(`round ${round} c=${c} ${v.name}: ${r.throughput.toFixed(0)} req/s, gateway ${cpuUs.toFixed(1)} µs/call, worker ${workerCpuUs.toFixed(1)} µs/call, failed ${r.failed}`);
        }
      }
    }
  } finally {
    for (const v of variants) await v.stack?.close();
  }
  out.push(
    "### Gateway processes (gRPC Predict, no-op model, h2load)",
    "",
    "| variant | c | req/s (median) | ratio to single | gateway CPU µs/call (median) | ratio to single | worker CPU µs/call | failed |",
    "|---|--:|--:|--:|--:|--:|--:|--:|",
  );
  for (const c of concurrency) {
    const base = results.get(`single process/${c}`)!;
    for (const v of variants) {
      const runs = results.get(`${v.name}/${c}`)!;
      out.push(
        `| ${v.name} | ${c} | ${median(runs.map((r) => r.throughput)).toFixed(0)} | ${median(runs.map((r, i) => r.throughput / base[i]!.throughput)).toFixed(2)} | ` +
          `${median(runs.map((r) => r.cpuUs)).toFixed(1)} | ${median(runs.map((r, i) => r.cpuUs / base[i]!.cpuUs)).toFixed(2)} | ${median(runs.map((r) => r.workerCpuUs)).toFixed(1)} | ${runs.reduce((n, r) => n + r.failed, 0)} |`,
      );
    }
  }
  out.push("");
}

const SLO_MS = 50;
const FIXED_MS = 5;

interface BatchingFigures {
  busyShare: number;
  meanBatch: number;
  p99Ms: number;
  inTimeShare: number;
  sent: number;
  errors: number;
  shed: number;
}

async function batchingPart(): Promise<void> {
  process.env.BENCH_MODEL_FIXED_MS = String(FIXED_MS);
  process.env.BENCH_MODEL_ITEM_MS = String(itemMs);
  const capacity = batchModelCapacity(SLO_MS, FIXED_MS, itemMs).perSecond;
  const stack = await BenchStack.start({ profileDir: null, profileIntervalUs: 1000 });
  try {
    const second = await stack.addGateway();
    await stack.deploy("batch", "batch-cost", { sloMicros: SLO_MS * 1000 });
    const worker = await stack.worker("batch-cost", BATCH_MODULE, [], [...stack.gateway.rpcEndpoints, ...second.rpcEndpoints]);
    const drivers = [stack.gateway, second].map((g) => new OpenLoopDriver({ app: "batch", httpPort: g.http, grpcPort: g.grpc, sloMs: SLO_MS }));
    const run = async (shares: readonly number[]): Promise<BatchingFigures> => {
      const before = await settledCounts(worker.counterPort);
      const t0 = performance.now();
      const loads = shares.map((share, i) => (share > 0 ? drivers[i]!.start(rate * share, 0.2, { keepLog: false }) : null));
      await sleep(batchSeconds * 1000);
      const tallies = (await Promise.all(loads.map((l) => l?.stop(10_000)))).filter((t): t is Tally => t !== undefined);
      const elapsedMs = performance.now() - t0;
      const d = countsDelta(before, await readCounts(worker.counterPort));
      const lat = tallies.flatMap((t) => t.latenciesMs).sort((a, b) => a - b);
      const sum = (f: (t: Tally) => number): number => tallies.reduce((n, t) => n + f(t), 0);
      const admitted = sum((t) => t.answers + t.defaults);
      return {
        busyShare: d.busyMicros / 1000 / elapsedMs,
        meanBatch: d.calls === 0 ? 0 : d.items / d.calls,
        p99Ms: quantileSorted(lat, 0.99),
        inTimeShare: admitted === 0 ? 0 : sum((t) => t.inTime) / admitted,
        sent: sum((t) => t.sent),
        errors: sum((t) => t.errors + t.hung),
        shed: sum((t) => t.shed.http + t.shed.grpc),
      };
    };
    // Warm-up: both gateways' latency models learn the replica.
    await Promise.all(drivers.map((d) => d.start(rate / 4, 0.2, { keepLog: false })).map(async (l) => (await sleep(3_000), l.stop(10_000))));
    const rows: [string, BatchingFigures][] = [];
    for (let round = 1; round <= rounds; round++) {
      for (const [name, shares] of (round % 2 === 1 ? [["one gateway", [1, 0]], ["two gateways", [0.5, 0.5]]] : [["two gateways", [0.5, 0.5]], ["one gateway", [1, 0]]]) as [string, number[]][]) {
        const f = await run(shares);
        rows.push([name, f]);
        log(`round ${round} ${name}: busy ${(100 * f.busyShare).toFixed(1)} %, mean batch ${f.meanBatch.toFixed(2)}, p99 ${f.p99Ms.toFixed(1)} ms, in SLO ${(100 * f.inTimeShare).toFixed(1)} %, shed ${f.shed}, errors ${f.errors}`);
      }
    }
    for (const d of drivers) d.close();
    out.push(
      `### One replica behind one gateway vs shared by two (batching model ${FIXED_MS} ms + ${itemMs} ms per item, ${rate} req/s open loop = ${Math.round((100 * rate) / capacity)} % of its ${capacity} req/s within the SLO, SLO ${SLO_MS} ms, ${batchSeconds} s per run)`,
      "",
      "| setup | model busy (median) | mean batch size | p99 ms | answered by the model within the SLO | shed | errors |",
      "|---|--:|--:|--:|--:|--:|--:|",
    );
    for (const name of ["one gateway", "two gateways"]) {
      const fs = rows.filter(([n]) => n === name).map(([, f]) => f);
      out.push(
        `| ${name} | ${(100 * median(fs.map((f) => f.busyShare))).toFixed(1)} % | ${median(fs.map((f) => f.meanBatch)).toFixed(2)} | ${median(fs.map((f) => f.p99Ms)).toFixed(1)} | ` +
          `${(100 * median(fs.map((f) => f.inTimeShare))).toFixed(1)} % | ${fs.reduce((n, f) => n + f.shed, 0)} | ${fs.reduce((n, f) => n + f.errors, 0)} |`,
      );
    }
    out.push("");
  } finally {
    await stack.close();
  }
}

for (const p of parts) {
  if (p === "processes") await processesPart();
  else await batchingPart();
}
process.stdout.write(`${out.join("\n")}\n`);
