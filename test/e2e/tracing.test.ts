/**
 * Traces across the gateway and a worker, recorded in memory: both run in
 * this process (startGateway, startWorker), so one in-memory exporter sees
 * every span; the OTLP test (otlp-export.test.ts) covers real processes.
 */
import test from "ava";
import { SpanKind } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { pino } from "pino";
import { Registry } from "prom-client";
import { NO_DEADLINE } from "../../core/deadline.js";
import { CallInstrument } from "../../core/telemetry/call-instrument.js";
import { createLogger } from "../../core/telemetry/logger.js";
import { createRpcMetrics } from "../../core/telemetry/metrics.js";
import { startTracing, type Tracing } from "../../core/telemetry/tracing.js";
import { startGateway, type Gateway } from "../../gateway/gateway.js";
import { startManagement, type Management } from "../../management/management.js";
import { startWorker, type WorkerHandle } from "../../worker/runtime.js";
import { eventually, untilReady } from "../helpers/processes.js";
import { Scrape } from "../helpers/prometheus.js";
import { TestRedis } from "../helpers/redis-server.js";

const exporter = new InMemorySpanExporter();
const silent = pino({ level: "silent" });

let tracing: Tracing;
let redis: TestRedis;
let management: Management;
let gateway: Gateway;
let worker: WorkerHandle;
/** While set, the model waits for it before answering (to hold batches back). */
let gate: Promise<void> | null = null;
let entered: () => void = () => {};

test.before(async () => {
  tracing = await startTracing("clipper-test", { spanProcessors: [new SimpleSpanProcessor(exporter)] });
  redis = await TestRedis.start();
  management = await startManagement({ redisUrl: redis.url, host: "127.0.0.1", grpcPort: 0, httpPort: 0 }, silent);
  gateway = await startGateway(
    { redisUrl: redis.url, host: "127.0.0.1", grpcPort: 0, httpPort: 0, rpcPort: 0, cacheBytes: 1 << 20, queueCapacity: 100, evictionMs: 3_000 },
    silent,
  );
  // Management refuses Admin calls until its Redis connection is up.
  await untilReady(management.httpPort);
  for (const [endpoint, body] of [
    ["add_app", { name: "t-app", input_type: "doubles", default_output: "-1", latency_slo_micros: 20_000_000 }],
    ["add_model", { model_name: "sum", model_version: "1", labels: [], input_type: "doubles", container_name: "", model_data_path: "", batch_size: -1 }],
    ["add_model_links", { app_name: "t-app", model_names: ["sum"] }],
  ] as const) {
    const res = await fetch(`http://127.0.0.1:${management.httpPort}/admin/${endpoint}`, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });
    if (res.status !== 200) throw new Error(`${endpoint}: ${res.status} ${await res.text()}`);
  }
  worker = startWorker({
    model: "sum",
    version: "1",
    inputType: "doubles",
    gateway: `tcp://127.0.0.1:${gateway.rpcPort}`,
    predict: async (inputs) => {
      if (gate !== null) {
        entered();
        await gate;
      }
      return (inputs as Float64Array[]).map((x) => String(x.reduce((a, b) => a + b, 0)));
    },
    log: silent,
  });
  if (!(await eventually(() => worker.replicaId() !== null))) throw new Error("the worker did not register");
  await gateway.catalog.settled();
});

test.after.always(async () => {
  await worker?.close();
  await gateway?.close(0);
  await management?.close(0);
  await redis?.destroy();
  await tracing?.shutdown();
});

/** A W3C traceparent for a fresh trace, as a caller's own span would send it. */
function traceparent(): { header: string; traceId: string; parentId: string } {
  const hex = (bytes: number) => Buffer.from(Array.from({ length: bytes }, () => Math.floor(Math.random() * 256))).toString("hex");
  const traceId = hex(16);
  const parentId = hex(8);
  return { header: `00-${traceId}-${parentId}-01`, traceId, parentId };
}

const predictHttp = (value: number, header: string) =>
  fetch(`http://127.0.0.1:${gateway.httpPort}/v1/apps/t-app:predict`, {
    method: "POST",
    headers: { traceparent: header, "content-type": "application/json" },
    body: JSON.stringify({ input: { doubles: [value, 1] } }),
  }).then(async (r) => ({ status: r.status, json: (await r.json()) as { output: string; default: boolean } }));

const spansOf = (traceId: string): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
const one = (spans: ReadableSpan[], name: string): ReadableSpan => {
  const found = spans.filter((s) => s.name === name);
  if (found.length !== 1) throw new Error(`${found.length} spans named ${name}: ${spans.map((s) => s.name).join(", ")}`);
  return found[0]!;
};
const parentOf = (s: ReadableSpan): string | undefined => s.parentSpanContext?.spanId;

test.serial("one HTTP call with a traceparent yields the gateway's spans and the worker's in that trace", async (t) => {
  const tp = traceparent();
  const r = await predictHttp(41, tp.header);
  t.is(r.status, 200);
  t.is(r.json.output, "42");
  t.true(await eventually(() => spansOf(tp.traceId).some((s) => s.name === "predict sum:1")));
  const spans = spansOf(tp.traceId);

  // The server span continues the caller's span.
  const server = one(spans, "clipper.v1.Predict/Predict");
  t.is(server.kind, SpanKind.SERVER);
  t.is(parentOf(server), tp.parentId);
  t.is(server.attributes["clipper.transport"], "http");
  t.is(server.attributes["rpc.grpc.status_code"], 0);

  const cache = one(spans, "cache lookup");
  t.is(parentOf(cache), server.spanContext().spanId);
  t.is(cache.attributes["clipper.cache.result"], "miss");
  const queue = one(spans, "queue wait");
  t.is(parentOf(queue), server.spanContext().spanId);

  // The batch: child of its first call, linked to every call it carries.
  const batch = one(spans, "batch sum:1");
  t.is(batch.kind, SpanKind.CLIENT);
  t.is(parentOf(batch), server.spanContext().spanId);
  t.deepEqual(batch.links.map((l) => l.context.spanId), [server.spanContext().spanId]);
  t.is(batch.attributes["clipper.batch_size"], 1);

  // The worker's predict span, carried over ZeroMQ, is the batch span's child.
  const predict = one(spans, "predict sum:1");
  t.is(predict.kind, SpanKind.SERVER);
  t.is(parentOf(predict), batch.spanContext().spanId);
  t.is(predict.attributes["clipper.batch_size"], 1);
  t.deepEqual(spans.map((s) => s.name).sort(), ["batch sum:1", "cache lookup", "clipper.v1.Predict/Predict", "predict sum:1", "queue wait"]);
});

test.serial("a batch carrying two calls is a child of the first and links both; the worker span follows it", async (t) => {
  const queueDepth = async () => (await Scrape.of(`http://127.0.0.1:${gateway.httpPort}/metrics`)).value("clipper_queue_depth", { model: "sum", version: "1" });
  // Hold the only slot with call A, queue B then C behind it, then let go.
  let release: () => void = () => {};
  gate = new Promise<void>((resolve) => (release = resolve));
  const running = new Promise<void>((resolve) => (entered = resolve));
  const [a, b, c] = [traceparent(), traceparent(), traceparent()];
  const answers = [predictHttp(1, a.header)];
  await running;
  gate = null;
  answers.push(predictHttp(2, b.header));
  t.true(await eventually(async () => (await queueDepth()) === 1));
  answers.push(predictHttp(3, c.header));
  t.true(await eventually(async () => (await queueDepth()) === 2));
  release();
  t.deepEqual((await Promise.all(answers)).map((r) => r.json.output), ["2", "3", "4"]);
  t.true(await eventually(() => spansOf(b.traceId).some((s) => s.name === "predict sum:1")));

  const serverB = one(spansOf(b.traceId), "clipper.v1.Predict/Predict");
  const serverC = one(spansOf(c.traceId), "clipper.v1.Predict/Predict");
  const batch = one(spansOf(b.traceId), "batch sum:1");
  t.is(parentOf(batch), serverB.spanContext().spanId);
  t.is(batch.attributes["clipper.batch_size"], 2);
  t.deepEqual(
    batch.links.map((l) => [l.context.traceId, l.context.spanId]),
    [[b.traceId, serverB.spanContext().spanId], [c.traceId, serverC.spanContext().spanId]],
  );
  // C's trace has its call and queue wait, but the batch (and worker span) live in B's trace, linked.
  t.false(spansOf(c.traceId).some((s) => s.name.startsWith("batch ")));
  t.is(parentOf(one(spansOf(c.traceId), "queue wait")), serverC.spanContext().spanId);
  const predict = one(spansOf(b.traceId), "predict sum:1");
  t.is(parentOf(predict), batch.spanContext().spanId);
  t.is(predict.attributes["clipper.batch_size"], 2);
});

test.serial("gRPC metadata traceparent is continued too, and a call without one starts its own trace", async (t) => {
  const { credentials, Metadata } = await import("@grpc/grpc-js");
  const { PredictClient, PredictRequest } = await import("../../gen/clipper/v1/predict.js");
  const client = new PredictClient(`127.0.0.1:${gateway.grpcPort}`, credentials.createInsecure());
  t.teardown(() => client.close());
  const send = (value: number, md: InstanceType<typeof Metadata>) =>
    new Promise<string>((resolve, reject) =>
      client.predict(PredictRequest.fromPartial({ app: "t-app", input: { doubles: [value] } }), md, (err, res) => (err === null ? resolve(res.output) : reject(err))),
    );
  const tp = traceparent();
  const md = new Metadata();
  md.set("traceparent", tp.header);
  t.is(await send(100, md), "100");
  t.true(await eventually(() => spansOf(tp.traceId).some((s) => s.name === "predict sum:1")));
  const server = one(spansOf(tp.traceId), "clipper.v1.Predict/Predict");
  t.is(parentOf(server), tp.parentId);
  t.is(server.attributes["clipper.transport"], "grpc");

  exporter.reset();
  t.is(await send(200, new Metadata()), "200");
  t.true(await eventually(() => exporter.getFinishedSpans().some((s) => s.name === "predict sum:1")));
  const root = one(exporter.getFinishedSpans(), "clipper.v1.Predict/Predict");
  t.is(parentOf(root), undefined);
  t.is(one(exporter.getFinishedSpans(), "predict sum:1").spanContext().traceId, root.spanContext().traceId);
});

test.serial("Clipper REST continues the traceparent header too", async (t) => {
  const tp = traceparent();
  const res = await fetch(`http://127.0.0.1:${gateway.httpPort}/t-app/predict`, {
    method: "POST",
    headers: { traceparent: tp.header },
    body: JSON.stringify({ input: [5, 6] }),
  });
  t.is(res.status, 200);
  t.true(await eventually(() => spansOf(tp.traceId).some((s) => s.name === "predict sum:1")));
  const server = one(spansOf(tp.traceId), "POST /{app}/predict");
  t.is(server.kind, SpanKind.SERVER);
  t.is(parentOf(server), tp.parentId);
  t.is(server.attributes["clipper.transport"], "clipper-rest");
  t.is(parentOf(one(spansOf(tp.traceId), "batch sum:1")), server.spanContext().spanId);
});

test.serial("OIP ModelInfer (gRPC and REST) is one SERVER span continuing traceparent, with each row's queue wait under it", async (t) => {
  const { credentials, Metadata } = await import("@grpc/grpc-js");
  const { GRPCInferenceServiceClient, ModelInferRequest } = await import("../../gen/inference/open_inference.js");
  const client = new GRPCInferenceServiceClient(`127.0.0.1:${gateway.grpcPort}`, credentials.createInsecure());
  t.teardown(() => client.close());
  const grpcTp = traceparent();
  const md = new Metadata();
  md.set("traceparent", grpcTp.header);
  const request = ModelInferRequest.fromPartial({ modelName: "t-app", inputs: [{ name: "x", datatype: "FP64", shape: [2, 1], contents: { fp64Contents: [300, 301] } }] });
  const outputs = await new Promise<string[]>((resolve, reject) =>
    client.modelInfer(request, md, (err, res) => (err === null ? resolve(res.outputs[0]!.contents!.bytesContents.map(String)) : reject(err))),
  );
  t.deepEqual(outputs, ["300", "301"]);
  const restTp = traceparent();
  const rest = await fetch(`http://127.0.0.1:${gateway.httpPort}/v2/models/t-app/infer`, {
    method: "POST",
    headers: { traceparent: restTp.header },
    body: JSON.stringify({ inputs: [{ name: "x", shape: [1], datatype: "FP64", data: [302] }] }),
  });
  t.is(rest.status, 200);
  for (const [tp, transport] of [[grpcTp, "grpc"], [restTp, "http"]] as const) {
    t.true(await eventually(() => spansOf(tp.traceId).some((s) => s.name === "predict sum:1")), transport);
    const spans = spansOf(tp.traceId);
    const server = one(spans, "inference.GRPCInferenceService/ModelInfer");
    t.is(server.kind, SpanKind.SERVER);
    t.is(parentOf(server), tp.parentId);
    t.is(server.attributes["clipper.transport"], transport);
    const waits = spans.filter((s) => s.name === "queue wait");
    t.is(waits.length, transport === "grpc" ? 2 : 1, "one queue wait per row");
    for (const w of waits) t.is(parentOf(w), server.spanContext().spanId);
  }
});

test.serial("a log line written inside a call carries its trace id; a lifecycle line outside one does not", async (t) => {
  const lines: string[] = [];
  const log = createLogger("clipper-test", "info", { write: (line: string) => void lines.push(line) });
  const calls = new CallInstrument(createRpcMetrics(new Registry()), log);
  const tp = traceparent();
  const ctx = { transport: "grpc" as const, deadline: NO_DEADLINE, signal: new AbortController().signal, metadata: new Map([["traceparent", tp.header]]), peer: "", onCancel: () => () => {} };
  await t.throwsAsync(calls.run(calls.method("clipper.v1.Test/Fail", {}), ctx, async () => {
    throw new Error("bug");
  }));
  log.info("lifecycle event");
  const [inside, outside] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  t.like(inside, { msg: "internal error in call", trace_id: tp.traceId, service: "clipper-test" });
  t.is(inside?.span_id, one(spansOf(tp.traceId), "clipper.v1.Test/Fail").spanContext().spanId);
  t.is(outside?.msg, "lifecycle event");
  t.false("trace_id" in (outside ?? {}));
});
