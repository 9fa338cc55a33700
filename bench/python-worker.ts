/**
 * The Python worker against the TypeScript one, on one gateway: the no-op
 * model served by each (gRPC Predict at 1 and 32 closed-loop callers), and
 * the scikit-learn iris model (examples/iris) on the Python worker at 32
 * callers with adaptive batching. For each run: throughput, mean and p99
 * latency, the worker's CPU time per batch (its /proc CPU time over the
 * batches the gateway sent it) and the mean batch size (the gateway's
 * clipper_batch_size). Several rounds, the workers alternating; medians,
 * and the Python/TypeScript ratios of the same round.
 *
 *   node --import tsx bench/python-worker.ts [--rounds 3] [--seconds 3]
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { PredictRequest } from "../gen/clipper/v1/predict.js";
import { Scrape } from "../test/helpers/prometheus.js";
import { spawnPythonWorker } from "../test/helpers/python-worker.js";
import { workerArgs, type Proc } from "../test/helpers/processes.js";
import { runGrpcLoad, warmUpGrpc, writeFrames } from "./lib/h2load.js";
import { readCpuSeconds } from "./lib/proc-status.js";
import { BenchStack } from "./lib/stack.js";
import { ensureTools } from "./lib/tools.js";

const NOOP_TS = fileURLToPath(new URL("./models/noop.ts", import.meta.url));
const NOOP_PY = fileURLToPath(new URL("./models/noop.py", import.meta.url));
const IRIS = fileURLToPath(new URL("../examples/iris/model.py", import.meta.url));

const { values } = parseArgs({ options: { rounds: { type: "string", default: "3" }, seconds: { type: "string", default: "3" } } });
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
if (!(rounds >= 1 && seconds > 0)) {
  process.stderr.write("usage: bench/python-worker.ts [--rounds N] [--seconds S]\n");
  process.exit(2);
}
const log = (line: string): void => void process.stderr.write(`[python-worker] ${line}\n`);
ensureTools(["h2load"], log);
const work = mkdtempSync(join(tmpdir(), "clipper-pybench-"));

/** One pre-encoded gRPC frame per caller with a distinct iris (4 doubles), as writeFrames does for 3. */
function irisFrames(callers: number, salt: number): string[] {
  return Array.from({ length: callers }, (_, i) => {
    const message = PredictRequest.encode(PredictRequest.fromPartial({ app: "iris", input: { doubles: [4.5 + (i % 30) * 0.1, 3.0, 1.0 + salt * 1e-3, 0.2 + i * 1e-4] } })).finish();
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    frame.set(message, 5);
    const path = join(work, `iris-${salt}-${i}.grpc`);
    writeFileSync(path, frame);
    return path;
  });
}

interface Target {
  readonly name: string;
  readonly app: string;
  readonly callers: readonly number[];
  readonly frames: (callers: number, salt: number) => string[];
  pid?: number;
}
const targets: Target[] = [
  { name: "ts-noop", app: "noop-ts", callers: [1, 32], frames: (c, s) => writeFrames(work, "noop-ts", c, s) },
  { name: "py-noop", app: "noop-py", callers: [1, 32], frames: (c, s) => writeFrames(work, "noop-py", c, s) },
  { name: "py-iris", app: "iris", callers: [32], frames: irisFrames },
];

interface Run {
  throughput: number;
  meanMs: number;
  p99Ms: number;
  failed: number;
  cpuMicrosPerBatch: number;
  meanBatch: number;
  modelOk: number;
}

let salt = 1;
const results = new Map<string, Run[]>();
const pythonWorkers: Proc[] = [];
const stack = await BenchStack.start({ profileDir: null, profileIntervalUs: 1000, gatewayArgs: [] });
const batches = async (model: string): Promise<{ count: number; sum: number }> => {
  const m = await Scrape.of(`http://127.0.0.1:${stack.gateway.http}/metrics`);
  const add = (name: string) => m.all(name, { model }).reduce((n, s) => n + s.value, 0);
  return { count: add("clipper_batch_size_count"), sum: add("clipper_batch_size_sum") };
};
try {
  for (const t of targets) await stack.deploy(t.app, t.app, { sloMicros: 10_000_000 });
  targets[0]!.pid = (await stack.worker("noop-ts", NOOP_TS)).pid;
  for (const [t, module] of [[targets[1]!, NOOP_PY], [targets[2]!, IRIS]] as const) {
    const w = spawnPythonWorker(workerArgs({ model: t.app, version: "1", inputType: "doubles", gateway: stack.gateway.rpcEndpoints.join(","), module }), { CLIPPER_LOG_LEVEL: "warn" });
    pythonWorkers.push(w);
    await w.waitFor(/connecting to/);
    t.pid = w.child.pid!;
  }
  for (const t of targets) await warmUpGrpc(stack.gateway.grpc, t.frames(8, salt++), 1);
  for (let round = 1; round <= rounds; round++) {
    for (const t of round % 2 === 1 ? targets : [...targets].reverse()) {
      for (const c of t.callers) {
        const rate = await warmUpGrpc(stack.gateway.grpc, t.frames(c, salt++), 1);
        const perCaller = Math.max(20, Math.round((rate * seconds) / c));
        const [cpu0, b0] = [readCpuSeconds(t.pid!), await batches(t.app)];
        const r = await runGrpcLoad(stack.gateway.grpc, t.frames(c, salt++), perCaller, seconds, work);
        const [cpu1, b1] = [readCpuSeconds(t.pid!), await batches(t.app)];
        const n = b1.count - b0.count;
        const run: Run = {
          throughput: r.throughput,
          meanMs: r.meanMs,
          p99Ms: r.p99Ms,
          failed: r.failed,
          cpuMicrosPerBatch: ((cpu1 - cpu0) * 1e6) / n,
          meanBatch: (b1.sum - b0.sum) / n,
          modelOk: b1.sum - b0.sum,
        };
        const key = `${t.name}/${c}`;
        results.set(key, [...(results.get(key) ?? []), run]);
        log(`round ${round} ${key}: ${r.throughput.toFixed(0)} req/s, mean ${r.meanMs.toFixed(3)} ms, p99 ${r.p99Ms.toFixed(3)} ms, ` +
          `worker CPU ${run.cpuMicrosPerBatch.toFixed(0)} µs/batch, mean batch ${run.meanBatch.toFixed(2)}, failed ${r.failed}`);
      }
    }
  }
} finally {
  for (const w of pythonWorkers) await w.stop("SIGTERM", 5_000);
  await stack.close();
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const lines = [
  "| worker / model | callers | req/s | mean ms | p99 ms | worker CPU µs per batch | mean batch size | req/s ratio to TS (same round) | added mean ms vs TS | failed |",
  "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
];
for (const t of targets) {
  for (const c of t.callers) {
    const runs = results.get(`${t.name}/${c}`)!;
    const ts = t.name === "py-noop" ? results.get(`ts-noop/${c}`)! : null;
    const ratio = ts === null ? "" : median(runs.map((r, i) => r.throughput / ts[i]!.throughput)).toFixed(2);
    const added = ts === null ? "" : median(runs.map((r, i) => r.meanMs - ts[i]!.meanMs)).toFixed(3);
    lines.push(
      `| ${t.name} | ${c} | ${median(runs.map((r) => r.throughput)).toFixed(0)} | ${median(runs.map((r) => r.meanMs)).toFixed(3)} | ${median(runs.map((r) => r.p99Ms)).toFixed(3)} | ` +
        `${median(runs.map((r) => r.cpuMicrosPerBatch)).toFixed(0)} | ${median(runs.map((r) => r.meanBatch)).toFixed(2)} | ${ratio} | ${added} | ${runs.reduce((n, r) => n + r.failed, 0)} |`,
    );
  }
}
process.stdout.write(`${lines.join("\n")}\n`);
process.exit([...results.values()].flat().some((r) => r.failed > 0) ? 1 : 0);
