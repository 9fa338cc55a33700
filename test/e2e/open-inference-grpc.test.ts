/**
 * inference.GRPCInferenceService on a real gateway process with real
 * workers, called by a Python grpcio client whose stubs are generated from
 * proto/inference/ (test/fixtures/oip_calls.py builds raw tensors as
 * tritonclient does), and by grpc-js for what the gateway reports about
 * those calls (metrics, health, reflection).
 */
import test from "ava";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { credentials, status } from "@grpc/grpc-js";
import { GRPCInferenceServiceClient, ModelInferRequest } from "../../gen/inference/open_inference.js";
import { call } from "../helpers/grpc.js";
import { HealthClient } from "../helpers/health-client.js";
import { deployOipCatalog } from "../helpers/oip-catalog.js";
import { eventually, ROOT } from "../helpers/processes.js";
import { Scrape } from "../helpers/prometheus.js";
import { PYTHON } from "../helpers/python-worker.js";
import { Stack } from "../helpers/stack.js";

const pythonReady =
  existsSync(PYTHON) &&
  spawnSync(PYTHON, ["-c", "import grpc, numpy, google.protobuf"], { stdio: "ignore" }).status === 0 &&
  existsSync(resolve(ROOT, "gen/python/inference/open_inference_pb2_grpc.py"));
const pyTest = pythonReady ? test.serial : test.serial.skip;

let stack: Stack;
let oip: GRPCInferenceServiceClient;

test.before(async () => {
  stack = await Stack.start(["--cache-bytes", "0"]);
  await stack.deploy("count-app", "describe-c", "1", "doubles");
  await stack.deploy("slo-app", "slow-slo", "1", "doubles", { sloMicros: 200_000, defaultOutput: "fallback" });
  await Promise.all([
    deployOipCatalog(stack),
    stack.worker("describe-c", "1", "doubles", "test/fixtures/models/describe.js"),
    stack.worker("slow-slo", "1", "doubles", "test/fixtures/models/slow.js"),
  ]);
  oip = new GRPCInferenceServiceClient(`127.0.0.1:${stack.gateway.grpc}`, credentials.createInsecure());
  // The catalog follows Redis by events: wait until the last app is served.
  const seen = await eventually(async () => (await call<unknown, any>(oip, "modelMetadata", { name: "nolink", version: "" })).ok, 15_000);
  if (!seen) throw new Error("the gateway did not learn of the apps");
});

test.after.always(async () => {
  oip?.close();
  await stack?.close();
});

interface PyResult {
  name: string;
  ok: boolean;
  code: string;
  details: string;
  response?: any;
  raw?: boolean;
  outputs?: Record<string, unknown[]>;
}

/** Runs calls through the Python client; resolves with its answers by case name. */
function python(calls: readonly object[]): Promise<Map<string, PyResult>> {
  return new Promise((done, fail) => {
    const child = spawn(PYTHON, ["test/fixtures/oip_calls.py", `127.0.0.1:${stack.gateway.grpc}`], { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code !== 0) return fail(new Error(`oip_calls.py exited ${code}: ${err}`));
      const results = out.trim().split("\n").map((l) => JSON.parse(l) as PyResult);
      done(new Map(results.map((r) => [r.name, r])));
    });
    child.stdin.end(JSON.stringify(calls));
  });
}

const infer = (name: string, request: object, extra: object = {}) => ({ name, rpc: "ModelInfer", request, ...extra });
const fp64 = (shape: number[]) => ({ name: "x", datatype: "FP64", shape });

pyTest("every RPC from a Python client generated from proto/inference", async (t) => {
  const r = await python([
    { name: "live", rpc: "ServerLive" },
    { name: "ready", rpc: "ServerReady" },
    { name: "server", rpc: "ServerMetadata" },
    { name: "meta-d", rpc: "ModelMetadata", request: { name: "d-app" } },
    { name: "meta-s", rpc: "ModelMetadata", request: { name: "s-app" } },
    { name: "meta-unknown", rpc: "ModelMetadata", request: { name: "nope" } },
    { name: "ready-d", rpc: "ModelReady", request: { name: "d-app" } },
    { name: "ready-d2", rpc: "ModelReady", request: { name: "d-app", version: "2" } },
    { name: "ready-d9", rpc: "ModelReady", request: { name: "d-app", version: "9" } },
    { name: "ready-nolink", rpc: "ModelReady", request: { name: "nolink" } },
    { name: "ready-unknown", rpc: "ModelReady", request: { name: "nope" } },
    infer("raw", { model_name: "d-app", id: "req-1", inputs: [fp64([3, 2])] }, { numpy: { datatype: "FP64", data: [[1, 2], [3, 4], [5, 6]] } }),
  ]);
  t.deepEqual(r.get("live")!.response, { live: true });
  t.deepEqual(r.get("ready")!.response, { ready: true });
  const version = (JSON.parse(readFileSync(resolve(ROOT, "package.json"), "utf8")) as { version: string }).version;
  t.deepEqual(r.get("server")!.response, { name: "clipper-ts", version, extensions: ["binary_tensor_data"] });
  const meta = r.get("meta-d")!.response;
  t.is(meta.name, "d-app");
  t.is(meta.platform, "clipper-ts");
  t.deepEqual(meta.versions, ["1", "2"]);
  t.deepEqual(meta.inputs, [{ name: "input", datatype: "FP64", shape: ["-1", "-1"] }]);
  t.deepEqual(meta.outputs, [
    { name: "output", datatype: "BYTES", shape: ["-1"] },
    { name: "default", datatype: "BOOL", shape: ["-1"] },
  ]);
  t.is(meta.properties.current_version, "1");
  t.deepEqual(r.get("meta-s")!.response.inputs, [{ name: "input", datatype: "BYTES", shape: ["-1"] }]);
  t.is(r.get("meta-unknown")!.code, "NOT_FOUND");
  t.true(r.get("ready-d")!.response.ready);
  t.true(r.get("ready-d2")!.response.ready);
  // proto3 JSON leaves out a false bool.
  for (const n of ["ready-d9", "ready-nolink", "ready-unknown"]) {
    t.true(r.get(n)!.ok, n);
    t.not(r.get(n)!.response.ready, true, n);
  }
  const raw = r.get("raw")!;
  t.true(raw.ok, raw.details);
  t.true(raw.raw, "raw in, raw out");
  t.deepEqual(raw.outputs, { output: ["Float64Array:1,2", "Float64Array:3,4", "Float64Array:5,6"], default: [false, false, false] });
  t.is(raw.response.model_name, "d-app");
  t.is(raw.response.model_version, "1");
  t.is(raw.response.id, "req-1");
  t.deepEqual(raw.response.outputs.map((o: any) => [o.name, o.datatype, o.shape]), [["output", "BYTES", ["3"]], ["default", "BOOL", ["3"]]]);
});

pyTest("ModelInfer: typed contents, one row, BYTES for strings, a pinned version, chosen outputs", async (t) => {
  const r = await python([
    infer("typed", { model_name: "d-app", inputs: [{ ...fp64([3, 2]), contents: { fp64_contents: [1, 2, 3, 4, 5, 6] } }] }),
    infer("one-row", { model_name: "d-app", inputs: [{ ...fp64([3]), contents: { fp64_contents: [7, 8, 9] } }] }),
    infer("typed-raw-out", { model_name: "d-app", parameters: { binary_data_output: { bool_param: true } }, inputs: [{ ...fp64([1, 1]), contents: { fp64_contents: [1] } }] }),
    infer("bytes-raw", { model_name: "s-app", inputs: [{ name: "text", datatype: "BYTES", shape: [2] }] }, { numpy: { datatype: "BYTES", data: ["héllo", "b"] } }),
    infer("bytes-typed", {
      model_name: "s-app",
      inputs: [{ name: "text", datatype: "BYTES", shape: [2, 1], contents: { bytes_contents: [Buffer.from("x").toString("base64"), Buffer.from("yz").toString("base64")] } }],
    }),
    infer("pinned", { model_name: "d-app", model_version: "2", inputs: [fp64([1, 2])] }, { numpy: { datatype: "FP64", data: [[1, 2]] } }),
    infer("only-default", { model_name: "d-app", outputs: [{ name: "default" }], inputs: [fp64([2, 1])] }, { numpy: { datatype: "FP64", data: [[1], [2]] } }),
    infer("nolink", { model_name: "nolink", inputs: [fp64([2, 1])] }, { numpy: { datatype: "FP64", data: [[1], [2]] } }),
  ]);
  for (const [name, res] of r) t.true(res.ok, `${name}: ${res.code} ${res.details}`);
  t.false(r.get("typed")!.raw, "typed in, typed out");
  t.deepEqual(r.get("typed")!.outputs, { output: ["Float64Array:1,2", "Float64Array:3,4", "Float64Array:5,6"], default: [false, false, false] });
  t.deepEqual(r.get("one-row")!.outputs!.output, ["Float64Array:7,8,9"]);
  t.true(r.get("typed-raw-out")!.raw, "binary_data_output asks for raw");
  t.deepEqual(r.get("bytes-raw")!.outputs!.output, ["text:héllo", "text:b"]);
  t.deepEqual(r.get("bytes-typed")!.outputs!.output, ["text:x", "text:yz"]);
  t.is(r.get("pinned")!.response.model_version, "2");
  t.deepEqual(r.get("pinned")!.outputs!.output, ["Float64Array:1,2"]);
  t.deepEqual(Object.keys(r.get("only-default")!.outputs!), ["default"]);
  t.deepEqual(r.get("nolink")!.outputs, { output: ["none", "none"], default: [true, true] });
});

pyTest("ModelInfer deadlines: the gRPC deadline, the timeout parameter, and the app's SLO", async (t) => {
  const row = { numpy: { datatype: "FP64", data: [[1]] } };
  const r = await python([
    infer("grpc-deadline", { model_name: "slow-app", inputs: [fp64([1, 1])] }, { ...row, timeout: 0.3 }),
    infer("timeout-param", { model_name: "slow-app", parameters: { timeout: { int64_param: "300000" } }, inputs: [fp64([1, 1])] }, { ...row, timeout: 30 }),
    infer("slo", { model_name: "slo-app", inputs: [fp64([1, 1])] }, { ...row, timeout: 30 }),
  ]);
  t.is(r.get("grpc-deadline")!.code, "DEADLINE_EXCEEDED");
  t.is(r.get("timeout-param")!.code, "DEADLINE_EXCEEDED", "the timeout parameter is earlier than the gRPC deadline and the SLO");
  t.true(r.get("slo")!.ok);
  t.deepEqual(r.get("slo")!.outputs, { output: ["fallback"], default: [true] });
});

pyTest("ModelInfer errors carry the protocol's codes and say what to fix", async (t) => {
  const one = { numpy: { datatype: "FP64", data: [[1, 2]] } };
  const r = await python([
    infer("unknown-model", { model_name: "nope", inputs: [fp64([1, 2])] }, one),
    infer("unknown-version", { model_name: "d-app", model_version: "9", inputs: [fp64([1, 2])] }, one),
    infer("empty-name", { inputs: [fp64([1, 2])] }, one),
    infer("datatype", { model_name: "d-app", inputs: [{ name: "x", datatype: "FP32", shape: [1, 2] }] }, { numpy: { datatype: "FP32", data: [[1, 2]] } }),
    infer("shape", { model_name: "d-app", inputs: [fp64([1, 1, 2])] }, one),
    infer("count-typed", { model_name: "d-app", inputs: [{ ...fp64([3, 2]), contents: { fp64_contents: [1, 2, 3, 4, 5] } }] }),
    infer("count-raw", { model_name: "d-app", inputs: [fp64([3, 2])] }, one),
    infer("two-inputs", { model_name: "d-app", inputs: [{ ...fp64([1]), contents: { fp64_contents: [1] } }, { name: "y", datatype: "FP64", shape: [1], contents: { fp64_contents: [1] } }] }),
    infer("mixed", { model_name: "d-app", inputs: [{ ...fp64([1, 2]), contents: { fp64_contents: [1, 2] } }] }, one),
    infer("wrong-field", { model_name: "d-app", inputs: [{ ...fp64([2]), contents: { int_contents: [1, 2] } }] }),
    infer("unknown-output", { model_name: "d-app", outputs: [{ name: "probabilities" }], inputs: [fp64([1, 2])] }, one),
    infer("bad-timeout", { model_name: "d-app", parameters: { timeout: { string_param: "1s" } }, inputs: [fp64([1, 2])] }, one),
    infer("bytes-count", { model_name: "s-app", inputs: [{ name: "text", datatype: "BYTES", shape: [3] }] }, { numpy: { datatype: "BYTES", data: ["a", "b"] } }),
    infer("no-rows", { model_name: "d-app", inputs: [fp64([0, 2])] }, { numpy: { datatype: "FP64", data: [] } }),
  ]);
  const expect: [string, string, RegExp][] = [
    ["unknown-model", "NOT_FOUND", /nope/],
    ["unknown-version", "NOT_FOUND", /version: 9/],
    ["empty-name", "INVALID_ARGUMENT", /model name is empty/],
    ["datatype", "INVALID_ARGUMENT", /input tensor 'x' has datatype 'FP32'.*send FP64/],
    ["shape", "INVALID_ARGUMENT", /input tensor 'x' has shape \[1, 1, 2\]; send \[N, k\]/],
    ["count-typed", "INVALID_ARGUMENT", /input tensor 'x' has shape \[3, 2\], which holds 6 elements, but its contents have 5/],
    ["count-raw", "INVALID_ARGUMENT", /input tensor 'x': its raw contents are 16 bytes, but shape \[3, 2\] of FP64 needs 48/],
    ["two-inputs", "INVALID_ARGUMENT", /2 input tensors \('x', 'y'\); the model takes one/],
    ["mixed", "INVALID_ARGUMENT", /input tensor 'x' has elements both in contents and in raw_input_contents/],
    ["wrong-field", "INVALID_ARGUMENT", /sets contents.int_contents, but FP64 elements go in contents.fp64_contents/],
    ["unknown-output", "INVALID_ARGUMENT", /output tensor 'probabilities' does not exist/],
    ["bad-timeout", "INVALID_ARGUMENT", /parameter 'timeout' must be a non-negative int64/],
    ["bytes-count", "INVALID_ARGUMENT", /raw contents hold 2 elements, but its shape says 3/],
    ["no-rows", "INVALID_ARGUMENT", /no rows/],
  ];
  for (const [name, code, message] of expect) {
    const res = r.get(name)!;
    t.is(res.code, code, `${name}: ${res.details}`);
    t.regex(res.details, message, name);
  }
});

test.serial("each row is one query in the app's metrics, and the call one in clipper_rpc_calls_total", async (t) => {
  const url = `http://127.0.0.1:${stack.gateway.http}/metrics`;
  const method = "inference.GRPCInferenceService/ModelInfer";
  const before = (await Scrape.of(url)).value("clipper_rpc_calls_total", { method, transport: "grpc", code: "OK" }) ?? 0;
  const raw = Buffer.alloc(4 * 8);
  [1, 2, 3, 4].forEach((v, i) => raw.writeDoubleLE(v, i * 8));
  const res = await call<ModelInferRequest, any>(
    oip,
    "modelInfer",
    ModelInferRequest.fromPartial({ modelName: "count-app", inputs: [{ name: "x", datatype: "FP64", shape: [4, 1] }], rawInputContents: [raw] }),
  );
  t.true(res.ok);
  const after = await Scrape.of(url);
  t.is(after.value("clipper_rpc_calls_total", { method, transport: "grpc", code: "OK" }), before + 1);
  t.is(after.value("clipper_predictions_total", { app: "count-app", outcome: "ok" }), 4);
});

test.serial("health and reflection list the inference service", async (t) => {
  const health = new HealthClient(`127.0.0.1:${stack.gateway.grpc}`);
  try {
    t.is(await health.check("inference.GRPCInferenceService"), "SERVING");
  } finally {
    health.close();
  }
  const list = spawnSync(process.execPath, ["node_modules/@bufbuild/buf/bin/buf", "curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-methods", `http://127.0.0.1:${stack.gateway.grpc}`], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 60_000,
  });
  for (const m of ["ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer"]) t.regex(list.stdout, new RegExp(`inference\\.GRPCInferenceService/${m}`));
  const unknown = await call<unknown, any>(oip, "modelInfer", ModelInferRequest.fromPartial({ modelName: "nope" }));
  t.false(unknown.ok);
  if (!unknown.ok) t.is(unknown.error.code, status.NOT_FOUND);
});
