/**
 * Backpressure on the gateway's streams, with a real gateway process, a real
 * worker and HTTP/2 clients that never read (test/helpers/raw-grpc-stream.ts):
 * the gateway stops taking work from them, its memory stays bounded, other
 * callers are served, and the blocked streams end with RESOURCE_EXHAUSTED.
 */
import { readFileSync } from "node:fs";
import test from "ava";
import { status } from "@grpc/grpc-js";
import { Dealer } from "zeromq";
import { decodeGatewayMessage, encodeWorkerMessage } from "../../core/wire/native.js";
import { WatchWorkersRequest, type WatchWorkersResponse } from "../../gen/clipper/v1/heartbeat.js";
import { PredictRequest, PredictStreamRequest } from "../../gen/clipper/v1/predict.js";
import { call } from "../helpers/grpc.js";
import { Scrape } from "../helpers/prometheus.js";
import { RawGrpcStream } from "../helpers/raw-grpc-stream.js";
import { Stack } from "../helpers/stack.js";

/** --stream-stall-ms of the gateway under test: short, so blocked streams end soon. */
const STALL_MS = 2_000;
/** How much the gateway's RSS may grow while a client floods it without reading (generous: a resource bound, not a timing one). */
const RSS_GROWTH_BOUND = 150 * 1024 * 1024;
/** Longest wait for a blocked stream to end: two stall limits (status, then reset) plus ample slack. */
const END_WAIT_MS = 30_000;

let stack: Stack;

test.before(async () => {
  stack = await Stack.start(["--stream-stall-ms", String(STALL_MS)]);
  await stack.deploy("bp-app", "bp", "1", "strings");
  await stack.worker("bp", "1", "strings", "test/fixtures/models/describe.js");
});

test.after.always(async () => {
  await stack?.close();
});

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (m === null) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

function within<T>(p: Promise<T>, ms: number): Promise<T | "timeout"> {
  return Promise.race([p, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), ms).unref())]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const predictOnce = (i: number) => call<unknown, any>(stack.predict, "predict", PredictRequest.fromPartial({ app: "bp-app", input: { text: `u${i}` } }));

/** PredictStream queries the gateway has answered so far (each one counts as a call in the RPC metrics). */
async function streamQueriesAnswered(): Promise<number> {
  const scrape = await Scrape.of(`http://127.0.0.1:${stack.gateway.http}/metrics`);
  return scrape.all("clipper_rpc_calls_total", { method: "clipper.v1.Predict/PredictStream" }).reduce((sum, s) => sum + s.value, 0);
}

test.serial("a PredictStream client that sends 100k requests and never reads: bounded gateway memory, others served, then RESOURCE_EXHAUSTED", async (t) => {
  const pid = stack.gateway.proc.child.pid!;
  for (let i = 0; i < 20; i++) t.true((await predictOnce(i)).ok);
  const before = rssBytes(pid);
  const answeredBefore = await streamQueriesAnswered();

  const raw = RawGrpcStream.open(stack.gateway.grpc, "/clipper.v1.Predict/PredictStream");
  t.teardown(() => raw.close());
  // All 100k written at once, as a client that ignores flow control would; what the gateway
  // does not take waits in this process.
  for (let i = 0; i < 100_000; i++) {
    raw.send(PredictStreamRequest.encode(PredictStreamRequest.fromPartial({ correlationId: i, request: { app: "bp-app", input: { text: `s${i}` } } })).finish());
  }

  // Others are served while the stream is stuck.
  await sleep(500);
  const others = await Promise.all(Array.from({ length: 50 }, (_, i) => predictOnce(1_000 + i)));
  t.true(others.every((r, i) => r.ok && r.value.output === `text:u${1_000 + i}`));

  const answered = (await streamQueriesAnswered()) - answeredBefore;
  const peak = rssBytes(pid);
  t.log(`gateway RSS before ${(before / 2 ** 20).toFixed(1)} MiB, while blocked ${(peak / 2 ** 20).toFixed(1)} MiB; stream queries taken: ${answered} of 100000`);
  // The gateway stopped reading: it took about a window's worth of queries (services/predict.ts STREAM_WINDOW, plus what was already in buffers), not 100k.
  t.true(answered < 10_000, `took ${answered} queries from a client that reads nothing`);
  t.true(peak - before < RSS_GROWTH_BOUND, `RSS grew by ${((peak - before) / 2 ** 20).toFixed(1)} MiB`);

  const end = await within(raw.done, END_WAIT_MS);
  t.not(end, "timeout", "the blocked stream ended");
  if (end !== "timeout") t.is(end.code, status.RESOURCE_EXHAUSTED);
  const after = rssBytes(pid);
  t.log(`gateway RSS after the stream ended: ${(after / 2 ** 20).toFixed(1)} MiB`);
  t.true(after - before < RSS_GROWTH_BOUND);
  // And the gateway still serves.
  t.true((await predictOnce(9_999)).ok);
});

test.serial("a PredictStream client that stops reading, then reads again, gets its answers and RESOURCE_EXHAUSTED with the reason", async (t) => {
  const raw = RawGrpcStream.open(stack.gateway.grpc, "/clipper.v1.Predict/PredictStream");
  t.teardown(() => raw.close());
  for (let i = 0; i < 20_000; i++) {
    raw.send(PredictStreamRequest.encode(PredictStreamRequest.fromPartial({ correlationId: i, request: { app: "bp-app", input: { text: `r${i}` } } })).finish());
  }
  // Past the stall limit (status sent), before a second one (reset).
  await sleep(STALL_MS * 1.5);
  const received = raw.startReading();
  const end = await within(raw.done, END_WAIT_MS);
  t.not(end, "timeout");
  if (end === "timeout") return;
  t.is(end.code, status.RESOURCE_EXHAUSTED);
  // On a loaded machine the second stall (a reset) may come before reading resumes; the trailers, when they arrive, say why.
  if (end.via === "trailers") t.regex(end.details, /PredictStream: the client read nothing for 2000 ms/);
  t.true(received.length > 0 && received.length < 20_000, `received ${received.length}`);
});

/** A native worker written here that registers and drains, over and over, from one ZeroMQ identity. */
async function churn(rpcPort: number, cycles: number): Promise<void> {
  const peer = new Dealer({ linger: 0 });
  peer.connect(`tcp://127.0.0.1:${rpcPort}`);
  try {
    for (let i = 0; i < cycles; i++) {
      await peer.send(encodeWorkerMessage({ kind: { $case: "register", value: { modelName: "churn", modelVersion: "1", inputType: "doubles", maxBatchSize: 0, concurrency: 1, description: "", curvePublicKey: Buffer.alloc(0), registrationProof: Buffer.alloc(0), workerId: "" } } }));
      const reply = decodeGatewayMessage(await peer.receive());
      if (!reply.ok || reply.value.message.kind?.$case !== "registered") throw new Error(`not registered: ${JSON.stringify(reply)}`);
      // Idle, so draining removes it at once; the next register is a new replica.
      await peer.send(encodeWorkerMessage({ kind: { $case: "drain", value: { reason: "churn" } } }));
    }
  } finally {
    peer.close();
  }
}

test.serial("a WatchWorkers client that never reads while workers churn: bounded, a reading watcher is unaffected, the stuck one gets RESOURCE_EXHAUSTED", async (t) => {
  const pid = stack.gateway.proc.child.pid!;
  const before = rssBytes(pid);
  const stuck = RawGrpcStream.open(stack.gateway.grpc, "/clipper.v1.Heartbeat/WatchWorkers");
  t.teardown(() => stuck.close());
  stuck.send(WatchWorkersRequest.encode({ modelName: "" }).finish());
  stuck.end();
  // A watcher that reads sees every change.
  const seen: WatchWorkersResponse[] = [];
  const reading = stack.heartbeat.watchWorkers({ modelName: "" });
  reading.on("data", (e: WatchWorkersResponse) => seen.push(e));
  let readingError: unknown = null;
  reading.on("error", (err) => (readingError = err));
  t.teardown(() => reading.cancel());
  // Churn only once the watch is live: it has reported the stack's worker.
  t.true(await within((async () => {
    while (!seen.some((e) => e.kind === 1 && e.worker?.modelName === "bp")) await sleep(20);
  })(), 10_000) !== "timeout");

  // 3 changes per cycle (registered, draining, removed): several times the stuck watcher's window and backlog.
  const cycles = 2_000;
  await churn(stack.gateway.rpc, cycles);
  t.log(`churned ${cycles} cycles; the reading watcher has seen ${seen.length} changes`);
  const end = await within(stuck.done, END_WAIT_MS);
  t.not(end, "timeout", "the stuck watcher was ended");
  if (end !== "timeout") t.is(end.code, status.RESOURCE_EXHAUSTED);

  const churned = (kind: number) => seen.filter((e) => e.kind === kind && e.worker?.modelName === "churn").length;
  const done = await within((async () => {
    while (churned(3) < cycles) await sleep(50);
  })(), END_WAIT_MS);
  t.not(done, "timeout");
  t.is(readingError, null);
  t.is(churned(2), cycles);
  t.is(churned(3), cycles);
  const after = rssBytes(pid);
  t.log(`gateway RSS before ${(before / 2 ** 20).toFixed(1)} MiB, after ${(after / 2 ** 20).toFixed(1)} MiB`);
  t.true(after - before < RSS_GROWTH_BOUND);
  t.true((await call<unknown, any>(stack.heartbeat, "listWorkers", { modelName: "" })).ok);
});
