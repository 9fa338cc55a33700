import { status } from "@grpc/grpc-js";
import test from "ava";
import { pino } from "pino";
import { Registry } from "prom-client";
import { BATCH_TIMEOUT_FLOOR_MS, batchTimeoutMs, Dispatcher } from "../../gateway/dispatcher.js";
import { ModelErrorLog } from "../../gateway/model-error-log.js";
import { wholeBatchError } from "../../gateway/rpc/native.js";
import { GatewayMetrics } from "../../gateway/metrics.js";
import type { Replica, SentBatch } from "../../gateway/replica.js";
import { ReplicaRegistry } from "../../gateway/replica-registry.js";
import type { Task, TaskOutcome } from "../../gateway/task.js";
import { eventually } from "../helpers/processes.js";

/** A dispatcher whose replicas record the batches sent to them; the test answers them. */
function setup(batchTimeoutMs?: number) {
  const log = pino({ level: "silent" });
  const registry = new ReplicaRegistry(log);
  const metrics = new GatewayMetrics(new Registry());
  let clock = Date.now();
  const dispatcher = new Dispatcher(registry, log, { queueCapacity: 1000, batchSizeOf: () => -1, metrics, now: () => clock, ...(batchTimeoutMs === undefined ? {} : { batchTimeoutMs }) });
  const sent: { replica: Replica; batch: SentBatch }[] = [];
  const link = {
    async sendBatch(replica: Replica, batch: SentBatch) {
      sent.push({ replica, batch });
      return true;
    },
    dismiss() {},
  };
  let nextIdentity = 1;
  const addReplica = (): Replica => {
    const replica = registry.add({
      identity: Buffer.from([nextIdentity++]), dialect: "clipper-v3", modelName: "m", modelVersion: "1", inputType: "strings", slots: 1, maxBatchSize: Infinity,
      link, liveness: { heartbeatMs: 1_000, evictAfterMs: 3_000, silentWhileBusy: false }, now: Date.now(),
    });
    // Its latency model already knows its cost (5 ms + 0.1 ms per item), so batches are not capped while it learns.
    for (let round = 0; round < 8; round++) for (const n of [1, 2, 4, 8, 16, 32]) replica.latency.observe(n, 5 + n / 10);
    return replica;
  };
  const outcomes = new Map<string, TaskOutcome>();
  const task = (name: string, deadlineMs = 10_000): Task => ({
    deadline: clock + deadlineMs, settled: false, input: Buffer.from(name), traceparent: "", traceContext: null, queueSpan: null, enqueuedAt: 0, attempts: 0,
    complete(o: TaskOutcome) {
      outcomes.set(name, o);
    },
  });
  /** Answers a batch as a model that throws when "poison" is among its inputs. */
  const run = (s: { replica: Replica; batch: SentBatch }): void => {
    const names = s.batch.tasks.map((t) => t.input.toString());
    const failed = names.includes("poison");
    dispatcher.batchAnswered(s.replica, s.batch.id, names.map((n): TaskOutcome => (failed ? { kind: "failed", code: status.INTERNAL, message: "cannot handle poison", wholeBatch: true } : { kind: "value", output: n })));
  };
  const flush = (): Promise<void> => new Promise((r) => setImmediate(r));
  const names = (s: { batch: SentBatch }): string[] => s.batch.tasks.map((t) => t.input.toString());
  const counter = async (name: string): Promise<number> => (await metrics.registry.getSingleMetric(name)!.get()).values.find((v) => v.labels.model === "m")?.value ?? 0;
  return { dispatcher, registry, sent, addReplica, task, run, flush, names, outcomes, counter, advance: (ms: number) => (clock += ms) };
}

test("a batch that fails as a whole is split in halves until the failing input is alone; only it gets the error", async (t) => {
  const s = setup();
  s.addReplica();
  for (const n of ["a", "b", "poison", "d", "e"]) s.dispatcher.enqueue("m", "1", s.task(n));
  await s.flush();
  t.is(s.sent.length, 1);
  t.deepEqual(s.names(s.sent[0]!), ["a", "b", "poison", "d", "e"]);
  // New work arrives meanwhile: it must not share a batch with the suspects.
  s.dispatcher.enqueue("m", "1", s.task("late"));
  // Each answer frees the only slot, which takes the next part.
  for (let i = 0; i < 20 && s.outcomes.size < 6; i++) {
    s.run(s.sent[s.sent.length - 1]!);
    await s.flush();
  }
  const batches = s.sent.map((x) => s.names(x));
  t.deepEqual(batches, [["a", "b", "poison", "d", "e"], ["a", "b", "poison"], ["d", "e"], ["a", "b"], ["poison"], ["late"]]);
  for (const n of ["a", "b", "d", "e", "late"]) t.deepEqual(s.outcomes.get(n), { kind: "value", output: n });
  t.like(s.outcomes.get("poison"), { kind: "failed", code: status.INTERNAL, message: "cannot handle poison" });
  t.is(await s.counter("clipper_batch_splits_total"), 2);
  t.is(await s.counter("clipper_poison_items_total"), 1);
});

test("a part whose deadline passed is not sent again: its caller is answered as expired", async (t) => {
  const s = setup();
  s.addReplica();
  s.dispatcher.enqueue("m", "1", s.task("poison", 10_000));
  s.dispatcher.enqueue("m", "1", s.task("short", 50));
  await s.flush();
  t.is(s.sent.length, 1);
  s.advance(100);
  s.run(s.sent[0]!);
  await s.flush();
  t.like(s.outcomes.get("short"), { kind: "expired" });
  t.deepEqual(s.sent.slice(1).map((x) => s.names(x)), [["poison"]]);
});

test("a lost replica's batch runs again in halves; an input lost twice goes alone, and is failed when lost alone again", async (t) => {
  const s = setup();
  const first = s.addReplica();
  for (const n of ["a", "b", "c", "killer"]) s.dispatcher.enqueue("m", "1", s.task(n));
  await s.flush();
  t.deepEqual(s.names(s.sent[0]!), ["a", "b", "c", "killer"]);
  // The container exits while running it; a second one takes over.
  s.registry.remove(first, "disconnected");
  let replica = s.addReplica();
  await s.flush();
  t.deepEqual(s.names(s.sent[1]!), ["a", "b"]);
  s.run(s.sent[1]!);
  await s.flush();
  t.deepEqual(s.names(s.sent[2]!), ["c", "killer"]);
  // Killed again: c and killer were lost twice in a row, so each goes alone.
  s.registry.remove(replica, "evicted");
  replica = s.addReplica();
  await s.flush();
  t.deepEqual(s.names(s.sent[3]!), ["c"]);
  s.run(s.sent[3]!);
  await s.flush();
  t.deepEqual(s.names(s.sent[4]!), ["killer"]);
  s.registry.remove(replica, "evicted");
  s.addReplica();
  await s.flush();
  t.is(s.sent.length, 5, "the killer input is not sent again");
  for (const n of ["a", "b", "c"]) t.deepEqual(s.outcomes.get(n), { kind: "value", output: n });
  t.like(s.outcomes.get("killer"), { kind: "failed", code: status.INTERNAL });
  t.regex((s.outcomes.get("killer") as { message: string }).message, /lost or timed out 3 times in a row/);
  t.is(await s.counter("clipper_poison_items_total"), 1);
});

test("an input alone on a replica that is lost once is sent again: one crash may be a coincidence", async (t) => {
  const s = setup();
  const first = s.addReplica();
  s.dispatcher.enqueue("m", "1", s.task("x"));
  await s.flush();
  s.registry.remove(first, "disconnected");
  s.addReplica();
  await s.flush();
  t.is(s.sent.length, 2);
  s.run(s.sent[1]!);
  t.deepEqual(s.outcomes.get("x"), { kind: "value", output: "x" });
});

test("the worker's model_error marks the items of a call that failed as a whole; without it, all items failing alike do", (t) => {
  const item = (code: number, message: string) => ({ code, message });
  t.is(wholeBatchError({ batchId: 1, items: [item(13, "boom"), item(0, "")], modelMicros: 0, modelError: "boom", waitMicros: 0 }), "boom");
  t.is(wholeBatchError({ batchId: 1, items: [item(13, "boom"), item(13, "boom")], modelMicros: 0, modelError: "", waitMicros: 0 }), "boom");
  t.is(wholeBatchError({ batchId: 1, items: [item(13, "boom"), item(13, "other")], modelMicros: 0, modelError: "", waitMicros: 0 }), null, "each item's own error");
  t.is(wholeBatchError({ batchId: 1, items: [item(3, "bad"), item(3, "bad")], modelMicros: 0, modelError: "", waitMicros: 0 }), null, "not a model failure");
  t.is(wholeBatchError({ batchId: 1, items: [item(13, "boom")], modelMicros: 0, modelError: "", waitMicros: 0 }), null, "one item is alone already");
});

test("model errors are logged per model version at most once per interval, with a count", async (t) => {
  const lines: { model: string; errors: number; lastError: string }[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const errors = new ModelErrorLog(log, 100);
  for (let i = 0; i < 50; i++) errors.report("m", "1", `failure ${i}`);
  errors.report("n", "1", "other");
  t.is(lines.length, 2, "the first error of each version at once");
  t.like(lines[0], { model: "m", errors: 1, lastError: "failure 0" });
  t.true(await eventually(() => lines.length >= 3, 5_000, 10), "one summary for the 49 held back");
  t.is(lines.length, 3);
  t.like(lines[2], { model: "m", errors: 49, lastError: "failure 49" });
  errors.close();
});

test("a batch times out after 10x its replica's estimate, at least the floor, at most the cap; the cap alone without an estimate", (t) => {
  t.is(batchTimeoutMs(5, 30_000), BATCH_TIMEOUT_FLOOR_MS);
  t.is(batchTimeoutMs(500, 30_000), 5_000);
  t.is(batchTimeoutMs(5_000, 30_000), 30_000);
  t.is(batchTimeoutMs(Infinity, 30_000), 30_000);
  t.is(batchTimeoutMs(5, 300), 300, "a cap below the floor wins");
});

test("a batch past its timeout quarantines its replica; its items run on another, and the late answer is ignored", async (t) => {
  const s = setup(50);
  const hung = s.addReplica();
  for (const n of ["a", "b"]) s.dispatcher.enqueue("m", "1", s.task(n));
  await s.flush();
  t.is(s.sent.length, 1);
  t.true(await eventually(() => hung.quarantined, 5_000, 5), "quarantined");
  t.is(s.dispatcher.replicaCount("m", "1"), 0, "a quarantined replica does not count as serving");
  t.is(hung.inFlight.size, 0);
  const other = s.addReplica();
  await s.flush();
  t.is(s.sent.length, 2);
  t.is(s.sent[1]!.replica, other);
  t.deepEqual(s.names(s.sent[1]!), ["a"], "run again in halves");
  s.run(s.sent[0]!);
  t.is(s.outcomes.size, 0, "the hung batch's late answer is ignored");
  s.run(s.sent[1]!);
  await s.flush();
  s.run(s.sent[2]!);
  t.deepEqual(s.outcomes.get("a"), { kind: "value", output: "a" });
  t.deepEqual(s.outcomes.get("b"), { kind: "value", output: "b" });
  t.is(hung.phase.name, "quarantined", "still listed until its peer goes");
});
