/**
 * The predictor on its own: a real dispatcher and cache, a catalog given as
 * plain data, and a replica whose link hands each batch to the test, which
 * answers it. No process, socket or Redis.
 */
import test from "ava";
import { status } from "@grpc/grpc-js";
import { pino } from "pino";
import { Registry } from "prom-client";
import type { CallContext } from "../../core/call-context.js";
import { DEFAULT_MODEL_POLICY, type ModelPolicy } from "../../core/deployment-layout.js";
import { ServingError } from "../../core/errors.js";
import { PredictionCache } from "../../gateway/cache.js";
import type { CatalogApp, CatalogModel } from "../../gateway/catalog.js";
import { Dispatcher } from "../../gateway/dispatcher.js";
import { GatewayMetrics } from "../../gateway/metrics.js";
import { NO_MODEL_EXPLANATION, Predictor, SLO_EXPLANATION, type AppDirectory } from "../../gateway/predictor.js";
import type { Replica, SentBatch } from "../../gateway/replica.js";
import { ReplicaRegistry } from "../../gateway/replica-registry.js";
import type { TaskOutcome } from "../../gateway/task.js";

const APP: CatalogApp = { name: "a", inputType: "doubles", defaultOutput: "fallback", latencySloMicros: 5_000_000, linkedModels: ["m"] };
const MODEL: CatalogModel = { name: "m", version: "1", inputType: "doubles", batchSize: -1, valid: true };

/** A caller: its own deadline, and a way to make it go away. */
function caller(deadline = Infinity) {
  const controller = new AbortController();
  const ctx: CallContext = {
    transport: "grpc",
    deadline,
    signal: controller.signal,
    metadata: new Map(),
    peer: "test",
    onCancel(listener) {
      if (controller.signal.aborted) {
        listener();
        return () => {};
      }
      controller.signal.addEventListener("abort", listener, { once: true });
      return () => controller.signal.removeEventListener("abort", listener);
    },
  };
  return { ctx, cancel: () => controller.abort() };
}

function setup(options: { app?: CatalogApp; replicas?: number; queueCapacity?: number; policy?: ModelPolicy; loaded?: boolean } = {}) {
  const app = options.app ?? APP;
  const log = pino({ level: "silent" });
  const registry = new ReplicaRegistry(log);
  const metrics = new GatewayMetrics(new Registry());
  const dispatcher = new Dispatcher(registry, log, { queueCapacity: options.queueCapacity ?? 100, batchSizeOf: () => -1, metrics, maxBatchWaitMs: 0 });
  const catalog: AppDirectory = {
    app: (name) => (name === app.name ? app : undefined),
    model: (name, version) => (name === MODEL.name && version === MODEL.version ? MODEL : undefined),
    brokenApp: () => undefined,
    policy: () => options.policy ?? DEFAULT_MODEL_POLICY,
    currentVersion: (model) => (model === MODEL.name ? MODEL.version : undefined),
    loaded: options.loaded ?? true,
  };
  const predictor = new Predictor(catalog, dispatcher, new PredictionCache(1 << 20), metrics);
  const batches: { replica: Replica; batch: SentBatch }[] = [];
  let waiting: (() => void) | null = null;
  const link = {
    async sendBatch(replica: Replica, batch: SentBatch) {
      batches.push({ replica, batch });
      waiting?.();
      return true;
    },
    dismiss() {},
  };
  for (let i = 0; i < (options.replicas ?? 1); i++) {
    registry.add({
      identity: Buffer.from([i]), dialect: "native", modelName: "m", modelVersion: "1", inputType: "doubles", slots: 1, maxBatchSize: Infinity,
      link, liveness: { heartbeatMs: 1_000, evictAfterMs: 3_000, silentWhileBusy: false }, now: Date.now(),
    }, i);
  }
  /** The next batch sent to a replica (waits for it). */
  const nextBatch = async (): Promise<{ replica: Replica; batch: SentBatch }> => {
    while (batches.length === 0) await new Promise<void>((resolve) => (waiting = resolve));
    waiting = null;
    return batches.shift()!;
  };
  const answer = (sent: { replica: Replica; batch: SentBatch }, outcome: (input: Buffer) => TaskOutcome): void => {
    dispatcher.batchAnswered(sent.replica, sent.batch.id, sent.batch.tasks.map((task) => outcome(task.input)));
  };
  const input = (x: number): Buffer => Buffer.from(new Float64Array([x]).buffer);
  const predict = (x: number, ctx = caller().ctx) => predictor.predict(predictor.target("a", ""), input(x), ctx);
  return { predictor, registry, dispatcher, batches, nextBatch, answer, predict };
}

const value = (output: string) => (): TaskOutcome => ({ kind: "value", output });

test("a model's output answers the caller and fills the cache", async (t) => {
  const s = setup();
  const first = s.predict(1);
  s.answer(await s.nextBatch(), value("one"));
  t.like(await first, { output: "one", isDefault: false, model: "m", modelVersion: "1" });
  t.like(await s.predict(1), { output: "one", isDefault: false });
  t.is(s.batches.length, 0, "the second call was answered from the cache");
});

test("identical queries in flight share one task", async (t) => {
  const s = setup();
  const calls = [s.predict(2), s.predict(2), s.predict(2)];
  const sent = await s.nextBatch();
  t.is(sent.batch.tasks.length, 1);
  s.answer(sent, value("two"));
  for (const p of await Promise.all(calls)) t.is(p.output, "two");
});

test("with coalescing off, identical queries in flight each reach the model", async (t) => {
  const s = setup({ policy: { cache: true, coalesce: false } });
  const calls = [s.predict(2), s.predict(2)];
  let tasks = 0;
  let draws = 0;
  while (tasks < 2) {
    const sent = await s.nextBatch();
    tasks += sent.batch.tasks.length;
    s.answer(sent, () => ({ kind: "value", output: `draw ${++draws}` }));
  }
  t.is(tasks, 2, "two model calls, not one shared");
  t.deepEqual((await Promise.all(calls)).map((p) => p.output).sort(), ["draw 1", "draw 2"]);
});

test("with the cache off, a repeated query reaches the model again", async (t) => {
  const s = setup({ policy: { cache: false, coalesce: true } });
  const first = s.predict(4);
  s.answer(await s.nextBatch(), value("a"));
  t.is((await first).output, "a");
  const second = s.predict(4);
  s.answer(await s.nextBatch(), value("b"));
  t.is((await second).output, "b", "not the stored answer");
});

test("a model error reaches the leader and the callers sharing its query", async (t) => {
  const s = setup();
  const calls = [s.predict(3), s.predict(3)];
  s.answer(await s.nextBatch(), () => ({ kind: "failed", code: status.INVALID_ARGUMENT, message: "cannot handle 3" }));
  for (const result of await Promise.allSettled(calls)) {
    t.is(result.status, "rejected");
    const err = (result as PromiseRejectedResult).reason as ServingError;
    t.is(err.code, status.INVALID_ARGUMENT);
    t.is(err.reason, "MODEL_ERROR");
    t.regex(err.message, /model m:1 failed: cannot handle 3/);
  }
});

test("when the leading caller cancels, a caller sharing its query asks again and is answered", async (t) => {
  const s = setup({ replicas: 2 });
  const leader = caller();
  const led = s.predict(4, leader.ctx);
  const first = await s.nextBatch();
  const follower = s.predict(4);
  leader.cancel();
  await t.throwsAsync(led, { instanceOf: ServingError, message: /cancelled/ });
  t.true(first.batch.tasks[0]!.settled, "the abandoned task is skipped by the dispatcher");
  const again = await s.nextBatch();
  t.not(again.batch.tasks[0], first.batch.tasks[0], "the follower leads a new task");
  s.answer(again, value("four"));
  t.is((await follower).output, "four");
});

test("the SLO passing gives the app's default; the caller's own earlier deadline gives DEADLINE_EXCEEDED", async (t) => {
  const s = setup({ app: { ...APP, latencySloMicros: 20_000 } });
  t.like(await s.predict(5), { output: "fallback", isDefault: true, defaultExplanation: SLO_EXPLANATION });
  await t.throwsAsync(s.predict(6, caller(Date.now() + 10).ctx), { instanceOf: ServingError, message: /deadline/ });
});

test("with no replica the default answers at once; a deadline already passed is DEADLINE_EXCEEDED", async (t) => {
  const s = setup({ replicas: 0 });
  t.like(await s.predict(7), { output: "fallback", isDefault: true, defaultExplanation: NO_MODEL_EXPLANATION });
  await t.throwsAsync(s.predict(7, caller(Date.now() - 1).ctx), { instanceOf: ServingError, message: /deadline/ });
});

test("a full queue refuses with QUEUE_FULL and a retry-after", async (t) => {
  const s = setup({ queueCapacity: 1 });
  const running = s.predict(8);
  await s.nextBatch();
  const queued = s.predict(9);
  const err = await t.throwsAsync(s.predict(10), { instanceOf: ServingError });
  t.is(err?.code, status.RESOURCE_EXHAUSTED);
  t.is(err?.reason, "QUEUE_FULL");
  t.is(err?.headers?.["retry-after"], "1");
  t.regex(err?.message ?? "", /queue of model m:1 is full/);
  void running.catch(() => {});
  void queued.catch(() => {});
});

test("a query the worker could not run in time gives the default when the SLO bounds it", async (t) => {
  const s = setup({ app: { ...APP, latencySloMicros: 200_000 } });
  const call = s.predict(11);
  s.answer(await s.nextBatch(), () => ({ kind: "expired", message: "deadline passed before the model ran" }));
  t.like(await call, { isDefault: true, defaultExplanation: SLO_EXPLANATION });
});

test("a query whose model version is deleted while it waits is UNAVAILABLE", async (t) => {
  const s = setup();
  const running = s.predict(12);
  await s.nextBatch();
  const waiting = s.predict(13);
  await new Promise((r) => setImmediate(r));
  s.dispatcher.modelVersionRemoved("m", "1");
  const err = await t.throwsAsync(waiting, { instanceOf: ServingError });
  t.is(err?.code, status.UNAVAILABLE);
  t.regex(err?.message ?? "", /model m:1 was deleted/);
  void running.catch(() => {});
});

test("an unknown app is NOT_FOUND once the catalog has loaded, and UNAVAILABLE (retry) before its first load", (t) => {
  t.like(t.throws(() => setup().predictor.target("nope", "")), { code: status.NOT_FOUND, reason: "APP_NOT_FOUND" });
  const starting = t.throws(() => setup({ loaded: false }).predictor.target("nope", ""));
  t.like(starting, { code: status.UNAVAILABLE, reason: "STORE_UNAVAILABLE" });
  t.regex(starting?.message ?? "", /not loaded its catalog/);
});
