import test from "ava";
import { PredictRequest } from "../../gen/clipper/v1/predict.js";
import { call } from "../helpers/grpc.js";
import { eventually } from "../helpers/processes.js";
import { dumpRedis } from "../helpers/redis-dump.js";
import { Stack } from "../helpers/stack.js";

let stack: Stack;

const predict = (i: number) =>
  call<unknown, any>(stack.predict, "predict", PredictRequest.fromPartial({ app: "ha-app", input: { doubles: [i] } }), { deadlineMs: 20_000 });

test.before(async () => {
  // Fast eviction so lost batches are re-dispatched well within the SLO.
  stack = await Stack.start(["--eviction-ms", "600"]);
});

test.after.always(async () => {
  await stack?.close();
});

test.serial("kill -9 of one of two replicas during 400 concurrent calls leaves no call unanswered", async (t) => {
  await stack.deploy("ha-app", "ha", "1", "doubles", { sloMicros: 4_000_000 });
  // The replica to kill holds the first batch it gets, unanswered (holds-batch.js).
  const a = await stack.worker("ha", "1", "doubles", "test/fixtures/models/holds-batch.js");
  await stack.worker("ha", "1", "doubles", "test/fixtures/models/batch-reporter.js");
  const results = new Map<number, Awaited<ReturnType<typeof predict>>>();
  const calls = Array.from({ length: 400 }, async (_, i) => {
    // Spread over ~400 ms: most calls arrive after the kill, while the dead replica is being evicted.
    await new Promise((r) => setTimeout(r, i));
    results.set(i, await predict(i));
  });
  // Kill only once the replica has a batch in flight that it will never answer.
  const held = JSON.parse((await a.waitFor(/holding batch: (\[[^\]]*\])/))[1]!) as number[];
  a.child.kill("SIGKILL");
  await Promise.all(calls);
  const outcomes = [...results.values()];
  const failed = outcomes.filter((r) => !r.ok).length;
  const defaults = outcomes.filter((r) => r.ok && r.value.default).length;
  const answered = outcomes.filter((r) => r.ok && !r.value.default).length;
  t.is(failed, 0);
  t.is(answered + defaults, 400);
  t.log(`model answers: ${answered}, defaults: ${defaults}, held by the killed replica: ${held.length}`);
  t.true(answered > 0);
  // The killed replica never answered the held batch, so a model answer to any
  // of its queries can only come from the gateway re-dispatching it.
  t.true(held.length > 0, "the killed replica had a batch in flight");
  for (const i of held) {
    const r = results.get(i);
    t.like(r, { ok: true, value: { default: false } }, `query ${i} of the held batch`);
    if (r?.ok === true) t.is((JSON.parse(r.value.output) as { sum: number }).sum, i, `query ${i} answered by the model`);
  }
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
