import test from "ava";
import { WORKER_PORTS_LINE } from "../../core/ports-line.js";
import { PredictRequest } from "../../gen/clipper/v1/predict.js";
import { call } from "../helpers/grpc.js";
import { eventually, type Proc } from "../helpers/processes.js";
import { Scrape } from "../helpers/prometheus.js";
import { Stack } from "../helpers/stack.js";

/** Calls to the app with a live model, and to the apps without one. */
const N = 5;
const M = 3;
const BARE = 2;

let stack: Stack;
let worker: Proc;
let workerMetricsPort: number;

test.before(async () => {
  // Lifecycle lines at info, to check that traffic adds none.
  stack = await Stack.start(["--log-level", "info"]);
  await stack.deploy("m-app", "summer", "1", "doubles");
  // Linked to a registered model version no worker serves.
  await stack.deploy("idle-app", "nobody", "1", "doubles");
  // No linked model at all.
  await stack.admin("add_app", { name: "bare-app", input_type: "doubles", default_output: "none", latency_slo_micros: 100_000 });
  worker = await stack.worker("summer", "1", "doubles", "test/fixtures/models/metered.js", ["--metrics-port", "0"]);
  workerMetricsPort = WORKER_PORTS_LINE.read(await worker.waitFor(WORKER_PORTS_LINE.pattern)).metrics.port;
});

test.after.always(async () => {
  await stack?.close();
});

const predict = (app: string, doubles: number[]) => call<unknown, any>(stack.predict, "predict", PredictRequest.fromPartial({ app, input: { doubles } }));
const gatewayMetrics = () => Scrape.of(`http://127.0.0.1:${stack.gateway.http}/metrics`);

test.serial("after N model calls and M calls without a live model, /metrics counts N ok, M defaults, and the batches", async (t) => {
  const logBefore = stack.gateway.proc.output;
  for (let i = 0; i < N; i++) {
    // Distinct inputs, so no call is a cache hit; an odd length for the model's own histogram label.
    const r = await predict("m-app", [i, 1, 2]);
    t.like(r, { ok: true, value: { default: false } });
  }
  for (let i = 0; i < M; i++) {
    const r = await predict("idle-app", [i]);
    t.like(r, { ok: true, value: { default: true } });
  }
  for (let i = 0; i < BARE; i++) {
    const r = await predict("bare-app", [i]);
    t.like(r, { ok: true, value: { default: true } });
  }
  // Nothing per request at the default level.
  t.is(stack.gateway.proc.output, logBefore);

  const s = await gatewayMetrics();
  t.is(s.value("clipper_predictions_total", { app: "m-app", model: "summer", version: "1", outcome: "ok" }), N);
  t.is(s.value("clipper_predictions_total", { app: "idle-app", model: "nobody", version: "1", outcome: "default" }), M);
  t.is(s.value("clipper_predictions_total", { app: "bare-app", model: "", version: "", outcome: "default" }), BARE);
  t.is(s.all("clipper_predictions_total", { outcome: "error" }).length, 0);
  t.is(s.value("clipper_default_outputs_total", { app: "idle-app", reason: "no_replica" }), M);
  t.is(s.value("clipper_default_outputs_total", { app: "bare-app", reason: "no_model" }), BARE);
  t.is(s.value("clipper_default_outputs_total", { app: "m-app" }), undefined);
  t.is(s.value("clipper_prediction_duration_seconds_count", { app: "m-app" }), N);
  t.is(s.value("clipper_prediction_duration_seconds_count", { app: "idle-app" }), M);
  // The one histogram's buckets run from 100 µs to 10 s.
  t.is(s.value("clipper_prediction_duration_seconds_bucket", { app: "m-app", le: "+Inf" }), N);
  t.not(s.value("clipper_prediction_duration_seconds_bucket", { app: "m-app", le: "0.0001" }), undefined);
  t.not(s.value("clipper_prediction_duration_seconds_bucket", { app: "m-app", le: "10" }), undefined);
  // Every query with a model version looked in the cache; bare-app has none to look under.
  t.is(s.value("clipper_cache_lookups_total", { result: "miss" }), N + M);
  t.is(s.value("clipper_cache_lookups_total", { result: "hit" }), undefined);
  t.is(s.value("clipper_queue_wait_seconds_count", { model: "summer", version: "1" }), N);
  // However the batcher grouped them, the batches carried exactly the N queries.
  const replica = { model: "summer", version: "1", replica: "0" };
  const batches = s.value("clipper_batch_size_count", replica)!;
  t.is(s.value("clipper_batch_size_sum", replica), N);
  t.true(batches >= 1, `batches ${batches}`);
  t.true(batches <= N, `batches ${batches}`);
  t.is(s.value("clipper_batch_size_bucket", { ...replica, le: "+Inf" }), batches);
  t.is(s.value("clipper_batch_duration_seconds_count", replica), batches);
  t.is(s.value("clipper_queue_depth", { model: "summer", version: "1" }), 0);
  t.is(s.value("clipper_live_replicas", { model: "summer", version: "1" }), 1);
  t.is(s.value("clipper_ready"), 1);
  t.is(s.value("clipper_rpc_calls_total", { method: "clipper.v1.Predict/Predict", transport: "grpc", code: "OK" }), N + M + BARE);
  t.is(s.value("clipper_rpc_duration_seconds_count", { method: "clipper.v1.Predict/Predict", transport: "grpc" }), N + M + BARE);
  // Node's default metrics, with the process's service label.
  t.not(s.value("process_cpu_user_seconds_total", { service: "clipper-gateway" }), undefined);
  t.true(s.all("nodejs_eventloop_lag_seconds").length > 0);
  t.false(/^# TYPE \S+ summary$/m.test(s.text), "no summaries");

  // The same query again is a cache hit, counted as ok.
  t.true((await predict("m-app", [0, 1, 2])).ok);
  const after = await gatewayMetrics();
  t.is(after.value("clipper_cache_lookups_total", { result: "hit" }), 1);
  t.is(after.value("clipper_predictions_total", { app: "m-app", model: "summer", version: "1", outcome: "ok" }), N + 1);
  t.is(after.value("clipper_queue_wait_seconds_count", { model: "summer", version: "1" }), N);
});

test.serial("transcoded HTTP and Clipper REST calls are counted by method and transport", async (t) => {
  const h = await stack.http("/v1/apps/m-app:predict", { input: { doubles: [10, 20] } });
  t.is(h.status, 200);
  const c = await stack.http("/m-app/predict", { input: [10, 21] });
  t.is(c.status, 200);
  const bad = await stack.http("/m-app/predict", { input: ["x"] });
  t.is(bad.status, 400);
  const unknown = await stack.http("/v1/apps/nope:predict", { input: { doubles: [1] } });
  t.is(unknown.status, 404);
  const s = await gatewayMetrics();
  t.is(s.value("clipper_rpc_calls_total", { method: "clipper.v1.Predict/Predict", transport: "http", code: "OK" }), 1);
  t.is(s.value("clipper_rpc_calls_total", { method: "clipper.v1.Predict/Predict", transport: "http", code: "NOT_FOUND" }), 1);
  t.is(s.value("clipper_rpc_calls_total", { method: "POST /{app}/predict", transport: "clipper-rest", code: "OK" }), 1);
  t.is(s.value("clipper_rpc_calls_total", { method: "POST /{app}/predict", transport: "clipper-rest", code: "INVALID_ARGUMENT" }), 1);
  // Unknown apps are never a label value.
  t.is(s.all("clipper_predictions_total", { app: "nope" }).length, 0);
});

test.serial("the worker's metrics port serves its own counts and the model's custom metrics", async (t) => {
  const s = await Scrape.of(`http://127.0.0.1:${workerMetricsPort}/metrics`);
  const g = await gatewayMetrics();
  const batches = g.value("clipper_batch_size_count", { model: "summer", version: "1", replica: "0" })!;
  const items = g.value("clipper_batch_size_sum", { model: "summer", version: "1", replica: "0" })!;
  const own = { service: "clipper-worker", model: "summer", version: "1" };
  t.is(s.value("clipper_worker_items_total", { ...own, outcome: "ok" }), items);
  t.is(s.value("clipper_worker_predict_duration_seconds_count", own), batches);
  t.is(s.value("clipper_worker_model_errors_total", own), 0);
  // The model's own metrics, defined in its setup export.
  t.is(s.value("clipper_model_calls_total", own), batches);
  t.is(s.value("clipper_model_items_seen", own), items);
  t.is(s.value("clipper_model_input_length_count", { ...own, parity: "odd" }), N);
  t.is(s.value("clipper_model_input_length_count", { ...own, parity: "even" }), items - N);
  t.not(s.value("clipper_model_last_batch_size", own), undefined);
  t.not(s.value("process_resident_memory_bytes", own), undefined);
  const ready = await fetch(`http://127.0.0.1:${workerMetricsPort}/readyz`);
  t.is(ready.status, 200);
});

test.serial("Admin reports per-app readiness from the replicas gateways record", async (t) => {
  const get = async (name: string) => (await (await fetch(`http://127.0.0.1:${stack.management.httpPort}/v1/apps/${name}`)).json()) as any;
  t.like((await get("m-app")).app, { ready: true, liveReplicas: 1 });
  t.like((await get("idle-app")).app, { ready: false, liveReplicas: 0 });
  t.like((await get("bare-app")).app, { ready: false, liveReplicas: 0 });
  const list = (await (await fetch(`http://127.0.0.1:${stack.management.httpPort}/v1/apps`)).json()) as any;
  t.deepEqual(list.apps.map((a: any) => [a.name, a.ready, a.liveReplicas]), [["bare-app", false, 0], ["idle-app", false, 0], ["m-app", true, 1]]);
  // Management's /metrics counts the Admin calls by method and code.
  t.is((await fetch(`http://127.0.0.1:${stack.management.httpPort}/v1/apps/nope`)).status, 404);
  const s = await Scrape.of(`http://127.0.0.1:${stack.management.httpPort}/metrics`);
  t.is(s.value("clipper_rpc_calls_total", { method: "clipper.v1.Admin/GetApp", transport: "http", code: "OK" }), 3);
  t.is(s.value("clipper_rpc_calls_total", { method: "clipper.v1.Admin/GetApp", transport: "http", code: "NOT_FOUND" }), 1);
  t.is(s.value("clipper_rpc_calls_total", { method: "clipper.v1.Admin/ListApps", transport: "http", code: "OK" }), 1);
  // Clipper's /admin/* REST (the stack deployed through it) is counted too.
  t.is(s.value("clipper_rpc_calls_total", { method: "POST /admin/add_app", transport: "clipper-rest", code: "OK" }), 3);
  t.is(s.value("clipper_rpc_calls_total", { method: "POST /admin/add_model_links", transport: "clipper-rest", code: "OK" }), 2);

  // The worker leaves: the app is no longer ready.
  await worker.stop("SIGTERM");
  t.true(await eventually(async () => (await get("m-app")).app.ready === false));
  t.true(await eventually(async () => (await gatewayMetrics()).value("clipper_live_replicas", { model: "summer", version: "1" }) === undefined));
});

test.serial("a killed worker is counted as missed heartbeats, then one eviction; its series go with it", async (t) => {
  await stack.deploy("v-app", "victim", "1", "doubles");
  const victim = await stack.worker("victim", "1", "doubles", "test/fixtures/models/sum.js");
  t.true((await predict("v-app", [1, 2])).ok);
  const replica = { model: "victim", version: "1", replica: "0" };
  t.is((await gatewayMetrics()).value("clipper_batch_size_count", replica), 1);
  await victim.stop("SIGKILL");
  t.true(await eventually(async () => (await gatewayMetrics()).value("clipper_replica_evictions_total", { model: "victim", version: "1" }) === 1));
  const s = await gatewayMetrics();
  t.true(s.value("clipper_missed_heartbeats_total", { model: "victim", version: "1" })! >= 1);
  t.is(s.value("clipper_live_replicas", { model: "victim", version: "1" }), undefined);
  t.is(s.value("clipper_batch_size_count", replica), undefined);
});
