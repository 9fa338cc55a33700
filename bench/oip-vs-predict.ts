/**
 * Open Inference Protocol rows against Predict calls at the same load:
 * queries (rows) arrive open-loop at a fixed rate, each with an input of
 * its own, over gRPC to one gateway with the batching model (5 ms + 0.1 ms
 * per item per batch, bench/models/batch-mix.ts). Each round runs, in turn:
 *
 * - `predict`: one clipper.v1.Predict call per row;
 * - `oip`: ModelInfer calls of `--rows` rows each (a raw FP64 [rows, 3]
 *   tensor, as tritonclient sends it), the same rows per second;
 * - `oip-1`: ModelInfer with one row per call, as many calls as `predict`;
 * - `mixed`: half the rows through Predict, half through ModelInfer, at once,
 *   into the same app: their rows share batches.
 *
 * Reported per mode (medians over rounds): rows answered (not default, no
 * error), rows whose batch also held rows of the other API (mixed mode),
 * mean batch size the model saw (clipper_batch_size), gateway CPU
 * per row (user + system of the gateway process, /proc), and that CPU as a
 * ratio to `predict` of the same round. The load generator runs in this
 * process (grpc-js), on the same cores, and is not counted.
 *
 *   node --import tsx bench/oip-vs-predict.ts [--rate 1500] [--rows 8] [--seconds 4] [--rounds 2] [--slo-ms 100]
 */
import { credentials, status, type Client, type ServiceError } from "@grpc/grpc-js";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { PredictClient, PredictRequest } from "../gen/clipper/v1/predict.js";
import { GRPCInferenceServiceClient, ModelInferRequest } from "../gen/inference/open_inference.js";
import { readCpuSeconds } from "./lib/proc-status.js";
import { BenchStack } from "./lib/stack.js";
import { median } from "./lib/stats.js";

const BATCH_MODULE = fileURLToPath(new URL("./models/batch-mix.ts", import.meta.url));
/** Channels the load is spread over: a few, as several callers would have. */
const CHANNELS = 4;
/** Elements per row. */
const K = 3;

const USAGE = "usage: node --import tsx bench/oip-vs-predict.ts [--rate ROWS/S] [--rows N] [--seconds S] [--rounds R] [--slo-ms MS]";
let values: Record<"rate" | "rows" | "seconds" | "rounds" | "slo-ms", string>;
try {
  values = parseArgs({
    options: {
      rate: { type: "string", default: "1500" },
      rows: { type: "string", default: "8" },
      seconds: { type: "string", default: "4" },
      rounds: { type: "string", default: "2" },
      "slo-ms": { type: "string", default: "100" },
    },
  }).values as typeof values;
} catch (err) {
  console.error(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
  process.exit(2);
}
const rate = Number(values.rate);
const rows = Number(values.rows);
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const sloMs = Number(values["slo-ms"]);
if (!(rate > 0 && Number.isSafeInteger(rows) && rows >= 1 && rows <= 1000 && seconds > 0 && Number.isSafeInteger(rounds) && rounds >= 1 && sloMs > 10)) {
  console.error(USAGE);
  process.exit(2);
}

type Mode = "predict" | "oip" | "oip-1" | "mixed";
const MODES: readonly Mode[] = ["predict", "oip", "oip-1", "mixed"];

interface Outcome {
  rows: number;
  answered: number;
  /** Answered rows whose batch held rows of both APIs. */
  shared: number;
  defaults: number;
  errors: number;
  /** Failed rows by gRPC status name. */
  codes: Map<string, number>;
}

/** The gateway's batch counters and CPU time, read before and after a mode. */
interface Reading {
  items: number;
  batches: number;
  cpu: number;
}

let salt = 0;
/** Tags of the API that sent a row, read back by the model. */
const PREDICT_TAG = 1;
const OIP_TAG = 2;

/** A row never sent before (so no query coalesces with another), tagged with its API. */
function row(tag: number): number[] {
  salt++;
  return [salt, tag, 2];
}

function unary<Req, Res>(client: Client, method: string, req: Req): Promise<{ ok: true; value: Res } | { ok: false; error: ServiceError }> {
  return new Promise((resolve) => {
    (client as unknown as Record<string, Function>)[method]!.call(client, req, { deadline: Date.now() + 30_000 }, (err: ServiceError | null, res: Res) =>
      resolve(err === null ? { ok: true, value: res } : { ok: false, error: err }),
    );
  });
}

function predictOne(client: PredictClient, out: Outcome): Promise<void> {
  out.rows++;
  return unary<PredictRequest, { default: boolean; output: string }>(client, "predict", PredictRequest.fromPartial({ app: "batch", input: { doubles: row(PREDICT_TAG) } })).then((r) => {
    if (!r.ok) failed(out, r.error, 1);
    else if (r.value.default) out.defaults++;
    else {
      out.answered++;
      if (r.value.output === "shared") out.shared++;
    }
  });
}

function inferRows(client: GRPCInferenceServiceClient, n: number, out: Outcome): Promise<void> {
  const raw = Buffer.allocUnsafe(n * K * 8);
  for (let i = 0; i < n; i++) row(OIP_TAG).forEach((v, j) => raw.writeDoubleLE(v, (i * K + j) * 8));
  out.rows += n;
  const req = ModelInferRequest.fromPartial({ modelName: "batch", inputs: [{ name: "input", datatype: "FP64", shape: [n, K] }], rawInputContents: [raw] });
  return unary<ModelInferRequest, { rawOutputContents: Buffer[] }>(client, "modelInfer", req).then((r) => {
    if (!r.ok) {
      failed(out, r.error, n);
      return;
    }
    const [outputs, defaults] = r.value.rawOutputContents as [Buffer, Buffer];
    for (let i = 0, at = 0; i < n; i++) {
      const len = outputs.readUInt32LE(at);
      const output = outputs.toString("utf8", at + 4, at + 4 + len);
      at += 4 + len;
      if (defaults[i] !== 0) out.defaults++;
      else {
        out.answered++;
        if (output === "shared") out.shared++;
      }
    }
  });
}

function failed(out: Outcome, err: ServiceError, rows: number): void {
  out.errors += rows;
  const name = status[err.code] ?? String(err.code);
  out.codes.set(name, (out.codes.get(name) ?? 0) + rows);
}

/** Sends rows at `rate` per second for `secs`: `send(i)` sends the i-th call (of `perCall` rows); resolves when all are answered. */
async function drive(callsPerSecond: number, secs: number, send: (i: number) => Promise<void>): Promise<void> {
  const pending: Promise<void>[] = [];
  const t0 = performance.now();
  const end = t0 + secs * 1000;
  let sent = 0;
  while (performance.now() < end) {
    const due = Math.floor(((performance.now() - t0) / 1000) * callsPerSecond);
    while (sent < due) pending.push(send(sent++));
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(pending);
}

async function reading(stack: BenchStack): Promise<Reading> {
  const text = await (await fetch(`http://127.0.0.1:${stack.gateway.http}/metrics`)).text();
  const value = (name: string): number => text.split("\n").filter((l) => l.startsWith(name)).reduce((s, l) => s + Number(l.split(" ").pop()), 0);
  return { items: value("clipper_batch_size_sum"), batches: value("clipper_batch_size_count"), cpu: readCpuSeconds(stack.gateway.pid) };
}

async function runMode(mode: Mode, stack: BenchStack, predict: PredictClient[], oip: GRPCInferenceServiceClient[], secs: number): Promise<{ out: Outcome; batch: number; cpuPerRowUs: number }> {
  const out: Outcome = { rows: 0, answered: 0, shared: 0, defaults: 0, errors: 0, codes: new Map() };
  const before = await reading(stack);
  const pick = <T>(xs: readonly T[], i: number): T => xs[i % xs.length]!;
  switch (mode) {
    case "predict":
      await drive(rate, secs, (i) => predictOne(pick(predict, i), out));
      break;
    case "oip":
      await drive(rate / rows, secs, (i) => inferRows(pick(oip, i), rows, out));
      break;
    case "oip-1":
      await drive(rate, secs, (i) => inferRows(pick(oip, i), 1, out));
      break;
    case "mixed":
      await Promise.all([drive(rate / 2, secs, (i) => predictOne(pick(predict, i), out)), drive(rate / 2 / rows, secs, (i) => inferRows(pick(oip, i), rows, out))]);
      break;
  }
  const after = await reading(stack);
  return { out, batch: (after.items - before.items) / Math.max(1, after.batches - before.batches), cpuPerRowUs: ((after.cpu - before.cpu) * 1e6) / Math.max(1, out.rows) };
}

const stack = await BenchStack.start({ profileDir: null, profileIntervalUs: 0 });
const channels = { predict: [] as PredictClient[], oip: [] as GRPCInferenceServiceClient[] };
try {
  await stack.deploy("batch", "batch-cost", { sloMicros: sloMs * 1000 });
  await stack.worker("batch-cost", BATCH_MODULE);
  const address = `127.0.0.1:${stack.gateway.grpc}`;
  for (let i = 0; i < CHANNELS; i++) {
    // A distinct channel option keeps grpc-js from sharing one connection between them.
    channels.predict.push(new PredictClient(address, credentials.createInsecure(), { "bench.channel": i }));
    channels.oip.push(new GRPCInferenceServiceClient(address, credentials.createInsecure(), { "bench.channel": i }));
  }
  // Warm-up: connections, JIT, the batcher's latency model.
  for (const mode of MODES) await runMode(mode, stack, channels.predict, channels.oip, 1);
  const results = new Map<Mode, { answered: number[]; shared: number[]; batch: number[]; cpu: number[]; ratio: number[]; errors: number; defaults: number }>();
  for (const m of MODES) results.set(m, { answered: [], shared: [], batch: [], cpu: [], ratio: [], errors: 0, defaults: 0 });
  for (let r = 0; r < rounds; r++) {
    let base = NaN;
    for (const mode of MODES) {
      const res = await runMode(mode, stack, channels.predict, channels.oip, seconds);
      if (mode === "predict") base = res.cpuPerRowUs;
      const acc = results.get(mode)!;
      acc.answered.push(res.out.answered / res.out.rows);
      acc.shared.push(res.out.shared / Math.max(1, res.out.answered));
      acc.batch.push(res.batch);
      acc.cpu.push(res.cpuPerRowUs);
      acc.ratio.push(res.cpuPerRowUs / base);
      acc.errors += res.out.errors;
      acc.defaults += res.out.defaults;
      const codes = [...res.out.codes].map(([c, n]) => `${c} ${n}`).join(", ");
      process.stderr.write(`[oip-vs-predict] round ${r + 1} ${mode}: ${res.out.rows} rows, batch ${res.batch.toFixed(1)}, ${res.cpuPerRowUs.toFixed(0)} µs CPU/row${codes === "" ? "" : `, failed: ${codes}`}\n`);
    }
  }
  console.log(`OIP rows vs Predict, gRPC, open-loop ${rate} rows/s for ${seconds} s per mode, ${rounds} round(s), ModelInfer of ${rows} rows, SLO ${sloMs} ms; medians.\n`);
  console.log("| mode | calls/s | rows answered | in shared batches | defaults | errors | mean batch | gateway CPU µs/row | CPU/row vs predict |");
  console.log("|---|--:|--:|--:|--:|--:|--:|--:|--:|");
  const callsPerSecond: Record<Mode, number> = { predict: rate, oip: rate / rows, "oip-1": rate, mixed: rate / 2 + rate / 2 / rows };
  for (const mode of MODES) {
    const acc = results.get(mode)!;
    console.log(
      `| ${mode} | ${callsPerSecond[mode].toFixed(0)} | ${(100 * median(acc.answered)).toFixed(1)} % | ${(100 * median(acc.shared)).toFixed(1)} % | ${acc.defaults} | ${acc.errors} | ${median(acc.batch).toFixed(1)} | ${median(acc.cpu).toFixed(0)} | ${median(acc.ratio).toFixed(2)} |`,
    );
  }
} finally {
  for (const c of [...channels.predict, ...channels.oip]) c.close();
  await stack.close();
}
