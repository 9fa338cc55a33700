import test from "ava";
import { execFile, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { credentials, loadPackageDefinition, status, type GrpcObject, type ServiceClientConstructor, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { createAdminClient, createPredictClient, isServiceError, statusName } from "../../clients/client.js";
import { WatchWorkersResponse_Kind } from "../../gen/clipper/v1/heartbeat.js";
import { PredictStreamRequest } from "../../gen/clipper/v1/predict.js";
import { ROOT } from "../helpers/processes.js";
import { ManagedStack } from "../helpers/managed-stack.js";

/** Debian's interpreter, whose dist-packages hold python3-grpcio (a pyenv python on PATH would not see it). */
const PYTHON = "/usr/bin/python3";
const pythonHasGrpc = existsSync(PYTHON) && spawnSync(PYTHON, ["-c", "import grpc, google.protobuf"], { stdio: "ignore" }).status === 0;
const pythonStubs = existsSync(resolve(ROOT, "gen/python/clipper/v1/predict_pb2_grpc.py"));

let stack: ManagedStack;

test.before(async () => {
  stack = await ManagedStack.start();
  await stack.admin.createApp({ name: "demo", inputType: "doubles", defaultOutput: "-1", latencySloMicros: 2_000_000 });
  await stack.admin.deployModel({ name: "sum", version: "1", inputType: "doubles", numReplicas: 1, worker: { module: resolve(ROOT, "clients/demo/sum-model.js") } });
  await stack.admin.linkModel({ app: "demo", model: "sum" });
});

test.after.always(async () => {
  await stack?.close();
});

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(file, args, { cwd: ROOT, timeout: 60_000, env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      done({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr }),
    );
  });
}

test("the typed TypeScript client predicts, one and in batches, over partial requests", async (t) => {
  const r = await stack.predict.predict({ app: "demo", input: { doubles: [1, 2, 3] } });
  t.like(r, { output: "6", default: false, model: "sum", modelVersion: "1" });
  const b = await stack.predict.predictBatch({ app: "demo", inputs: [{ doubles: [1] }, { doubles: [2, 3] }] }, { deadlineMs: 5_000 });
  t.deepEqual(b.predictions.map((p) => p.output), ["1", "5"]);
});

test("a client built at run time from proto/ with @grpc/proto-loader predicts (no generated code)", async (t) => {
  // The dynamic-loading path many grpc-node users take: the .proto files and
  // their imports (third_party/, copied by `npm run gen`) must load as they are.
  const definition = loadSync("clipper/v1/predict.proto", {
    includeDirs: [resolve(ROOT, "proto"), resolve(ROOT, "third_party")],
    keepCase: false,
    longs: String,
    defaults: true,
  });
  const clipper = (loadPackageDefinition(definition).clipper as GrpcObject).v1 as GrpcObject;
  const Predict = clipper.Predict as ServiceClientConstructor;
  const client = new Predict(`127.0.0.1:${stack.gateway.grpc}`, credentials.createInsecure());
  t.teardown(() => client.close());
  const r = await new Promise<{ output: string; default: boolean; model: string }>((done, fail) =>
    client.Predict!({ app: "demo", input: { doubles: [1, 2, 3] } }, { deadline: Date.now() + 5_000 }, (err: ServiceError | null, res: { output: string; default: boolean; model: string }) =>
      err === null ? done(res) : fail(err),
    ),
  );
  t.like(r, { output: "6", default: false, model: "sum" });
});

test("the stream answers with correlation ids", async (t) => {
  const stream = stack.predict.stream();
  const answers = new Map<number, string>();
  const done = new Promise<void>((resolveDone, reject) => {
    stream.on("data", (m: { correlationId: number; response?: { output: string } }) => {
      answers.set(m.correlationId, m.response?.output ?? "");
      if (answers.size === 2) resolveDone();
    });
    stream.on("error", reject);
  });
  // Stream messages are written whole: fromPartial fills the unset fields.
  stream.write(PredictStreamRequest.fromPartial({ correlationId: 7, request: { app: "demo", input: { doubles: [1, 1] } } }));
  stream.write(PredictStreamRequest.fromPartial({ correlationId: 8, request: { app: "demo", input: { doubles: [4] } } }));
  await done;
  stream.end();
  t.deepEqual([...answers.entries()].sort(), [[7, "2"], [8, "4"]]);
});

test("heartbeat lists and watches workers", async (t) => {
  t.is((await stack.heartbeat.listWorkers({ modelName: "sum" })).workers.length, 1);
  const abort = new AbortController();
  const first = await new Promise<WatchWorkersResponse_Kind>((resolveFirst, reject) => {
    const call = stack.heartbeat.watch({ modelName: "sum" }, { signal: abort.signal });
    call.once("data", (e: { kind: WatchWorkersResponse_Kind }) => resolveFirst(e.kind));
    call.once("error", reject);
  });
  abort.abort();
  t.is(first, WatchWorkersResponse_Kind.KIND_EXISTING);
});

test("failures reject with a ServiceError; deadlines are applied by default", async (t) => {
  const err = await stack.admin.getApp({ name: "nope" }).then(() => null, (e: unknown) => e);
  t.true(isServiceError(err));
  if (isServiceError(err)) t.is(statusName(err.code), "NOT_FOUND");
  const nowhere = createPredictClient("127.0.0.1:1", { deadlineMs: 1_000 });
  const down = await nowhere.predict({ app: "demo" }).then(() => null, (e: unknown) => e);
  nowhere.close();
  t.true(isServiceError(down), String(down));
  // Refused at once or still connecting when the deadline passed: either is "down".
  if (isServiceError(down)) t.true(down.code === status.UNAVAILABLE || down.code === status.DEADLINE_EXCEEDED, statusName(down.code));
  const admin = createAdminClient(`127.0.0.1:${stack.management.grpc}`);
  const abort = new AbortController();
  const pending = admin.listApps({}, { signal: abort.signal });
  abort.abort();
  const cancelled = await pending.then(() => null, (e: unknown) => e);
  admin.close();
  // null: the answer beat the abort, which is no failure of cancellation.
  if (cancelled !== null) {
    t.true(isServiceError(cancelled), String(cancelled));
    if (isServiceError(cancelled)) t.is(statusName(cancelled.code), "CANCELLED");
  }
});

test("the TypeScript example runs against the stack", async (t) => {
  const r = await run(process.execPath, ["--import", "tsx", "clients/example.ts"], {
    CLIPPER_GATEWAY_ADDR: `127.0.0.1:${stack.gateway.grpc}`,
    CLIPPER_MANAGEMENT_ADDR: `127.0.0.1:${stack.management.grpc}`,
  });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /demo\(\[1,2,3\]\) = 6 /);
  t.regex(r.stdout, /batch: 2, 4/);
});

(pythonHasGrpc && pythonStubs ? test : test.skip)("a Python client generated from the same protos predicts", async (t) => {
  const r = await run(PYTHON, ["clients/python/predict_example.py", "demo", "1", "2", "3"], { CLIPPER_GATEWAY_ADDR: `127.0.0.1:${stack.gateway.grpc}` });
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, "6\n");
});

(pythonHasGrpc && existsSync(resolve(ROOT, "gen/python/inference/open_inference_pb2_grpc.py")) ? test : test.skip)(
  "the Python Open Inference Protocol example sends rows as one raw FP64 tensor and prints each row's output",
  async (t) => {
    const r = await run(PYTHON, ["clients/python/oip_example.py", "demo", "1,2,3", "4,5,6"], { CLIPPER_GATEWAY_ADDR: `127.0.0.1:${stack.gateway.grpc}` });
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout, "6\n15\n");
    const missing = await run(PYTHON, ["clients/python/oip_example.py", "no-such-app", "1"], { CLIPPER_GATEWAY_ADDR: `127.0.0.1:${stack.gateway.grpc}` });
    t.is(missing.code, 1);
    t.regex(missing.stderr, /not ready/);
  },
);
