import test from "ava";
import { status } from "@grpc/grpc-js";
import { PredictBatchRequest, PredictRequest } from "../../gen/clipper/v1/predict.js";
import { call } from "../helpers/grpc.js";
import { eventually } from "../helpers/processes.js";
import { dumpRedis } from "../helpers/redis-dump.js";
import { Stack } from "../helpers/stack.js";

let stack: Stack;

test.before(async () => {
  stack = await Stack.start();
  await stack.deploy("d-app", "describe-d", "1", "doubles");
  await stack.deploy("f-app", "describe-f", "1", "floats");
  await stack.deploy("i-app", "describe-i", "1", "ints");
  await stack.deploy("b-app", "describe-b", "1", "bytes");
  await stack.deploy("s-app", "describe-s", "1", "strings");
  await Promise.all([
    stack.worker("describe-d", "1", "doubles", "test/fixtures/models/describe.js"),
    stack.worker("describe-f", "1", "floats", "test/fixtures/models/describe.js"),
    stack.worker("describe-i", "1", "ints", "test/fixtures/models/describe.js"),
    stack.worker("describe-b", "1", "bytes", "test/fixtures/models/describe.js"),
    stack.worker("describe-s", "1", "strings", "test/fixtures/models/describe.js"),
  ]);
});

test.after.always(async () => {
  await stack?.close();
});

// fromPartial fills unset fields, as a typed client would.
const grpcPredict = (req: object, deadlineMs?: number) => call<unknown, any>(stack.predict, "predict", PredictRequest.fromPartial(req), { deadlineMs });

test.serial("every input type over gRPC, transcoded HTTP and Clipper REST", async (t) => {
  const cases: [string, Record<string, unknown>, unknown, string][] = [
    ["d-app", { doubles: [1.5, 2, 3] }, [1.5, 2, 3], "Float64Array:1.5,2,3"],
    ["f-app", { floats: [0.5, 2] }, [0.5, 2.0], "Float32Array:0.5,2"],
    ["i-app", { ints: [1, -2, 3] }, [1, -2, 3], "Int32Array:1,-2,3"],
    ["b-app", { bytes: Buffer.from("hi").toString("base64") }, Buffer.from("hi").toString("base64"), "bytes:6869"],
    ["s-app", { text: "héllo" }, "héllo", "text:héllo"],
  ];
  for (const [app, input, clipperInput, expected] of cases) {
    const grpcInput = "bytes" in input ? { bytes: Buffer.from(input.bytes as string, "base64") } : input;
    const g = await grpcPredict({ app, input: grpcInput });
    t.true(g.ok, `${app} gRPC`);
    if (g.ok) {
      t.is(g.value.output, expected);
      t.false(g.value.default);
      t.is(g.value.model, `describe-${app[0]}`);
      t.is(g.value.modelVersion, "1");
    }
    const h = await stack.http(`/v1/apps/${app}:predict`, { input });
    t.is(h.status, 200, `${app} HTTP ${JSON.stringify(h.json)}`);
    t.is(h.json.output, expected);
    t.is(typeof h.json.queryId, "string");
    t.false(h.json.default);
    const c = await stack.http(`/${app}/predict`, { input: clipperInput });
    t.is(c.status, 200, `${app} Clipper ${JSON.stringify(c.json)}`);
    t.deepEqual(Object.keys(c.json), ["query_id", "output", "default"]);
    t.is(c.json.output, expected);
    t.is(typeof c.json.query_id, "number");
  }
});

test.serial("PredictBatch and Clipper input_batch answer every input in order", async (t) => {
  const g = await call<unknown, any>(stack.predict, "predictBatch", PredictBatchRequest.fromPartial({ app: "d-app", inputs: [{ doubles: [1] }, { doubles: [2] }, { doubles: [3] }] }));
  t.true(g.ok);
  if (g.ok) t.deepEqual(g.value.predictions.map((p: any) => p.output), ["Float64Array:1", "Float64Array:2", "Float64Array:3"]);
  const h = await stack.http("/v1/apps/i-app:predictBatch", { inputs: [{ ints: [7] }, { ints: [8] }] });
  t.deepEqual(h.json.predictions.map((p: any) => p.output), ["Int32Array:7", "Int32Array:8"]);
  const c = await stack.http("/s-app/predict", { input_batch: ["a", "b"] });
  t.deepEqual(c.json.batch_predictions.map((p: any) => p.output), ["text:a", "text:b"]);
  const one = await stack.http("/s-app/predict/", { input_batch: ["only"] });
  t.is(one.json.output, "text:only");
});

test.serial("Clipper REST parses JSON outputs and keeps other outputs as strings", async (t) => {
  await stack.deploy("sum-app", "summer", "1", "doubles");
  await stack.worker("summer", "1", "doubles", "test/fixtures/models/sum.js");
  const c = await stack.http("/sum-app/predict", { input: [1, 2, 3.5] });
  t.is(c.json.output, 6.5);
  const s = await stack.http("/s-app/predict", { input: "x" });
  t.is(s.json.output, "text:x");
});

test.serial("bad inputs get INVALID_ARGUMENT / 400 naming the fix", async (t) => {
  const cases: object[] = [
    { app: "d-app", input: { ints: [1] } },
    { app: "d-app", input: {} },
    { app: "d-app" },
    { app: "d-app", input: { doubles: [1], text: "x" } },
  ];
  for (const req of cases) {
    const r = await grpcPredict(req);
    t.false(r.ok);
    if (!r.ok) t.is(r.error.code, status.INVALID_ARGUMENT, JSON.stringify(req));
  }
  const wrong = await grpcPredict({ app: "d-app", input: { ints: [1] } });
  if (!wrong.ok) t.is(wrong.error.details, "the app takes doubles input, but the request set input.ints; send input.doubles instead");
  t.is((await stack.http("/v1/apps/d-app:predict", { input: { text: "x" } })).status, 400);
  t.is((await stack.http("/v1/apps/d-app:predict", { input: { doubles: [1] }, bogus: 1 })).status, 400);
  const c1 = await stack.http("/d-app/predict", { input: ["x"] });
  t.is(c1.status, 400);
  t.is(c1.json.error, "Json error");
  const c2 = await stack.http("/d-app/predict", { nothing: 1 });
  t.is(c2.json.cause, "Error parsing JSON: JSON object does not have required keys input or input_batch");
  t.is((await stack.http("/d-app/predict", { input: [] })).status, 400);
  t.is((await stack.http("/s-app/predict", { input: ["a"] })).status, 400);
  t.is((await stack.http("/i-app/predict", { input: [1.5] })).status, 400);
  const unknown = await grpcPredict({ app: "nope", input: { doubles: [1] } });
  if (!unknown.ok) t.is(unknown.error.code, status.NOT_FOUND);
  t.is((await stack.http("/nope/predict", { input: [1.0] })).status, 404);
  const badVersion = await stack.http("/d-app/predict", { input: [1.0], version: "9" });
  t.is(badVersion.status, 400);
  t.deepEqual(badVersion.json, { error: "Query processing error", cause: "Requested version: 9 does not exist for model: describe-d" });
});

test.serial("workers appear in ListWorkers and in Redis DB 3 with Clipper's fields", async (t) => {
  const r = await call<unknown, any>(stack.heartbeat, "listWorkers", { modelName: "describe-d" });
  t.true(r.ok);
  if (r.ok) {
    t.is(r.value.workers.length, 1);
    t.like(r.value.workers[0], { modelName: "describe-d", modelVersion: "1", replicaId: 0, dialect: 2, inputType: "doubles" });
  }
  const dump = await dumpRedis(stack.redis.url);
  t.like(dump["3/describe-d,1,0"] as object, { model_id: "describe-d:1", model_name: "describe-d", model_version: "1", model_replica_id: "0", batch_size: "1", input_type: "doubles" });
  // Clipper's seven fields, and the three clipper-ts adds: owning gateway, its run, the worker's instance id.
  t.deepEqual(Object.keys(dump["3/describe-d,1,0"] as object).sort(), [
    "batch_size", "clipper_ts_gateway", "clipper_ts_gateway_run", "clipper_ts_worker", "input_type", "model_id", "model_name", "model_replica_id", "model_version", "zmq_connection_id",
  ]);
});

test.serial("no connected replica answers the default at once; SLO miss answers the default flagged", async (t) => {
  await stack.deploy("empty-app", "nobody", "1", "doubles", { defaultOutput: "fallback" });
  const c = await stack.http("/empty-app/predict", { input: [1.0] });
  t.deepEqual({ ...c.json, query_id: 0 }, { query_id: 0, output: "fallback", default: true, default_explanation: "No connected models found for query" });
  await stack.deploy("slow-app", "slowpoke", "1", "doubles", { sloMicros: 200_000, defaultOutput: "{\"late\":true}" });
  await stack.worker("slowpoke", "1", "doubles", "test/fixtures/models/slow.js");
  const g = await grpcPredict({ app: "slow-app", input: { doubles: [1] } });
  t.true(g.ok);
  if (g.ok) {
    t.true(g.value.default);
    t.is(g.value.defaultExplanation, "Failed to retrieve a prediction response within the specified latency SLO");
    t.is(g.value.output, "{\"late\":true}");
  }
  const s = await stack.http("/slow-app/predict", { input: [2.0] });
  t.deepEqual(s.json.output, { late: true });
  t.true(s.json.default);
  // The caller's own deadline, shorter than the SLO, is DEADLINE_EXCEEDED / 504 instead.
  const d = await grpcPredict({ app: "slow-app", input: { doubles: [3] } }, 50);
  t.false(d.ok);
  if (!d.ok) t.is(d.error.code, status.DEADLINE_EXCEEDED);
  t.is((await stack.http("/v1/apps/slow-app:predict", { input: { doubles: [4] } }, { "grpc-timeout": "50m" })).status, 504);
});

test.serial("version pinning, a new version taking over, and rollback", async (t) => {
  await stack.deploy("v-app", "vm", "1", "strings");
  await stack.worker("vm", "1", "strings", "test/fixtures/models/describe.js");
  const out = async (version?: string) => (await grpcPredict({ app: "v-app", input: { text: "q" }, version: version ?? "" }));
  let r = await out();
  t.like(r, { ok: true, value: { modelVersion: "1" } });
  await stack.admin("add_model", { model_name: "vm", model_version: "2", labels: [], input_type: "strings", container_name: "", model_data_path: "", batch_size: -1 });
  await stack.worker("vm", "2", "strings", "test/fixtures/models/describe.js");
  t.true(await eventually(async () => {
    const x = await out();
    return x.ok && x.value.modelVersion === "2" && !x.value.default;
  }));
  r = await out("1");
  t.like(r, { ok: true, value: { modelVersion: "1", default: false } });
  await stack.admin("set_model_version", { model_name: "vm", model_version: "1" });
  t.true(await eventually(async () => {
    const x = await out();
    return x.ok && x.value.modelVersion === "1";
  }));
});

test.serial("unlinking and deleting an app stop serving without a restart", async (t) => {
  await stack.deploy("gone-app", "gm", "1", "strings", { defaultOutput: "dflt" });
  await stack.worker("gm", "1", "strings", "test/fixtures/models/describe.js");
  t.true(await eventually(async () => (await stack.http("/gone-app/predict", { input: "x" })).json.output === "text:x"));
  await stack.admin("delete_model_links", { app_name: "gone-app", model_names: ["gm"] });
  t.true(await eventually(async () => {
    const r = await stack.http("/gone-app/predict", { input: "x" });
    return r.json.default === true && r.json.default_explanation === "No connected models found for query";
  }));
  await stack.admin("delete_app", { name: "gone-app" });
  t.true(await eventually(async () => (await stack.http("/gone-app/predict", { input: "x" })).status === 404));
  const g = await grpcPredict({ app: "gone-app", input: { text: "x" } });
  t.false(g.ok);
});
