import test from "ava";
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { PredictRequest } from "../../gen/clipper/v1/predict.js";
import { call } from "../helpers/grpc.js";
import { eventually } from "../helpers/processes.js";
import { Scrape } from "../helpers/prometheus.js";
import { Stack } from "../helpers/stack.js";

// A caller that goes away while its query waits is seen by the gateway at
// once, on every edge: the call ends CANCELLED (not after the model answers
// or the SLO passes), and the query is given up, so the next caller with the
// same input is answered by the model.

let stack: Stack;

test.before(async () => {
  stack = await Stack.start(["--cache-bytes", "0"]);
  // One replica, one query at a time, 1.5 s per query: a second query waits in the queue.
  await stack.deploy("slow-app", "slow", "1", "doubles", { sloMicros: 10_000_000, batchSize: 1 });
  await stack.worker("slow", "1", "doubles", "test/fixtures/models/slow.js");
});

test.after.always(async () => {
  await stack?.close();
});

const scrape = () => Scrape.of(`http://127.0.0.1:${stack.gateway.http}/metrics`);
const req = (x: number) => PredictRequest.fromPartial({ app: "slow-app", input: { doubles: [x] } });

async function queued(): Promise<boolean> {
  return (await scrape()).value("clipper_queue_depth", { model: "slow", version: "1" }) === 1;
}

async function cancelledCalls(method: string, transport: string): Promise<number> {
  return (await scrape()).value("clipper_rpc_calls_total", { method, transport, code: "CANCELLED" }) ?? 0;
}

/**
 * Occupies the replica with one query, has `leave` start a query with input
 * `x` and give up once it is queued, and checks that the gateway ended it
 * CANCELLED and that `x` is then served by the model.
 */
async function givesUp(t: import("ava").ExecutionContext, x: number, method: string, transport: string, leave: (whenQueued: Promise<void>) => Promise<void>): Promise<void> {
  const before = await cancelledCalls(method, transport);
  const errorsBefore = (await scrape()).value("clipper_predictions_total", { app: "slow-app", outcome: "error" }) ?? 0;
  const busy = call<unknown, any>(stack.predict, "predict", req(x + 1000), { deadlineMs: 20_000 });
  t.true(await eventually(async () => (await scrape()).value("clipper_live_replicas", { model: "slow", version: "1" }) === 1));
  // The replica takes the first query; the second one waits behind it.
  const whenQueued = eventually(queued).then((ok) => {
    if (!ok) throw new Error("the query never waited in the queue");
  });
  await leave(whenQueued);
  t.true(await eventually(async () => (await cancelledCalls(method, transport)) === before + 1), `${transport} call not ended CANCELLED`);
  t.is((await scrape()).value("clipper_predictions_total", { app: "slow-app", outcome: "error" }), errorsBefore + 1);
  t.true((await busy).ok);
  const again = await call<unknown, any>(stack.predict, "predict", req(x), { deadlineMs: 20_000 });
  t.true(again.ok);
  if (again.ok) {
    t.false(again.value.default, "the input given up is answered by the model next time");
    t.is(again.value.output, "late");
  }
}

test.serial("a gRPC client that cancels a queued Predict ends the call CANCELLED and releases its input", async (t) => {
  await givesUp(t, 1, "clipper.v1.Predict/Predict", "grpc", async (whenQueued) => {
    const result = new Promise<ServiceError | null>((resolve) => {
      const pending = stack.predict.predict(req(1), new Metadata(), { deadline: new Date(Date.now() + 20_000) }, (err) => resolve(err));
      void whenQueued.then(() => pending.cancel());
    });
    t.is((await result)?.code, status.CANCELLED);
  });
});

test.serial("a Clipper REST client that disconnects ends the call CANCELLED and releases its input", async (t) => {
  await givesUp(t, 2, "POST /{app}/predict", "clipper-rest", async (whenQueued) => {
    const abort = new AbortController();
    const pending = fetch(`http://127.0.0.1:${stack.gateway.http}/slow-app/predict`, { method: "POST", body: JSON.stringify({ input: [2] }), signal: abort.signal });
    await whenQueued;
    abort.abort();
    t.is(await pending.then(() => "answered", (err: Error) => err.name), "AbortError");
  });
});

test.serial("a transcoded HTTP client that disconnects ends the call CANCELLED and releases its input", async (t) => {
  await givesUp(t, 3, "clipper.v1.Predict/Predict", "http", async (whenQueued) => {
    const abort = new AbortController();
    const pending = fetch(`http://127.0.0.1:${stack.gateway.http}/v1/apps/slow-app:predict`, {
      method: "POST",
      body: JSON.stringify({ input: { doubles: [3] } }),
      headers: { "content-type": "application/json" },
      signal: abort.signal,
    });
    await whenQueued;
    abort.abort();
    t.is(await pending.then(() => "answered", (err: Error) => err.name), "AbortError");
  });
});
