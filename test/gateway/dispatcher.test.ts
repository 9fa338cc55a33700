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
function setup(maxBatchWaitMs: number, costMs: (items: number) => number = (n) => 50 + n) {
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
    identity: Buffer.from([1, 2, 3]), dialect: "native", modelName: "m", modelVersion: "1", inputType: "doubles", slots: 1, maxBatchSize: Infinity,
    link, liveness: { heartbeatMs: 1_000, evictAfterMs: 3_000, silentWhileBusy: false }, now: Date.now(),
  });
  for (let round = 0; round < 8; round++) for (const n of [1, 2, 4, 8, 16, 32]) replica.latency.observe(n, costMs(n));
  const task = (): Task => ({
    deadline: clock + 10_000, settled: false, input: Buffer.alloc(8), traceparent: "", traceContext: null, queueSpan: null, enqueuedAt: 0, attempts: 0,
    complete(_o: TaskOutcome) {},
  });
  const answer = (batch: SentBatch): void => {
    clock += costMs(batch.tasks.length);
    dispatcher.batchAnswered(replica, batch.id, batch.tasks.map((): TaskOutcome => ({ kind: "value", output: "x" })), costMs(batch.tasks.length));
  };
  const flush = (): Promise<void> => new Promise((r) => setImmediate(r));
  return { dispatcher, sent, task, answer, flush, replica };
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
