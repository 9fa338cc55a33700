import test from "ava";
import { PredictRequest } from "../../gen/clipper/v1/predict.js";
import { call } from "../helpers/grpc.js";
import { eventually } from "../helpers/processes.js";
import { dumpRedis } from "../helpers/redis-dump.js";
import { Stack } from "../helpers/stack.js";

let stack: Stack;

test.before(async () => {
  // Fast eviction so lost batches are re-dispatched well within the SLO.
  stack = await Stack.start(["--eviction-ms", "600"]);
});

test.after.always(async () => {
  await stack?.close();
});

test.serial("kill -9 of one of two replicas during 400 concurrent calls leaves no call unanswered", async (t) => {
  await stack.deploy("ha-app", "ha", "1", "doubles", { sloMicros: 4_000_000 });
  const a = await stack.worker("ha", "1", "doubles", "test/fixtures/models/batch-reporter.js");
  await stack.worker("ha", "1", "doubles", "test/fixtures/models/batch-reporter.js");
  let answered = 0;
  let defaults = 0;
  let failed = 0;
  const calls = Array.from({ length: 400 }, async (_, i) => {
    // Spread the calls over ~400 ms so the kill lands in the middle of the burst.
    await new Promise((r) => setTimeout(r, i));
    const r = await call<unknown, any>(stack.predict, "predict", PredictRequest.fromPartial({ app: "ha-app", input: { doubles: [i] } }), { deadlineMs: 20_000 });
    if (!r.ok) failed++;
    else if (r.value.default) defaults++;
    else answered++;
  });
  await new Promise((r) => setTimeout(r, 200));
  a.child.kill("SIGKILL");
  await Promise.all(calls);
  t.is(failed, 0);
  t.is(answered + defaults, 400);
  t.log(`model answers: ${answered}, defaults: ${defaults}`);
  t.true(answered > 0);
  // The dead replica is gone from ListWorkers and from Redis DB 3.
  t.true(await eventually(async () => {
    const w = await call<unknown, any>(stack.heartbeat, "listWorkers", { modelName: "ha" });
    return w.ok && w.value.workers.length === 1;
  }));
  t.true(await eventually(async () => Object.keys(await dumpRedis(stack.redis.url)).filter((k) => k.startsWith("3/ha,1,")).length === 1));
});

test.serial("a worker that reconnects becomes a new replica and serves", async (t) => {
  await stack.deploy("re-app", "re", "1", "strings");
  const w = await stack.worker("re", "1", "strings", "test/fixtures/models/describe.js");
  await w.stop("SIGKILL");
  await stack.worker("re", "1", "strings", "test/fixtures/models/describe.js");
  t.true(await eventually(async () => {
    const r = await call<unknown, any>(stack.predict, "predict", PredictRequest.fromPartial({ app: "re-app", input: { text: "x" } }));
    return r.ok && r.value.output === "text:x";
  }));
  // The killed replica is evicted; the reconnected worker is replica 1, never a reuse of 0.
  t.true(await eventually(async () => {
    const w = await call<unknown, any>(stack.heartbeat, "listWorkers", { modelName: "re" });
    return w.ok && w.value.workers.map((x: any) => x.replicaId).join() === "1";
  }));
});
