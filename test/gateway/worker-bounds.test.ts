/**
 * What a worker sends is bounded: a real worker RPC on 127.0.0.1 and a
 * peer written here with ZeroMQ, speaking the native dialect (and Clipper
 * v3 for names). No process but this one.
 */
import test from "ava";
import { status } from "@grpc/grpc-js";
import { pino } from "pino";
import { Registry } from "prom-client";
import { Dealer } from "zeromq";
import { decodeGatewayMessage, encodeWorkerMessage } from "../../core/wire/native.js";
import type { WorkerMessage } from "../../gen/clipper/v1/heartbeat.js";
import { Dispatcher } from "../../gateway/dispatcher.js";
import { GatewayMetrics } from "../../gateway/metrics.js";
import { ReplicaRegistry } from "../../gateway/replica-registry.js";
import { MAX_WORKER_CONCURRENCY } from "../../gateway/rpc/native.js";
import { WorkerRpc } from "../../gateway/rpc/worker-rpc.js";
import type { Task, TaskOutcome } from "../../gateway/task.js";
import { eventually } from "../helpers/processes.js";

const log = pino({ level: "silent" });

async function setup(t: { teardown(fn: () => unknown): void }, maxMessageBytes = 1 << 20, evictionMs = 5_000) {
  const registry = new ReplicaRegistry(log);
  const dispatcher = new Dispatcher(registry, log, { queueCapacity: 100, batchSizeOf: () => -1, metrics: new GatewayMetrics(new Registry()), maxBatchWaitMs: 0 });
  const rpc = new WorkerRpc(registry, dispatcher, log, { host: "127.0.0.1", port: 0, evictionMs, maxMessageBytes });
  await rpc.start();
  registry.startSweeping(50);
  const peer = new Dealer({ linger: 0 });
  peer.connect(`tcp://127.0.0.1:${rpc.port}`);
  t.teardown(async () => {
    peer.close();
    registry.stopSweeping();
    await rpc.close();
  });
  const send = (message: WorkerMessage, payloads: Buffer[] = []) => peer.send(encodeWorkerMessage(message, payloads));
  const receive = async () => {
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no message within 5 s")), 5_000).unref());
    const frames = await Promise.race([peer.receive(), timeout]);
    const decoded = decodeGatewayMessage(frames);
    if (!decoded.ok) throw new Error(decoded.error);
    return decoded.value;
  };
  const register = async (concurrency = 1) => {
    await send({ kind: { $case: "register", value: { modelName: "m", modelVersion: "1", inputType: "doubles", maxBatchSize: 0, concurrency, description: "", curvePublicKey: Buffer.alloc(0), registrationProof: Buffer.alloc(0) } } });
    const reply = await receive();
    if (reply.message.kind?.$case !== "registered") throw new Error(`not registered: ${JSON.stringify(reply.message)}`);
  };
  /** Enqueues one query and waits for its batch to reach the peer; resolves with the batch id and the query's outcome to come. */
  const ask = async (deadlineMs = 5_000) => {
    let done: (o: TaskOutcome) => void = () => {};
    const outcome = new Promise<TaskOutcome>((resolve) => (done = resolve));
    const task: Task = {
      deadline: Date.now() + deadlineMs, settled: false, input: Buffer.alloc(8), traceparent: "", traceContext: null, queueSpan: null, enqueuedAt: 0, attempts: 0,
      complete: (o) => done(o),
    };
    if (dispatcher.enqueue("m", "1", task) !== "queued") throw new Error("not queued");
    const batch = await receive();
    if (batch.message.kind?.$case !== "batch") throw new Error(`expected a batch, got ${JSON.stringify(batch.message)}`);
    return { batchId: batch.message.kind.value.batchId, outcome };
  };
  return { registry, dispatcher, send, receive, register, ask, port: rpc.port };
}

test("a worker's declared concurrency is capped", async (t) => {
  const s = await setup(t);
  await s.register(1_000_000);
  t.is([...s.registry.all()][0]?.slots, MAX_WORKER_CONCURRENCY);
});

test("an item marked OK without an output frame is an error, not an empty output", async (t) => {
  const s = await setup(t);
  await s.register();
  const { batchId, outcome } = await s.ask();
  await s.send({ kind: { $case: "result", value: { batchId, items: [{ code: 0, message: "" }], modelMicros: 1, modelError: "", waitMicros: 0 } } });
  t.like(await outcome, { kind: "failed", code: status.INTERNAL, message: "the worker marked the item OK but sent no output" });
});

test("an item status outside the gRPC codes becomes INTERNAL", async (t) => {
  const s = await setup(t);
  await s.register();
  const { batchId, outcome } = await s.ask();
  await s.send({ kind: { $case: "result", value: { batchId, items: [{ code: 99, message: "odd" }], modelMicros: 1, modelError: "", waitMicros: 0 } } }, [Buffer.alloc(0)]);
  t.like(await outcome, { kind: "failed", code: status.INTERNAL, message: "the worker reported unknown status code 99: odd" });
});

test("a peer that sends a frame over the limit is cut off: that answer never arrives, and its replica goes", async (t) => {
  const s = await setup(t, 1024, 1_000);
  await s.register();
  const small = await s.ask();
  await s.send({ kind: { $case: "result", value: { batchId: small.batchId, items: [{ code: 0, message: "" }], modelMicros: 1, modelError: "", waitMicros: 0 } } }, [Buffer.alloc(512, 0x61)]);
  t.like(await small.outcome, { kind: "value" }, "an output under the limit is taken");
  const big = await s.ask();
  await s.send({ kind: { $case: "result", value: { batchId: big.batchId, items: [{ code: 0, message: "" }], modelMicros: 1, modelError: "", waitMicros: 0 } } }, [Buffer.alloc(4096, 0x61)]);
  t.true(await eventually(() => s.registry.size === 0, 15_000), "the peer, cut off, fell silent and was evicted");
  // Its batch went back to the queue: no answer, and certainly not the oversized output.
  const settled = await Promise.race([big.outcome, Promise.resolve(null)]);
  t.true(settled === null || settled.kind !== "value", JSON.stringify(settled));
});

test("a Clipper v3 container whose name holds a key separator is not registered; a good name is", async (t) => {
  const s = await setup(t);
  const hex = (h: string): Buffer => Buffer.from(h, "hex");
  const container = async (name: string): Promise<void> => {
    const d = new Dealer({ linger: 0 });
    t.teardown(() => d.close());
    d.connect(`tcp://127.0.0.1:${s.port}`);
    // NewContainer (type 0): name, version, input type 3 (doubles), RPC version 3 (clipper.md §4).
    await d.send([Buffer.alloc(0), hex("00000000"), Buffer.from(name), Buffer.from("1"), Buffer.from("3"), hex("03000000")]);
  };
  await container("bad,name");
  await container("good");
  t.true(await eventually(() => s.registry.size > 0, 5_000));
  t.deepEqual([...s.registry.all()].map((r) => r.modelName), ["good"]);
});
