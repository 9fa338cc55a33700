import test from "ava";
import { PredictRequest } from "../../gen/clipper/v1/predict.js";
import { call } from "../helpers/grpc.js";
import { startGatewayProcess, startWorkerProcess, untilReady } from "../helpers/processes.js";
import { Stack } from "../helpers/stack.js";

let stack: Stack;

test.before(async () => {
  stack = await Stack.start();
  await stack.deploy("c-app", "counter", "1", "doubles");
  await stack.worker("counter", "1", "doubles", "test/fixtures/models/counter.js");
});

test.after.always(async () => {
  await stack?.close();
});

const predict = (doubles: number[]) =>
  call<unknown, any>(stack.predict, "predict", PredictRequest.fromPartial({ app: "c-app", input: { doubles } }));

test.serial("a repeated query is answered from the cache; a different input is not", async (t) => {
  const first = await predict([1, 2]);
  const again = await predict([1, 2]);
  const other = await predict([2, 1]);
  t.true(first.ok, "first call");
  t.true(again.ok, "repeated call");
  t.true(other.ok, "call with another input");
  if (first.ok && again.ok && other.ok) {
    t.is(again.value.output, first.value.output);
    t.not(other.value.output, first.value.output);
    t.false(again.value.default);
  }
});

test.serial("concurrent identical queries share one model call", async (t) => {
  const answers = await Promise.all(Array.from({ length: 20 }, () => predict([7, 7, 7])));
  const outputs = new Set(answers.map((a) => (a.ok ? a.value.output : "error")));
  t.is(outputs.size, 1);
  t.false(outputs.has("error"));
});

test.serial("--cache-bytes 0 turns the cache off", async (t) => {
  const gw = await startGatewayProcess(stack.redis.url, ["--cache-bytes", "0"]);
  t.teardown(() => gw.proc.stop());
  await untilReady(gw.http); // calls before its first catalog load get 503 by design
  const w = await startWorkerProcess(gw.rpc, "counter", "1", "doubles", "test/fixtures/models/counter.js");
  t.teardown(() => w.stop("SIGKILL"));
  const post = async () => (await (await fetch(`http://127.0.0.1:${gw.http}/c-app/predict`, { method: "POST", body: '{"input":[3.0]}' })).json()) as any;
  const a = await post();
  const b = await post();
  t.false(a.default);
  t.not(a.output, b.output);
});
