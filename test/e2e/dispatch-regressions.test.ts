import test from "ava";
import { PredictRequest } from "../../gen/clipper/v1/predict.js";
import { call } from "../helpers/grpc.js";
import { eventually } from "../helpers/processes.js";
import { Stack } from "../helpers/stack.js";

let stack: Stack;

test.before(async () => {
  stack = await Stack.start(["--cache-bytes", "0"]);
});

test.after.always(async () => {
  await stack?.close();
});

// A query whose caller gave up while it waited in the queue used to leave its
// in-flight entry behind: a later query with the same input then waited its
// whole SLO for an answer that never came.
test.serial("an input whose caller gave up in the queue is served normally the next time", async (t) => {
  await stack.deploy("slow-app", "slow", "1", "doubles", { sloMicros: 5_000_000, batchSize: 1 });
  await stack.worker("slow", "1", "doubles", "test/fixtures/models/slow.js");
  const req = (x: number) => PredictRequest.fromPartial({ app: "slow-app", input: { doubles: [x] } });
  const a = call<unknown, any>(stack.predict, "predict", req(1), { deadlineMs: 10_000 });
  // B must queue behind A: wait until A's batch is on the worker.
  const busy = await eventually(async () => {
    const w = await call<unknown, any>(stack.heartbeat, "listWorkers", { modelName: "slow" });
    return w.ok && w.value.workers.some((x: { inFlight: number }) => x.inFlight > 0);
  }, 10_000, 10);
  t.true(busy, "A's batch reached the worker");
  const b = await call<unknown, any>(stack.predict, "predict", req(2), { deadlineMs: 300 });
  t.false(b.ok, "B's own deadline passes while A occupies the worker");
  t.true((await a).ok);
  const c = await call<unknown, any>(stack.predict, "predict", req(2), { deadlineMs: 10_000 });
  t.true(c.ok);
  if (c.ok) {
    t.false(c.value.default, "the same input as B is answered by the model");
    t.is(c.value.output, "late");
  }
});

// One batch slower than the SLO budget used to make the dispatcher drop every
// later query as too late to serve, without ever sending another batch.
test.serial("one slow batch does not starve a model: later queries are answered by it", async (t) => {
  await stack.deploy("a", "once-slow", "1", "doubles", { sloMicros: 80_000 });
  await stack.worker("once-slow", "1", "doubles", "test/fixtures/models/slow-once.js");
  const answers: boolean[] = [];
  for (let i = 0; i < 20; i++) {
    const r = await stack.http("/a/predict", { input: [i] });
    answers.push(r.json.default === false);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  t.false(answers[0], "the first call misses its 80 ms SLO");
  // Starved, every later call got the default; one late answer is the host's noise.
  t.true(answers.slice(5).filter(Boolean).length >= 14, JSON.stringify(answers));
});
