import test, { type ExecutionContext } from "ava";
import type { BatchRequest } from "../../gen/clipper/v1/heartbeat.js";
import { createLogger } from "../../core/telemetry/logger.js";
import type { PredictFn } from "../../worker/batch-executor.js";
import { loadModel } from "../../worker/model-loader.js";
import { startWorker, type WorkerHandle } from "../../worker/runtime.js";
import type { WorkerOptions } from "../../worker/worker-options.js";
import { eventually, FakeGateway, frames } from "./fake-gateway.js";

// WORKER_TEST_LOG=info shows the runtime's lifecycle lines while debugging a test.
const log = createLogger("worker-test", process.env.WORKER_TEST_LOG ?? "silent");

async function fixture(name: string): Promise<PredictFn> {
  const loaded = await loadModel(`test/fixtures/${name}`);
  if (!loaded.ok) throw new Error(loaded.error);
  return loaded.predict;
}

/** A fake gateway and a worker connected to it, both closed when the test ends. */
async function setup(
  t: ExecutionContext,
  options: Partial<WorkerOptions> & Pick<WorkerOptions, "inputType" | "predict">,
): Promise<{ gw: FakeGateway; worker: WorkerHandle }> {
  const gw = await FakeGateway.start();
  t.teardown(() => gw.close());
  const worker = startWorker({ model: "m", version: "1", gateway: gw.endpoint, heartbeatMs: 50, log, ...options });
  t.teardown(() => worker.close());
  return { gw, worker };
}

/** Registers the worker, sends one batch and returns the BatchResult with its output texts. */
async function roundTrip(gw: FakeGateway, identity: Buffer, batchId: number, payloads: Buffer[], extra: Partial<BatchRequest> = {}) {
  await gw.send(identity, { kind: { $case: "batch", value: { batchId, deadlineUnixMicros: 0, itemDeadlinesUnixMicros: [], inputType: "", ...extra } } }, payloads);
  const result = await gw.next("result", (r) => r.value.batchId === batchId);
  return { ...result.value, outputs: result.payloads.map((p) => p.toString("utf8")) };
}

const farFuture = (): number => (Date.now() + 60_000) * 1000;

test("registration carries model, version, input type as given, limits and description", async (t) => {
  const { gw, worker } = await setup(t, { inputType: "Doubles", predict: await fixture("sum-doubles.ts"), maxBatchSize: 8, concurrency: 2 });
  const reg = await gw.acceptRegistration(7);
  t.like(reg.value, { modelName: "m", modelVersion: "1", inputType: "Doubles", maxBatchSize: 8, concurrency: 2 });
  t.regex(reg.value.description, new RegExp(`pid=${process.pid}`));
  await eventually(() => worker.replicaId() === 7, "replica id 7");
  t.is(worker.replicaId(), 7);
});

test("registration is retried until the gateway answers", async (t) => {
  const { gw, worker } = await setup(t, { inputType: "doubles", predict: await fixture("sum-doubles.ts") });
  const first = await gw.next("register");
  const second = await gw.next("register");
  t.deepEqual(second.identity, first.identity);
  t.is(worker.replicaId(), null);
});

test("heartbeats arrive after registration with the load report", async (t) => {
  const { gw } = await setup(t, { inputType: "doubles", predict: await fixture("sum-doubles.ts") });
  const reg = await gw.acceptRegistration(1, 20);
  const beat = await gw.next("beat");
  t.deepEqual(beat.identity, reg.identity);
  t.deepEqual(beat.value, { inFlight: 0, pendingItems: 0 });
});

test("doubles are decoded and answered in order", async (t) => {
  const { gw } = await setup(t, { inputType: "doubles", predict: await fixture("sum-doubles.ts") });
  const { identity } = await gw.acceptRegistration(1);
  const r = await roundTrip(gw, identity, 11, [frames.doubles([1, 2, 3]), frames.doubles([0.5]), frames.doubles([])]);
  t.deepEqual(r.items.map((i) => i.code), [0, 0, 0]);
  t.deepEqual(r.outputs, ["6", "0.5", "0"]);
  t.true(r.modelMicros >= 0);
});

for (const [type, payloads, expected] of [
  ["floats", [frames.floats([1.5, -2]), frames.floats([0.25])], ["Float32Array:1.5,-2", "Float32Array:0.25"]],
  ["ints", [frames.ints([1, -2, 2147483647]), frames.ints([])], ["Int32Array:1,-2,2147483647", "Int32Array:"]],
  ["bytes", [Buffer.from([0, 255, 16]), Buffer.alloc(0)], ["Buffer:00ff10", "Buffer:"]],
  ["strings", [frames.text("héllo"), frames.text("b")], ["HÉLLO", "B"]],
] as const) {
  test(`${type} are decoded to the model's input type and answered in order`, async (t) => {
    const { gw } = await setup(t, { inputType: type, predict: await fixture("describe-inputs.ts") });
    const { identity } = await gw.acceptRegistration(1);
    const r = await roundTrip(gw, identity, 5, [...payloads]);
    t.deepEqual(r.items.map((i) => i.code), payloads.map(() => 0));
    t.deepEqual(r.outputs, [...expected]);
  });
}

test("a frame that is not a whole number of elements fails only its item with INVALID_ARGUMENT", async (t) => {
  const { gw } = await setup(t, { inputType: "doubles", predict: await fixture("sum-doubles.ts") });
  const { identity } = await gw.acceptRegistration(1);
  const r = await roundTrip(gw, identity, 3, [frames.doubles([1]), Buffer.alloc(7), frames.doubles([2, 2])]);
  t.deepEqual(r.items.map((i) => i.code), [0, 3, 0]);
  t.regex(r.items[1]!.message, /7 bytes/);
  t.deepEqual(r.outputs, ["1", "", "4"]);
});

test("a model that throws fails every item of the batch and the worker serves the next batch", async (t) => {
  const { gw } = await setup(t, { inputType: "strings", predict: await fixture("scripted.ts") });
  const { identity } = await gw.acceptRegistration(1);
  const bad = await roundTrip(gw, identity, 1, [frames.text("a"), frames.text("throw")]);
  t.deepEqual(bad.items, [
    { code: 13, message: "model exploded" },
    { code: 13, message: "model exploded" },
  ]);
  t.deepEqual(bad.outputs, ["", ""]);
  t.is(bad.modelError, "model exploded", "the gateway is told the call failed as a whole");
  const good = await roundTrip(gw, identity, 2, [frames.text("a")]);
  t.deepEqual(good.items, [{ code: 0, message: "" }]);
  t.is(good.modelError, "");
  t.deepEqual(JSON.parse(good.outputs[0]!), { seen: ["a"] });
});

test("a returned Error fails only its item", async (t) => {
  const { gw } = await setup(t, { inputType: "strings", predict: await fixture("scripted.ts") });
  const { identity } = await gw.acceptRegistration(1);
  const r = await roundTrip(gw, identity, 1, [frames.text("a"), frames.text("error:bad pixel"), frames.text("c")]);
  t.deepEqual(r.items.map((i) => i.code), [0, 13, 0]);
  t.is(r.items[1]!.message, "bad pixel");
  t.deepEqual(JSON.parse(r.outputs[2]!), { seen: ["a", "error:bad pixel", "c"] });
  t.is(r.outputs[1], "");
});

test("a wrong number of outputs fails the batch with a clear message", async (t) => {
  const { gw } = await setup(t, { inputType: "strings", predict: await fixture("scripted.ts") });
  const { identity } = await gw.acceptRegistration(1);
  const r = await roundTrip(gw, identity, 1, [frames.text("short"), frames.text("b")]);
  t.deepEqual(r.items.map((i) => i.code), [13, 13]);
  t.regex(r.items[0]!.message, /returned 1 outputs for 2 inputs/);
});

test("items past their deadline are answered DEADLINE_EXCEEDED without reaching the model", async (t) => {
  const { gw } = await setup(t, { inputType: "strings", predict: await fixture("scripted.ts") });
  const { identity } = await gw.acceptRegistration(1);
  const past = (Date.now() - 1_000) * 1000;
  const r = await roundTrip(gw, identity, 9, [frames.text("a"), frames.text("late"), frames.text("c")], {
    itemDeadlinesUnixMicros: [farFuture(), past, farFuture()],
  });
  t.deepEqual(r.items.map((i) => i.code), [0, 4, 0]);
  t.deepEqual(JSON.parse(r.outputs[0]!), { seen: ["a", "c"] });
  t.is(r.outputs[1], "");
});

test("a batch whose input type differs from the worker's is refused per item", async (t) => {
  const { gw } = await setup(t, { inputType: "doubles", predict: await fixture("sum-doubles.ts") });
  const { identity } = await gw.acceptRegistration(1);
  const r = await roundTrip(gw, identity, 1, [frames.text("x")], { inputType: "strings" });
  t.deepEqual(r.items.map((i) => i.code), [3]);
  t.regex(r.items[0]!.message, /does not match/);
});

test("ReregisterWorker makes the worker register again and take the new replica id", async (t) => {
  const { gw, worker } = await setup(t, { inputType: "doubles", predict: await fixture("sum-doubles.ts") });
  const first = await gw.acceptRegistration(1);
  await eventually(() => worker.replicaId() === 1, "replica id 1");
  await gw.send(first.identity, { kind: { $case: "reregister", value: {} } });
  const again = await gw.acceptRegistration(2);
  t.is(again.value.modelName, "m");
  await eventually(() => worker.replicaId() === 2, "replica id 2");
  t.is(worker.replicaId(), 2);
});

test("a gateway that never answers makes the worker reconnect with a new identity", async (t) => {
  const { gw } = await setup(t, { inputType: "doubles", predict: await fixture("sum-doubles.ts"), evictionTimeoutMs: 150 });
  const first = await gw.next("register");
  const other = await gw.next("register", (r) => !r.identity.equals(first.identity));
  t.is(other.value.modelName, "m");
});

test("after the gateway restarts, the worker registers again", async (t) => {
  const { gw, worker } = await setup(t, { inputType: "doubles", predict: await fixture("sum-doubles.ts") });
  await gw.acceptRegistration(1, 50, 200);
  await eventually(() => worker.replicaId() === 1, "replica id 1");
  gw.close();
  // Down until the worker's watchdog has given up the session (longer than the eviction timeout).
  await eventually(() => worker.replicaId() === null, "the worker to drop the silent session");
  const gw2 = await FakeGateway.start(gw.endpoint);
  t.teardown(() => gw2.close());
  // Either a fresh registration, or beats from an identity the new gateway
  // doesn't know, which it answers with ReregisterWorker (heartbeat.proto).
  const first = await gw2.nextOf(["register", "beat"]);
  if (first.kind === "beat") await gw2.send(first.identity, { kind: { $case: "reregister", value: {} } });
  else await gw2.send(first.identity, { kind: { $case: "registered", value: { replicaId: 2, heartbeatIntervalMs: 50, evictionTimeoutMs: 5_000 } } });
  if (first.kind === "beat") await gw2.acceptRegistration(2);
  await eventually(() => worker.replicaId() === 2, "replica id 2 from the new gateway");
  const r = await roundTrip(gw2, (await gw2.next("beat")).identity, 1, [frames.doubles([2, 3])]);
  t.deepEqual(r.outputs, ["5"]);
});

/** A model held until the test releases it, reporting each call. */
function gatedModel(): { predict: PredictFn; calls: () => number; started: Promise<void>; release: () => void } {
  let calls = 0;
  let release = (): void => {};
  let markStarted = (): void => {};
  const gate = new Promise<void>((r) => (release = r));
  const started = new Promise<void>((r) => (markStarted = r));
  const predict: PredictFn = async (inputs) => {
    calls++;
    markStarted();
    await gate;
    return inputs.map(() => "done");
  };
  return { predict, calls: () => calls, started, release: () => release() };
}

test("with concurrency 1 a second batch waits for the first, and beats report the load", async (t) => {
  const model = gatedModel();
  const { gw } = await setup(t, { inputType: "strings", predict: model.predict, concurrency: 1 });
  const { identity } = await gw.acceptRegistration(1, 20);
  const batch = (batchId: number, n: number) =>
    gw.send(identity, { kind: { $case: "batch", value: { batchId, deadlineUnixMicros: 0, itemDeadlinesUnixMicros: [], inputType: "strings" } } }, Array.from({ length: n }, () => frames.text("x")));
  await batch(1, 2);
  await batch(2, 3);
  const beat = await gw.next("beat", (b) => b.value.pendingItems === 5);
  t.is(beat.value.inFlight, 1);
  t.is(model.calls(), 1);
  model.release();
  await gw.next("result", (r) => r.value.batchId === 1);
  await gw.next("result", (r) => r.value.batchId === 2);
  t.is(model.calls(), 2);
});

test("drain announces DrainWorker, finishes the batch in flight and one the gateway sent before it heard of the drain, then closes", async (t) => {
  const model = gatedModel();
  const { gw, worker } = await setup(t, { inputType: "strings", predict: model.predict });
  const { identity } = await gw.acceptRegistration(1);
  await gw.send(identity, { kind: { $case: "batch", value: { batchId: 1, deadlineUnixMicros: 0, itemDeadlinesUnixMicros: [], inputType: "" } } }, [frames.text("a")]);
  await model.started;
  const drained = worker.drain("test");
  const notice = await gw.next("drain");
  t.is(notice.value.reason, "test");
  // Crossed the DrainWorker on the wire: run, not refused (its callers would fail).
  await gw.send(identity, { kind: { $case: "batch", value: { batchId: 2, deadlineUnixMicros: 0, itemDeadlinesUnixMicros: [], inputType: "" } } }, [frames.text("b"), frames.text("c")]);
  await new Promise((r) => setTimeout(r, 100));
  model.release();
  const finished = await gw.next("result", (r) => r.value.batchId === 1);
  t.deepEqual(finished.value.items, [{ code: 0, message: "" }]);
  t.deepEqual(finished.payloads.map(String), ["done"]);
  const crossed = await gw.next("result", (r) => r.value.batchId === 2);
  t.deepEqual(crossed.payloads.map(String), ["done", "done"]);
  await drained;
  t.deepEqual(await worker.closed, { kind: "stopped", reason: "test" });
  t.is(worker.replicaId(), null);
});

test("a DrainWorker from the gateway drains and closes the worker", async (t) => {
  const { gw, worker } = await setup(t, { inputType: "doubles", predict: await fixture("sum-doubles.ts") });
  const { identity } = await gw.acceptRegistration(1);
  await gw.send(identity, { kind: { $case: "drain", value: { reason: "version deleted" } } });
  const notice = await gw.next("drain");
  t.is(notice.value.reason, "version deleted");
  t.deepEqual(await worker.closed, { kind: "drained", reason: "version deleted" });
});

test("a model call past the model timeout has its items answered DEADLINE_EXCEEDED; if it never returns, the worker stops as hung", async (t) => {
  const hangs: PredictFn = (inputs) => (inputs.includes("hang") ? new Promise(() => {}) : inputs);
  const { gw, worker } = await setup(t, { inputType: "strings", predict: hangs, modelTimeoutMs: 200 });
  const { identity } = await gw.acceptRegistration(1);
  const stuck = await roundTrip(gw, identity, 1, [frames.text("a"), frames.text("hang")]);
  t.deepEqual(stuck.items.map((i) => i.code), [4, 4]);
  t.regex(stuck.items[0]!.message, /did not return within 200 ms/);
  t.is(stuck.modelError, "", "a timeout is not a model error");
  const exit = await worker.closed;
  t.is(exit.kind, "hung");
});

test("a model call that returns after the model timeout but within as long again leaves the worker serving", async (t) => {
  const slow: PredictFn = async (inputs) => {
    if (inputs.includes("slow")) await new Promise((resolve) => setTimeout(resolve, 300));
    return inputs;
  };
  const { gw, worker } = await setup(t, { inputType: "strings", predict: slow, modelTimeoutMs: 200 });
  const { identity } = await gw.acceptRegistration(1);
  const late = await roundTrip(gw, identity, 1, [frames.text("slow")]);
  t.deepEqual(late.items.map((i) => i.code), [4]);
  // The slot frees once the model returns; the next batch is served.
  const next = await roundTrip(gw, identity, 2, [frames.text("b")]);
  t.deepEqual(next.outputs, ["b"]);
  t.is(worker.replicaId(), 1);
});

test("a DrainWorker instead of WorkerRegistered is a refused registration", async (t) => {
  const { gw, worker } = await setup(t, { inputType: "doubles", predict: await fixture("sum-doubles.ts") });
  const reg = await gw.next("register");
  await gw.send(reg.identity, { kind: { $case: "drain", value: { reason: "registration refused: unknown input type" } } });
  t.deepEqual(await worker.closed, { kind: "refused", reason: "registration refused: unknown input type" });
});

test("startWorker refuses an unknown input type, a zero concurrency and a model name with a separator", (t) => {
  const base = { model: "m", version: "1", gateway: "tcp://127.0.0.1:1", predict: async () => [], log };
  t.throws(() => startWorker({ ...base, inputType: "tensor" }), { instanceOf: TypeError, message: /not a valid input type/ });
  t.throws(() => startWorker({ ...base, inputType: "doubles", concurrency: 0 }), { instanceOf: TypeError, message: /concurrency/ });
  t.throws(() => startWorker({ ...base, model: "a:b", inputType: "doubles" }), { instanceOf: TypeError, message: /model/ });
});
