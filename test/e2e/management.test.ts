import test from "ava";
import { credentials, status } from "@grpc/grpc-js";
import { pino } from "pino";
import type { Redis } from "ioredis";
import { AdminClient } from "../../gen/clipper/v1/admin.js";
import { startManagement, type Management } from "../../management/management.js";
import { TestRedis } from "../helpers/redis-server.js";
import { dumpRedis, redisDb } from "../helpers/redis-dump.js";
import { call } from "../helpers/grpc.js";
import { untilReady } from "../helpers/processes.js";

let redis: TestRedis;
let mgmt: Management;
let admin: AdminClient;
let db0: Redis;
let base: string;

const APP = { name: "a1", input_type: "doubles", default_output: "-1.0", latency_slo_micros: 100000 };
const MODEL = {
  model_name: "sum-model",
  model_version: "1",
  labels: ["a", "b"],
  input_type: "doubles",
  container_name: "default-cluster-sum-model:1",
  model_data_path: "DEPRECATED",
  batch_size: -1,
};

test.before(async () => {
  redis = await TestRedis.start();
  mgmt = await startManagement({ redisUrl: redis.url, host: "127.0.0.1", grpcPort: 0, httpPort: 0 }, pino({ level: "silent" }));
  await untilReady(mgmt.httpPort);
  admin = new AdminClient(`127.0.0.1:${mgmt.grpcPort}`, credentials.createInsecure());
  db0 = await redisDb(redis.url, 0);
  base = `http://127.0.0.1:${mgmt.httpPort}`;
});

test.after.always(async () => {
  admin?.close();
  db0?.disconnect();
  await mgmt?.close(0);
  await redis?.destroy();
});

test.beforeEach(async () => {
  await db0.flushall();
});

/** As Clipper's Python client posts: a JSON body sent as application/json. */
async function post(path: string, body: unknown): Promise<{ status: number; text: string; type: string | null }> {
  const res = await fetch(`${base}${path}`, { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body), headers: { "content-type": "application/json" } });
  return { status: res.status, text: await res.text(), type: res.headers.get("content-type") };
}

async function http(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${base}${path}`, { method, body: body === undefined ? undefined : JSON.stringify(body), headers: { "content-type": "application/json" } });
  const text = await res.text();
  return { status: res.status, json: text === "" ? null : JSON.parse(text) };
}

// ------------------------------------------------------------------ Clipper REST

test.serial("add_app writes exactly Clipper's DB 5 hash and the DB 1 state", async (t) => {
  const r = await post("/admin/add_app", APP);
  t.is(r.status, 200);
  t.is(r.text, "Successfully added application with name 'a1'");
  t.is(r.type, "application/json");
  t.deepEqual(await dumpRedis(redis.url), {
    "1/a1:0:0": '{"y_hat":"-1.0"}',
    "5/a1": { input_type: "doubles", policy: "DefaultOutputSelectionPolicy", default_output: "-1.0", latency_slo_micros: "100000" },
  });
});

test.serial("the same app over gRPC, transcoded HTTP and /admin/add_app leaves identical Redis contents", async (t) => {
  await post("/admin/add_app", APP);
  const viaRest = await dumpRedis(redis.url);
  await db0.flushall();
  const g = await call(admin, "createApp", { name: "a1", inputType: "doubles", defaultOutput: "-1.0", latencySloMicros: 100000 });
  t.true(g.ok);
  const viaGrpc = await dumpRedis(redis.url);
  await db0.flushall();
  const h = await http("POST", "/v1/apps", { name: "a1", inputType: "doubles", defaultOutput: "-1.0", latencySloMicros: 100000 });
  t.is(h.status, 200);
  t.deepEqual(h.json.app, { name: "a1", inputType: "doubles", defaultOutput: "-1.0", latencySloMicros: 100000, linkedModels: [], policy: "DefaultOutputSelectionPolicy", ready: false, liveReplicas: 0 });
  const viaHttp = await dumpRedis(redis.url);
  t.deepEqual(viaGrpc, viaRest);
  t.deepEqual(viaHttp, viaRest);
  t.is(Object.keys(viaRest).length, 2);
});

test.serial("add_model writes the nine DB 2 fields and makes the version current", async (t) => {
  const r = await post("/admin/add_model", MODEL);
  t.is(r.status, 200);
  t.is(r.text, "Successfully added model with name 'sum-model' and input type 'doubles'");
  t.deepEqual(await dumpRedis(redis.url), {
    "2/sum-model:1": {
      model_name: "sum-model",
      model_version: "1",
      load: "0.000000",
      input_type: "doubles",
      labels: "a,b",
      container_name: "default-cluster-sum-model:1",
      model_data_path: "DEPRECATED",
      batch_size: "-1",
      valid: "",
    },
    "6/CURRENT_MODEL_VERSION:sum-model": "1",
  });
  const ints = await post("/admin/add_model", { ...MODEL, model_name: "im", input_type: "ints", labels: [], batch_size: 8 });
  t.is(ints.text, "Successfully added model with name 'im' and input type 'integers'");
  const db2 = await redisDb(redis.url, 2);
  const h = await db2.hgetall("im:1");
  db2.disconnect();
  t.is(h.input_type, "integers");
  t.is(h.labels, "");
  t.is(h.batch_size, "8");
});

test.serial("links, versions and reads over Clipper REST", async (t) => {
  await post("/admin/add_app", APP);
  await post("/admin/add_model", MODEL);
  t.is((await post("/admin/add_model_links", { app_name: "a1", model_names: ["sum-model"] })).text, "Successfully linked model with name 'sum-model' to application 'a1'");
  t.deepEqual(await dumpRedis(redis.url).then((d) => d["7/a1"]), ["sum-model"]);
  t.is((await post("/admin/get_linked_models", { app_name: "a1" })).text, '["sum-model"]');
  t.is((await post("/admin/get_all_applications", { verbose: false })).text, '["a1"]');
  t.is(
    (await post("/admin/get_all_applications", { verbose: true })).text,
    '[{"input_type":"doubles","default_output":"-1.0","latency_slo_micros":100000,"name":"a1","linked_models":["sum-model"]}]',
  );
  t.is(
    (await post("/admin/get_application", { name: "a1" })).text,
    '{"input_type":"doubles","default_output":"-1.0","latency_slo_micros":100000,"name":"a1","linked_models":["sum-model"]}',
  );
  t.is((await post("/admin/get_application", { name: "nope" })).text, "{}");

  await post("/admin/add_model", { ...MODEL, model_version: "2", labels: [] });
  t.is((await post("/admin/get_all_models", { verbose: false })).text, '["sum-model:1","sum-model:2"]');
  const verbose = JSON.parse((await post("/admin/get_all_models", { verbose: true })).text);
  t.deepEqual(verbose[1], {
    model_name: "sum-model",
    model_version: "2",
    input_type: "doubles",
    labels: [""],
    container_name: "default-cluster-sum-model:1",
    model_data_path: "DEPRECATED",
    is_current_version: true,
  });
  t.false(verbose[0].is_current_version);
  t.is((await post("/admin/set_model_version", { model_name: "sum-model", model_version: "1" })).text, "Successfully set model with name 'sum-model' to version '1'");
  t.is((await dumpRedis(redis.url))["6/CURRENT_MODEL_VERSION:sum-model"], "1");
  t.is(JSON.parse((await post("/admin/get_model", { model_name: "sum-model", model_version: "1" })).text).is_current_version, true);
  t.is((await post("/admin/get_model", { model_name: "sum-model", model_version: "9" })).text, "{}");

  t.is(
    (await post("/admin/delete_versioned_model", { model_name: "sum-model", model_version: "2" })).text,
    "Successfully deleted model with name 'sum-model' and version '2'",
  );
  const after = (await dumpRedis(redis.url))["2/sum-model:2"] as Record<string, string>;
  t.false("valid" in after);
  t.is(Object.keys(after).length, 8);
  t.is((await dumpRedis(redis.url))["6/CURRENT_MODEL_VERSION:sum-model"], "1");

  t.is((await post("/admin/get_state", { app_name: "a1", uid: 0 })).text, "-1.0");
  t.is((await post("/admin/get_state", { app_name: "zz", uid: 0 })).text, "");
  t.is((await post("/admin/delete_model_links", { app_name: "a1", model_names: ["sum-model"] })).text, "Success!");
  t.is((await dumpRedis(redis.url))["7/a1"], undefined);
  const ping = await fetch(`${base}/admin/ping`);
  t.is(await ping.text(), "PONG");
});

test.serial("delete_app also removes the app's links and selection state", async (t) => {
  await post("/admin/add_app", APP);
  await post("/admin/add_model", MODEL);
  await post("/admin/add_model_links", { app_name: "a1", model_names: ["sum-model"] });
  const r = await post("/admin/delete_app", { name: "a1" });
  t.is(r.text, "Successfully deleted application with name 'a1'");
  const dump = await dumpRedis(redis.url);
  t.deepEqual(Object.keys(dump).sort(), ["2/sum-model:1", "6/CURRENT_MODEL_VERSION:sum-model"]);
});

test.serial("replicas written by a gateway are listed in Clipper's shapes", async (t) => {
  const db3 = await redisDb(redis.url, 3);
  await db3.hset("sum-model,1,0", {
    model_id: "sum-model:1", model_name: "sum-model", model_version: "1", model_replica_id: "0", zmq_connection_id: "4", batch_size: "1", input_type: "doubles",
  });
  db3.disconnect();
  t.is((await post("/admin/get_all_containers", { verbose: false })).text, '["sum-model:1:0"]');
  t.is(
    (await post("/admin/get_all_containers", { verbose: true })).text,
    '[{"model_id":"sum-model:1","model_name":"sum-model","model_version":"1","model_replica_id":0,"input_type":"doubles"}]',
  );
  t.is(
    (await post("/admin/get_container", { model_name: "sum-model", model_version: "1", replica_id: 0 })).text,
    '{"model_id":"sum-model:1","model_name":"sum-model","model_version":"1","model_replica_id":0,"input_type":"doubles"}',
  );
  t.is((await post("/admin/get_container", { model_name: "sum-model", model_version: "1", replica_id: 1 })).text, "{}");
  const g = await call<unknown, any>(admin, "listReplicas", { modelName: "sum-model", modelVersion: "" });
  t.true(g.ok);
  if (g.ok) t.deepEqual(g.value.replicas, [{ modelId: "sum-model:1", modelName: "sum-model", modelVersion: "1", replicaId: 0, inputType: "doubles", zmqConnectionId: 4, gatewayId: "", workerId: "" }]);
  const h = await http("GET", "/v1/models/sum-model/versions/1/replicas/0");
  t.is(h.status, 200);
  t.is(h.json.replica.zmqConnectionId, 4);
  t.is((await http("GET", "/v1/models/sum-model/versions/1/replicas/7")).status, 404);
});

test.serial("Clipper REST refuses bad requests with Clipper's 400 texts", async (t) => {
  await post("/admin/add_app", APP);
  await post("/admin/add_model", MODEL);
  const cases: [string, unknown, string][] = [
    ["/admin/add_app", APP, "application 'a1' already exists"],
    ["/admin/add_app", { name: "a1" }, "Error parsing JSON: JSON object does not have required key: input_type. Expected JSON schema: "],
    ["/admin/add_app", { ...APP, name: "x", latency_slo_micros: "100" }, "Error parsing JSON: Type mismatch! JSON key latency_slo_micros expected type intbut found type String"],
    ["/admin/add_app", "{not json", "Error parsing JSON: JSON parse error: "],
    ["/admin/add_app", { ...APP, name: "x", input_type: "tensor" }, "'tensor' is not a valid input type"],
    ["/admin/delete_app", { name: "zz" }, "Application 'zz' does not exist"],
    ["/admin/add_model", { ...MODEL, batch_size: 0 }, "The batch size must be positive or DEFAULT_BATCH_SIZE, which is -1"],
    ["/admin/add_model", { ...MODEL, model_name: "a:b" }, "Invalid model name supplied: a:b. Contains one of: ',', ':'"],
    ["/admin/add_model", { ...MODEL, model_version: "1,2" }, "Invalid model version supplied: 1,2. Contains one of: ',', ':'"],
    ["/admin/add_model", { ...MODEL, labels: ["x:y"] }, "Invalid label supplied: x:y. Contains one of: ',', ':'"],
    ["/admin/add_model", MODEL, "model with name 'sum-model' and version '1' already exists"],
    ["/admin/add_model", { ...MODEL, labels: [1] }, "Error parsing JSON: Array input of type Number is not of type string"],
    ["/admin/add_model_links", { app_name: "zz", model_names: ["sum-model"] }, "No app with name 'zz' exists."],
    ["/admin/add_model_links", { app_name: "a1", model_names: ["nope"] }, "No model with name 'nope' exists."],
    ["/admin/add_model_links", { app_name: "a1", model_names: [] }, "Please provide the name of the model that you want to link to the application 'a1'"],
    ["/admin/add_model_links", { app_name: "a1", model_names: ["sum-model", "sum-model"] }, "Applications must be linked with at most one model. Attempted to add links to 2 models."],
    ["/admin/delete_model_links", { app_name: "zz", model_names: ["m"] }, "No app with name zz exists."],
    ["/admin/delete_model_links", { app_name: "a1", model_names: ["m"] }, "Cannot remove nonexistent link between app a1 and model m"],
    ["/admin/set_model_version", { model_name: "zz", model_version: "1" }, "Cannot set version for nonexistent model 'zz'"],
    ["/admin/set_model_version", { model_name: "sum-model", model_version: "9" }, "Cannot set non-existent version '9' for model with name 'sum-model'"],
    ["/admin/delete_versioned_model", { model_name: "sum-model", model_version: "9" }, "model with name 'sum-model' and version '9' does not exist"],
    ["/admin/get_linked_models", { app_name: "zz" }, "No application with name 'zz' exists."],
    ["/admin/get_all_models", { verbose: "yes" }, "Type mismatch! JSON key verbose expected type boolbut found type String"],
  ];
  for (const [path, body, expected] of cases) {
    const r = await post(path, body);
    t.is(r.status, 400, `${path} ${JSON.stringify(body)}`);
    t.true(r.text.includes(expected), `${path}: '${r.text}' should contain '${expected}'`);
  }
  // Incompatible input types, both ways.
  await post("/admin/add_app", { ...APP, name: "ints-app", input_type: "ints" });
  const mismatch = await post("/admin/add_model_links", { app_name: "ints-app", model_names: ["sum-model"] });
  t.is(mismatch.text, "Model with name 'sum-model' has incompatible input_type 'doubles'. Requested app to link to has input_type 'integers'.");
  await post("/admin/add_model_links", { app_name: "a1", model_names: ["sum-model"] });
  const newVersion = await post("/admin/add_model", { ...MODEL, model_version: "2", input_type: "floats" });
  t.is(
    newVersion.text,
    "Model with name 'sum-model' is already linked to app 'a1' using input type 'doubles'. The input type you provided for a new version of the model, 'floats', is not compatible.",
  );
  t.is((await post("/admin/add_model_links", { app_name: "a1", model_names: ["sum-model"] })).text, "The model with name 'sum-model' is already linked to 'a1'");
  await post("/admin/add_model", { ...MODEL, model_name: "other" });
  t.is((await post("/admin/add_model_links", { app_name: "a1", model_names: ["other"] })).text, "A model with name sum-model is already linked to 'a1'.");
  await post("/admin/delete_versioned_model", { model_name: "sum-model", model_version: "1" });
  t.is(
    (await post("/admin/delete_versioned_model", { model_name: "sum-model", model_version: "1" })).text,
    "model with name 'sum-model' and version '1' is already marked as 'invalid'",
  );
});

test.serial("unknown /admin routes get 404 and wrong methods 405 instead of no answer", async (t) => {
  const r = await post("/admin/no_such_thing", {});
  t.is(r.status, 404);
  t.is(JSON.parse(r.text).code, status.NOT_FOUND);
  const g = await fetch(`${base}/admin/add_app`);
  t.is(g.status, 405);
  t.is(g.headers.get("allow"), "POST");
});

// ------------------------------------------------------------------ gRPC + transcoded HTTP

test.serial("every Admin method over gRPC", async (t) => {
  const ok = async (method: string, req: unknown): Promise<any> => {
    const r = await call<unknown, any>(admin, method, req);
    if (!r.ok) t.fail(`${method}: ${r.error.message}`);
    return r.ok ? r.value : undefined;
  };
  t.deepEqual((await ok("createApp", { name: "g1", inputType: "d", defaultOutput: "0", latencySloMicros: 5000 })).app.inputType, "doubles");
  t.is((await ok("registerModel", { name: "m", version: "1", inputType: "double", labels: [], containerName: "", modelDataPath: "", batchSize: 0 })).model.batchSize, -1);
  t.deepEqual((await ok("getModel", { name: "m", version: "1" })).model, {
    name: "m", version: "1", inputType: "doubles", labels: [], containerName: "NO_CONTAINER", modelDataPath: "DEPRECATED", batchSize: -1, isCurrentVersion: true, valid: true, noCache: false, noCoalesce: false,
  });
  await ok("registerModel", { name: "m", version: "2", inputType: "doubles", labels: ["x"], containerName: "img", modelDataPath: "p", batchSize: 4 });
  t.deepEqual((await ok("listModels", { name: "m" })).models.map((m: any) => [m.version, m.isCurrentVersion]), [["1", false], ["2", true]]);
  t.deepEqual((await ok("linkModel", { app: "g1", model: "m" })).app.linkedModels, ["m"]);
  t.deepEqual((await ok("getApp", { name: "g1" })).app.linkedModels, ["m"]);
  t.deepEqual((await ok("listApps", {})).apps.map((a: any) => a.name), ["g1"]);
  t.is((await ok("setModelVersion", { name: "m", version: "1" })).model.version, "1");
  t.deepEqual(await ok("getSelectionState", { app: "g1" }), { state: '{"y_hat":"0"}', defaultOutput: "0" });
  await ok("deleteModelVersion", { name: "m", version: "2" });
  t.false((await ok("getModel", { name: "m", version: "2" })).model.valid);
  t.deepEqual((await ok("unlinkModel", { app: "g1", model: "m" })).app.linkedModels, []);
  t.deepEqual(await ok("listReplicas", {}), { replicas: [] });
  await ok("deleteApp", { name: "g1" });
  t.deepEqual(await ok("listApps", {}), { apps: [] });
});

test.serial("Admin errors carry the right gRPC codes", async (t) => {
  const code = async (method: string, req: unknown): Promise<number> => {
    const r = await call(admin, method, req);
    return r.ok ? 0 : r.error.code;
  };
  await call(admin, "createApp", { name: "g1", inputType: "ints", defaultOutput: "0", latencySloMicros: 5000 });
  await call(admin, "registerModel", { name: "m", version: "1", inputType: "doubles", labels: [], containerName: "", modelDataPath: "", batchSize: 0 });
  t.is(await code("createApp", { name: "g1", inputType: "ints", defaultOutput: "0", latencySloMicros: 5000 }), status.ALREADY_EXISTS);
  t.is(await code("createApp", { name: "g2", inputType: "tensor", defaultOutput: "0", latencySloMicros: 5000 }), status.INVALID_ARGUMENT);
  t.is(await code("createApp", { name: "g2", inputType: "ints", defaultOutput: "0", latencySloMicros: 0 }), status.INVALID_ARGUMENT);
  t.is(await code("createApp", { name: "", inputType: "ints", defaultOutput: "0", latencySloMicros: 5 }), status.INVALID_ARGUMENT);
  t.is(await code("createApp", { name: "a/b", inputType: "ints", defaultOutput: "0", latencySloMicros: 5 }), status.INVALID_ARGUMENT);
  t.is(await code("getApp", { name: "nope" }), status.NOT_FOUND);
  t.is(await code("deleteApp", { name: "nope" }), status.NOT_FOUND);
  t.is(await code("getModel", { name: "m", version: "9" }), status.NOT_FOUND);
  t.is(await code("registerModel", { name: "m", version: "1", inputType: "doubles", labels: [], containerName: "", modelDataPath: "", batchSize: 0 }), status.ALREADY_EXISTS);
  t.is(await code("registerModel", { name: "m", version: "3", inputType: "doubles", labels: [], containerName: "", modelDataPath: "", batchSize: -5 }), status.INVALID_ARGUMENT);
  t.is(await code("linkModel", { app: "g1", model: "m" }), status.FAILED_PRECONDITION);
  t.is(await code("linkModel", { app: "nope", model: "m" }), status.NOT_FOUND);
  t.is(await code("unlinkModel", { app: "g1", model: "m" }), status.NOT_FOUND);
  t.is(await code("setModelVersion", { name: "m", version: "9" }), status.NOT_FOUND);
  t.is(await code("deleteModelVersion", { name: "m", version: "9" }), status.NOT_FOUND);
  t.is(await code("getReplica", { modelName: "m", modelVersion: "1", replicaId: 0 }), status.NOT_FOUND);
  t.is(await code("getSelectionState", { app: "nope" }), status.NOT_FOUND);
  t.is(await code("setNumReplicas", { modelName: "m", modelVersion: "1", numReplicas: 2 }), status.FAILED_PRECONDITION);
  const r = await call(admin, "getApp", { name: "nope" });
  t.false(r.ok);
  if (!r.ok) t.is(r.error.details, "No application with name 'nope' exists.");
});

test.serial("every Admin route over transcoded HTTP, errors mapped to HTTP statuses", async (t) => {
  const created = await http("POST", "/v1/apps", { name: "h1", input_type: "strings", defaultOutput: "none", latencySloMicros: 20000 });
  t.is(created.status, 200);
  t.is(created.json.app.inputType, "strings");
  t.is((await http("POST", "/v1/apps", { name: "h1", inputType: "strings", defaultOutput: "none", latencySloMicros: 20000 })).status, 409);
  t.is((await http("POST", "/v1/apps", { name: "h2", inputType: "nope", defaultOutput: "", latencySloMicros: 1 })).status, 400);
  t.is((await http("GET", "/v1/apps/h1")).json.app.defaultOutput, "none");
  t.is((await http("GET", "/v1/apps")).json.apps.length, 1);
  const missing = await http("GET", "/v1/apps/zz");
  t.is(missing.status, 404);
  t.deepEqual(missing.json, { code: 5, message: "No application with name 'zz' exists.", details: [] });
  t.is((await http("POST", "/v1/models", { name: "tm", version: "v1", inputType: "str", labels: ["l"] })).json.model.inputType, "strings");
  t.is((await http("POST", "/v1/models", { name: "tm", version: "v2", inputType: "strings" })).status, 200);
  t.deepEqual((await http("GET", "/v1/models?name=tm")).json.models.map((m: any) => m.version), ["v1", "v2"]);
  t.is((await http("GET", "/v1/models")).json.models.length, 2);
  t.is((await http("GET", "/v1/models/tm/versions/v1")).json.model.isCurrentVersion, false);
  t.is((await http("POST", "/v1/models/tm:setVersion", { version: "v1" })).json.model.isCurrentVersion, true);
  t.deepEqual((await http("POST", "/v1/apps/h1/links/tm", {})).json.app.linkedModels, ["tm"]);
  t.is((await http("POST", "/v1/apps/h1/links/tm", {})).status, 409);
  t.is((await http("GET", "/v1/apps/h1/state")).json.state, '{"y_hat":"none"}');
  t.deepEqual((await http("DELETE", "/v1/apps/h1/links/tm")).json.app.linkedModels, []);
  t.is((await http("DELETE", "/v1/models/tm/versions/v2")).status, 200);
  t.is((await http("DELETE", "/v1/models/tm/versions/v2")).status, 400);
  t.deepEqual((await http("GET", "/v1/replicas")).json, { replicas: [] });
  t.is((await http("POST", "/v1/models/tm/versions/v1:setNumReplicas", { numReplicas: 1 })).status, 400);
  t.is((await http("DELETE", "/v1/apps/h1")).status, 200);
  t.is((await http("DELETE", "/v1/apps/h1")).status, 404);
  t.is((await http("GET", "/v1/nothing")).status, 404);
  t.is((await http("PUT", "/v1/apps")).status, 405);
});

test.serial("a malformed entry written by another tool is skipped in listings and reported on reads", async (t) => {
  await post("/admin/add_app", APP);
  const db5 = await redisDb(redis.url, 5);
  await db5.hset("broken", { x: "1" });
  db5.disconnect();
  t.deepEqual((await http("GET", "/v1/apps")).json.apps.map((a: any) => a.name), ["a1"]);
  t.is((await post("/admin/get_all_applications", { verbose: false })).text, '["a1"]');
  const r = await call(admin, "getApp", { name: "broken" });
  t.false(r.ok);
  if (!r.ok) {
    t.is(r.error.code, status.DATA_LOSS);
    t.regex(r.error.details, /invalid input_type/);
  }
});

test.serial("health, readiness and metrics endpoints", async (t) => {
  t.is((await fetch(`${base}/healthz`)).status, 200);
  t.is((await fetch(`${base}/readyz`)).status, 200);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  t.true(metrics.includes("process_cpu_user_seconds_total"));
});

// Runs last: it stops the file's Redis.
test.serial("Redis stopped: UNAVAILABLE / 503 and NOT_SERVING; restarted: serves again by itself", async (t) => {
  const { HealthClient } = await import("../helpers/health-client.js");
  const health = new HealthClient(`127.0.0.1:${mgmt.grpcPort}`);
  t.is(await health.check("clipper.v1.Admin"), "SERVING");
  await redis.stop();

  const g = await call(admin, "listApps", {});
  t.false(g.ok);
  if (!g.ok) {
    t.is(g.error.code, status.UNAVAILABLE);
    t.regex(g.error.details, /Redis at 127\.0\.0\.1:\d+ is unreachable/);
  }
  const h = await http("GET", "/v1/apps");
  t.is(h.status, 503);
  t.is(h.json.code, status.UNAVAILABLE);
  const c = await post("/admin/get_all_applications", { verbose: false });
  t.is(c.status, 503);
  t.is((await fetch(`${base}/readyz`)).status, 503);
  t.is(await health.until("clipper.v1.Admin", "NOT_SERVING"), "NOT_SERVING");

  await redis.restart();
  t.is(await health.until("clipper.v1.Admin", "SERVING"), "SERVING");
  const again = await call(admin, "createApp", { name: "back", inputType: "bytes", defaultOutput: "", latencySloMicros: 1000 });
  t.true(again.ok);
  t.is((await dumpRedis(redis.url))["5/back"] !== undefined, true);
  health.close();
});
