import test from "ava";
import { pino } from "pino";
import { Registry } from "prom-client";
import { Dispatcher } from "../../gateway/dispatcher.js";
import { GatewayMetrics } from "../../gateway/metrics.js";
import type { Replica, SentBatch } from "../../gateway/replica.js";
import { ReplicaRegistry } from "../../gateway/replica-registry.js";
import type { Task, TaskOutcome } from "../../gateway/task.js";
import { eventually } from "../helpers/processes.js";

/** A dispatcher over one replica whose latency model already knows its cost per batch (default 50 ms + 1 ms per item). */
function setup(maxBatchWaitMs: number, costMs: (items: number) => number = (n) => 50 + n, dialect: Replica["dialect"] = "native") {
  const log = pino({ level: "silent" });
  const registry = new ReplicaRegistry(log);
  const sent: SentBatch[] = [];
  // The dispatcher's clock: each answer takes as long as the trained model says.
  let clock = Date.now();
  const dispatcher = new Dispatcher(registry, log, { queueCapacity: 1000, batchSizeOf: () => -1, metrics: new GatewayMetrics(new Registry()), maxBatchWaitMs, now: () => clock });
  const link = {
    async sendBatch(_r: Replica, batch: SentBatch) {
      sent.push(batch);
      return true;
    },
    dismiss() {},
  };
  const replica: Replica = registry.add({
    identity: Buffer.from([1, 2, 3]), dialect, modelName: "m", modelVersion: "1", inputType: "doubles", slots: 1, maxBatchSize: Infinity,
    link, liveness: { heartbeatMs: 1_000, evictAfterMs: 3_000, silentWhileBusy: false }, now: Date.now(),
  }, 0);
  for (let round = 0; round < 8; round++) for (const n of [1, 2, 4, 8, 16, 32]) replica.latency.observe(n, costMs(n));
  const task = (): Task => ({
    deadline: clock + 10_000, settled: false, input: Buffer.alloc(8), traceparent: "", traceContext: null, queueSpan: null, enqueuedAt: 0, attempts: 0,
    complete(_o: TaskOutcome) {},
  });
  /** Answers a batch after the time the trained model says; the worker reports `modelMs` of it as the model's own (all of it by default). */
  const answer = (batch: SentBatch, modelMs = costMs(batch.tasks.length)): void => {
    clock += costMs(batch.tasks.length);
    dispatcher.batchAnswered(replica, batch.id, batch.tasks.map((): TaskOutcome => ({ kind: "value", output: "x" })), modelMs);
  };
  const flush = (): Promise<void> => new Promise((r) => setImmediate(r));
  return { dispatcher, sent, task, answer, flush, replica, due: (ms: number): Task => ({ ...task(), deadline: clock + ms }) };
}

/** Sends a batch of eight, answers it, then offers one more query. */
async function oneAfterBatchOfEight({ dispatcher, sent, task, answer, flush }: ReturnType<typeof setup>): Promise<void> {
  for (let i = 0; i < 8; i++) dispatcher.enqueue("m", "1", task());
  await flush();
  answer(sent[0]!);
  dispatcher.enqueue("m", "1", task());
  await flush();
}

test.serial("a lone caller never waits: after a batch of one the next query goes out at once", async (t) => {
  const { dispatcher, sent, task, answer, flush } = setup(2_000);
  dispatcher.enqueue("m", "1", task());
  await flush();
  t.is(sent.length, 1);
  answer(sent[0]!);
  dispatcher.enqueue("m", "1", task());
  await flush();
  t.is(sent.length, 2);
  t.is(sent[1]!.tasks.length, 1);
});

test.serial("after a batch of several, a free replica waits for the returning callers and sends them together", async (t) => {
  const { dispatcher, sent, task, answer, flush } = setup(2_000);
  for (let i = 0; i < 8; i++) dispatcher.enqueue("m", "1", task());
  await flush();
  t.is(sent.length, 1);
  t.is(sent[0]!.tasks.length, 8);
  answer(sent[0]!);
  dispatcher.enqueue("m", "1", task());
  dispatcher.enqueue("m", "1", task());
  await flush();
  t.is(sent.length, 1, "two queries are held while eight callers are expected back");
  for (let i = 0; i < 7; i++) dispatcher.enqueue("m", "1", task());
  await flush();
  t.is(sent.length, 1, "still one caller short");
  dispatcher.enqueue("m", "1", task());
  await flush();
  t.is(sent.length, 2, "the batch leaves as soon as the callers are back");
  t.is(sent[1]!.tasks.length, 10);
});

test.serial("a hold ends by itself when the callers do not come back", async (t) => {
  const s = setup(20);
  const { sent } = s;
  await oneAfterBatchOfEight(s);
  t.is(sent.length, 1);
  t.true(await eventually(() => sent.length === 2, 5_000, 5));
  t.is(sent[1]!.tasks.length, 1);
});

test.serial("a model too cheap for merging to pay is never held", async (t) => {
  const s = setup(2_000, (n) => 0.2 + 0.01 * n);
  const { sent } = s;
  await oneAfterBatchOfEight(s);
  t.is(sent.length, 2);
});

test.serial("with the wait set to 0 nothing is ever held", async (t) => {
  const s = setup(0);
  const { sent } = s;
  await oneAfterBatchOfEight(s);
  t.is(sent.length, 2);
});

test.serial("once callers are seen to return slowly, a free replica stops waiting for them", async (t) => {
  const s = setup(20);
  const { dispatcher, sent, task, answer, flush } = s;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  let answered = 0;
  const answerAll = async (): Promise<void> => {
    while (answered < sent.length) {
      answer(sent[answered++]!);
      await flush();
    }
  };
  for (let i = 0; i < 8; i++) dispatcher.enqueue("m", "1", task());
  await flush();
  await answerAll();
  // The eight callers come back 10 ms apart: 70 ms or more in all, far past the 20 ms a hold may last.
  for (let i = 0; i < 8; i++) {
    dispatcher.enqueue("m", "1", task());
    await sleep(10);
  }
  t.true(await eventually(() => sent.length > answered, 5_000, 5));
  await answerAll();
  // A batch of several is answered again; its callers are now expected to take too long.
  for (let i = 0; i < 8; i++) dispatcher.enqueue("m", "1", task());
  await flush();
  await answerAll();
  t.true(sent[sent.length - 1]!.tasks.length > 1);
  const before = sent.length;
  dispatcher.enqueue("m", "1", task());
  await flush();
  t.is(sent.length, before + 1, "the query went out at once instead of waiting for callers that return slowly");
});

test.serial("open-loop arrivals at 75 % of capacity are answered in time by the dispatcher", async (t) => {
  // A 5 ms + 0.1 ms/item model with a 50 ms SLO can answer 8 queries per ms
  // in time; 6 arrive per ms, for 3 s of the dispatcher's own clock.
  const log = pino({ level: "silent" });
  const registry = new ReplicaRegistry(log);
  const start = Date.now();
  let clock = start;
  const dispatcher = new Dispatcher(registry, log, { queueCapacity: 100_000, batchSizeOf: () => -1, metrics: new GatewayMetrics(new Registry()), maxBatchWaitMs: 0, now: () => clock });
  const sent: SentBatch[] = [];
  const replica = registry.add({
    identity: Buffer.from([9]), dialect: "native", modelName: "m", modelVersion: "1", inputType: "doubles", slots: 1, maxBatchSize: Infinity,
    link: { sendBatch: async (_r: Replica, batch: SentBatch) => (sent.push(batch), true), dismiss() {} },
    liveness: { heartbeatMs: 1_000, evictAfterMs: 3_000, silentWhileBusy: false }, now: start,
  }, 0);
  let onTime = 0;
  let late = 0;
  const arrive = (deadline: number): Task => ({
    deadline, settled: false, input: Buffer.alloc(8), traceparent: "", traceContext: null, queueSpan: null, enqueuedAt: 0, attempts: 0,
    complete(o: TaskOutcome) {
      if (o.kind === "value" && clock <= deadline) onTime++;
      else late++;
    },
  });
  const flush = (): Promise<void> => new Promise((r) => setImmediate(r));
  let next = start;
  const arrivals = (): void => {
    for (; next <= clock; next += 1 / 6) dispatcher.enqueue("m", "1", arrive(next + 50));
  };
  while (clock < start + 3_000) {
    arrivals();
    await flush();
    const batch = sent.shift();
    if (batch === undefined) {
      clock = next;
      continue;
    }
    const ms = 5 + 0.1 * batch.tasks.length;
    clock += ms;
    arrivals();
    dispatcher.batchAnswered(replica, batch.id, batch.tasks.map((): TaskOutcome => ({ kind: "value", output: "x" })), ms);
  }
  const share = onTime / (onTime + late);
  t.log(`answered in time: ${(100 * share).toFixed(1)} % of ${onTime + late}`);
  t.true(onTime + late > 15_000, `only ${onTime + late} queries were settled`);
  t.true(share > 0.95, `in time: ${share}`);
});

/** A dispatcher on the real clock (forgetting waits for real deadlines) and a way to register replicas of m:1. */
function forgetSetup() {
  const log = pino({ level: "silent" });
  const registry = new ReplicaRegistry(log);
  const dispatcher = new Dispatcher(registry, log, { queueCapacity: 100, batchSizeOf: () => -1, metrics: new GatewayMetrics(new Registry()), maxBatchWaitMs: 0 });
  const sent: SentBatch[] = [];
  let nextIdentity = 0;
  const addReplica = (): Replica =>
    registry.add({
      identity: Buffer.from([nextIdentity++]), dialect: "native", modelName: "m", modelVersion: "1", inputType: "doubles", slots: 4, maxBatchSize: Infinity,
      link: { sendBatch: async (_r: Replica, batch: SentBatch) => (sent.push(batch), true), dismiss() {} },
      liveness: { heartbeatMs: 1_000, evictAfterMs: 3_000, silentWhileBusy: false }, now: Date.now(),
    }, nextIdentity);
  const outcomes: TaskOutcome[] = [];
  const task = (deadline: number): Task => ({
    deadline, settled: false, input: Buffer.alloc(8), traceparent: "", traceContext: null, queueSpan: null, enqueuedAt: 0, attempts: 0,
    complete(o: TaskOutcome) {
      outcomes.push(o);
    },
  });
  const pools = (): string[] => [...dispatcher.queueDepths()].map((d) => `${d.model}:${d.version}`);
  const flush = (): Promise<void> => new Promise((r) => setImmediate(r));
  return { registry, dispatcher, sent, addReplica, task, outcomes, pools, flush };
}

test.serial("a pool whose last replica left with batches in flight is forgotten once the tasks put back are gone", async (t) => {
  const { registry, dispatcher, sent, addReplica, task, outcomes, pools, flush } = forgetSetup();
  const replica = addReplica();
  const settledByCaller = task(Date.now() + 200);
  t.is(dispatcher.enqueue("m", "1", task(Date.now() + 300)), "queued");
  t.is(dispatcher.enqueue("m", "1", settledByCaller), "queued");
  await flush();
  t.is(sent.reduce((n, b) => n + b.tasks.length, 0), 2, "both tasks are in flight");
  // The replica leaves before answering: its tasks go back to the queue, and the gateway asks to forget the version.
  registry.remove(replica, "disconnected");
  t.false(dispatcher.forgetPool("m", "1"), "two tasks are still queued");
  t.deepEqual(pools(), ["m:1"]);
  // The caller of one gives up (its SLO passed); the other one expires in the queue.
  settledByCaller.settled = true;
  t.true(await eventually(() => pools().length === 0, 5_000), "the pool is forgotten once its queue is empty");
  t.deepEqual(outcomes.map((o) => o.kind), ["expired"], "the live task was answered as expired, the settled one left quietly");
  t.is(dispatcher.enqueue("m", "1", task(Date.now() + 1_000)), "no-replica");
});

test.serial("a replica that registers while the tasks put back are queued serves them and keeps its pool", async (t) => {
  const { registry, dispatcher, sent, addReplica, task, outcomes, pools, flush } = forgetSetup();
  const first = addReplica();
  const deadline = Date.now() + 200;
  dispatcher.enqueue("m", "1", task(deadline));
  await flush();
  registry.remove(first, "disconnected");
  t.false(dispatcher.forgetPool("m", "1"));
  const second = addReplica();
  await flush();
  t.is(sent.length, 2, "the task put back went to the new replica");
  t.true(dispatcher.batchAnswered(second, sent[1]!.id, [{ kind: "value", output: "x" }]));
  t.deepEqual(outcomes.map((o) => o.kind), ["value"]);
  // Past the deadline the forget would have looked again, the pool is still there for its replica.
  await new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now()) + 100));
  t.deepEqual(pools(), ["m:1"]);
  t.is(dispatcher.replicaCount("m", "1"), 1);
  // Its leaving with nothing in flight forgets the pool at once (empty first, replica last).
  registry.remove(second, "drained");
  t.true(dispatcher.forgetPool("m", "1"));
  t.deepEqual(pools(), []);
});

test.serial("admission: a query the queries ahead would keep past its deadline is refused as overloaded; one with time enough is queued", async (t) => {
  const { dispatcher, sent, task, flush } = setup(0);
  // The replica is busy with one batch; 100 queries wait behind it.
  dispatcher.enqueue("m", "1", task());
  await flush();
  t.is(sent.length, 1);
  for (let i = 0; i < 100; i++) t.is(dispatcher.enqueue("m", "1", task()), "queued");
  const due = (ms: number): Task => ({ ...task(), deadline: Date.now() + ms });
  // 200 ms left: batches within 92 ms hold about 40 items (50 ms + 1 ms each), so 100 ahead take ~230 ms.
  t.is(dispatcher.enqueue("m", "1", due(200)), "overloaded");
  t.is(dispatcher.enqueue("m", "1", due(10_000)), "queued");
});

/** Runs batches of one back to back for `ms` of the dispatcher's clock, the worker reporting `modelMs` of each as model time. */
async function history(s: ReturnType<typeof setup>, ms: number, modelMs: number): Promise<void> {
  const until = s.due(ms).deadline;
  while (s.due(0).deadline < until) {
    s.dispatcher.enqueue("m", "1", s.task());
    await s.flush();
    s.answer(s.sent[s.sent.length - 1]!, modelMs);
  }
}

/** After `ms` of history, the replica busy with one batch and 100 queries waiting: what a query with 200 ms left gets. */
async function offeredBehindHundred(s: ReturnType<typeof setup>, modelMs: number): Promise<string> {
  await history(s, 1_500, modelMs);
  s.dispatcher.enqueue("m", "1", s.task());
  await s.flush();
  for (let i = 0; i < 100; i++) s.dispatcher.enqueue("m", "1", s.task());
  return s.dispatcher.enqueue("m", "1", s.due(200));
}

test.serial("admission: while the workers report their replicas mostly idle, a queue is not refused as overloaded, whatever the round trips say", async (t) => {
  // Round trips of 51 ms a batch, of which the worker says the model took 2 ms:
  // the time went elsewhere (a gateway short of CPU), and the model is idle.
  t.is(await offeredBehindHundred(setup(0), 2), "queued");
  // The same round trips, all of them the model's: busy, and refused as before.
  t.is(await offeredBehindHundred(setup(0), 51), "overloaded");
  // A Clipper container reports no model time: admission predicts as before.
  t.is(await offeredBehindHundred(setup(0, undefined, "clipper-v3"), 2), "overloaded");
});

test.serial("admission: a model too slow for a query's deadline refuses nothing (it is slow, not overloaded: the query is doomed as before)", async (t) => {
  const { dispatcher, sent, task, flush } = setup(0);
  dispatcher.enqueue("m", "1", task());
  await flush();
  t.is(sent.length, 1);
  for (let i = 0; i < 100; i++) dispatcher.enqueue("m", "1", task());
  // 30 ms left, and one item takes 51 ms.
  t.is(dispatcher.enqueue("m", "1", { ...task(), deadline: Date.now() + 30 }), "queued");
});
