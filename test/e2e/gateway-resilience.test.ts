import test from "ava";
import { PredictRequest, PredictStreamRequest, type PredictStreamResponse } from "../../gen/clipper/v1/predict.js";
import type { WatchWorkersResponse } from "../../gen/clipper/v1/heartbeat.js";
import { call } from "../helpers/grpc.js";
import { eventually } from "../helpers/processes.js";
import { dumpRedis } from "../helpers/redis-dump.js";
import { Stack } from "../helpers/stack.js";

let stack: Stack;

test.before(async () => {
  stack = await Stack.start();
  await stack.deploy("s-app", "echo", "1", "strings");
  await stack.worker("echo", "1", "strings", "test/fixtures/models/describe.js");
});

test.after.always(async () => {
  await stack?.close();
});

test.serial("PredictStream answers every query, matched by correlation id, and reports a bad one without ending the stream", async (t) => {
  const stream = stack.predict.predictStream();
  const answers = new Map<number, PredictStreamResponse>();
  const done = new Promise<void>((resolve, reject) => {
    stream.on("data", (r: PredictStreamResponse) => answers.set(r.correlationId, r));
    stream.on("end", () => resolve());
    stream.on("error", reject);
  });
  for (let i = 0; i < 50; i++) stream.write(PredictStreamRequest.fromPartial({ correlationId: i, request: { app: "s-app", input: { text: `q${i}` } } }));
  stream.write(PredictStreamRequest.fromPartial({ correlationId: 99, request: { app: "s-app", input: { doubles: [1] } } }));
  stream.write(PredictStreamRequest.fromPartial({ correlationId: 100, request: { app: "nope", input: { text: "x" } } }));
  stream.end();
  await done;
  t.is(answers.size, 52);
  for (let i = 0; i < 50; i++) t.is(answers.get(i)?.response?.output, `text:q${i}`);
  t.is(answers.get(99)?.error?.code, 3);
  t.is(answers.get(100)?.error?.code, 5);
});

test.serial("WatchWorkers sends the current workers, then registrations and removals", async (t) => {
  const events: WatchWorkersResponse[] = [];
  const watch = stack.heartbeat.watchWorkers({ modelName: "" });
  watch.on("data", (e: WatchWorkersResponse) => events.push(e));
  watch.on("error", () => {});
  t.teardown(() => watch.cancel());
  t.true(await eventually(() => events.some((e) => e.kind === 1 && e.worker?.modelName === "echo")));
  const w = await stack.worker("echo", "1", "strings", "test/fixtures/models/describe.js");
  t.true(await eventually(() => events.some((e) => e.kind === 2 && e.worker?.replicaId === 1)));
  await w.stop("SIGTERM");
  t.true(await eventually(() => events.some((e) => e.kind === 3 && e.worker?.replicaId === 1 && e.reason === "drained")));
});

test.serial("deleting a model version removes its replicas, drains its workers and cleans up its Redis entries", async (t) => {
  await stack.admin("add_model", { model_name: "echo", model_version: "2", labels: [], input_type: "strings", container_name: "", model_data_path: "", batch_size: -1 });
  const w2 = await stack.worker("echo", "2", "strings", "test/fixtures/models/describe.js");
  t.true(await eventually(async () => (await dumpRedis(stack.redis.url))["3/echo,2,0"] !== undefined));
  await stack.admin("set_model_version", { model_name: "echo", model_version: "1" });
  await stack.admin("delete_versioned_model", { model_name: "echo", model_version: "2" });
  // The worker was asked to drain and exits by itself.
  t.is(await w2.waitExit(15_000), 0);
  t.true(await eventually(async () => {
    const dump = await dumpRedis(stack.redis.url);
    return dump["3/echo,2,0"] === undefined && dump["2/echo:2"] === undefined && dump["2/echo:1"] !== undefined;
  }));
  const r = await call<unknown, any>(stack.predict, "predict", PredictRequest.fromPartial({ app: "s-app", input: { text: "still" }, version: "2" }));
  t.false(r.ok);
  if (!r.ok) t.is(r.error.code, 3);
});

// Runs last: it stops the file's Redis.
test.serial("with Redis down the gateway keeps serving from what it knows; back up, it reconciles and rewrites its replicas", async (t) => {
  const predict = () => call<unknown, any>(stack.predict, "predict", PredictRequest.fromPartial({ app: "s-app", input: { text: `x${Math.random()}` } }));
  t.true((await predict()).ok);
  await stack.redis.stop();
  const during = await predict();
  t.true(during.ok);
  if (during.ok) t.regex(during.value.output, /^text:x/);
  // A restarted Redis is empty here (no persistence): the gateway rewrites its
  // live replicas into DB 3, and the emptied catalog stops serving the app.
  await stack.redis.restart();
  t.true(await eventually(async () => (await dumpRedis(stack.redis.url))["3/echo,1,0"] !== undefined));
  t.true(await eventually(async () => {
    const r = await predict();
    return !r.ok && r.error.code === 5;
  }));
  // Re-created through management, the app serves again without a gateway restart.
  await stack.deploy("s-app", "echo", "1", "strings");
  t.true(await eventually(async () => {
    const r = await predict();
    return r.ok && !r.value.default;
  }));
});
