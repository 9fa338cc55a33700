import test from "ava";
import type { BatchRequest } from "../../gen/clipper/v1/heartbeat.js";
import { runBatch, type BatchJob, type PredictFn } from "../../worker/batch-executor.js";

const request = (extra: Partial<BatchRequest> = {}): BatchRequest => ({ batchId: 1, deadlineUnixMicros: 0, itemDeadlinesUnixMicros: [], inputType: "", ...extra });
const job = (predict: PredictFn, extra: Partial<BatchJob> = {}): BatchJob => ({ inputType: "strings", predict, maxBatchSize: 0, ...extra });
const text = (...xs: string[]): Buffer[] => xs.map((x) => Buffer.from(x));

test("strings are sent as is and other values as their JSON text", async (t) => {
  const outputs = ["plain", { a: [1, 2] }, 3.5, null, true];
  const r = await runBatch(job(async () => outputs), request(), text("1", "2", "3", "4", "5"));
  t.deepEqual(r.outputs.map(String), ["plain", '{"a":[1,2]}', "3.5", "null", "true"]);
  t.true(r.items.every((i) => i.code === 0));
  t.is(r.modelError, null);
});

test("outputs that are not JSON values fail only their item", async (t) => {
  const r = await runBatch(job(async () => [undefined, 10n, "ok"]), request(), text("a", "b", "c"));
  t.deepEqual(r.items.map((i) => i.code), [13, 13, 0]);
  t.regex(r.items[0]!.message, /undefined/);
  t.regex(r.items[1]!.message, /JSON/);
});

test("a returned Error with a gRPC code keeps that code", async (t) => {
  const bad = Object.assign(new Error("not an image"), { code: 3 });
  const r = await runBatch(job(async () => [bad, new Error("boom")]), request(), text("a", "b"));
  t.deepEqual(r.items, [
    { code: 3, message: "not an image" },
    { code: 13, message: "boom" },
  ]);
});

test("a synchronous throw, a non-array and a non-Error throw fail the batch, never reject", async (t) => {
  const sync: PredictFn = () => {
    throw new Error("sync");
  };
  for (const [predict, pattern] of [
    [sync, /^sync$/],
    [async () => "nope", /not an array/],
    [async () => Promise.reject("plain string"), /plain string/],
  ] as const) {
    const r = await runBatch(job(predict), request(), text("a", "b"));
    t.deepEqual(r.items.map((i) => i.code), [13, 13]);
    t.regex(r.items[0]!.message, pattern);
    t.regex(r.modelError ?? "", pattern);
  }
});

test("a batch larger than max batch size is split into model calls of that size", async (t) => {
  const sizes: number[] = [];
  const r = await runBatch(
    job(async (inputs) => {
      sizes.push(inputs.length);
      return inputs;
    }, { maxBatchSize: 2 }),
    request(),
    text("a", "b", "c", "d", "e"),
  );
  t.deepEqual(sizes, [2, 2, 1]);
  t.deepEqual(r.outputs.map(String), ["a", "b", "c", "d", "e"]);
});

test("per-item deadlines are compared with the injected clock; 0 means none", async (t) => {
  const seen: unknown[] = [];
  const r = await runBatch(
    job(async (inputs) => {
      seen.push(...inputs);
      return inputs;
    }, { nowMicros: () => 1_000 }),
    request({ itemDeadlinesUnixMicros: [999, 0, 1_000, 1_001] }),
    text("a", "b", "c", "d"),
  );
  t.deepEqual(r.items.map((i) => i.code), [4, 0, 4, 0]);
  t.deepEqual(seen, ["b", "d"]);
});

test("no model call happens when every item is expired or invalid", async (t) => {
  let calls = 0;
  const r = await runBatch(
    job(async (inputs) => {
      calls++;
      return inputs;
    }, { inputType: "doubles", nowMicros: () => 10 }),
    request({ itemDeadlinesUnixMicros: [5] }),
    [Buffer.alloc(8), Buffer.alloc(3)],
  );
  t.is(calls, 0);
  t.deepEqual(r.items.map((i) => i.code), [4, 3]);
});

test("the batch's input type may be any Clipper spelling of the worker's", async (t) => {
  const r = await runBatch(job(async (i) => i), request({ inputType: "str" }), text("x"));
  t.is(r.items[0]!.code, 0);
});
