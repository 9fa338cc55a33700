// The Python worker (worker/python/clipper_worker) as a real process against
// a real ZeroMQ ROUTER playing the gateway: the wire fields it sends and the
// per-item rules of the native dialect, as the TypeScript worker keeps them.
import test from "ava";
import { spawn } from "node:child_process";
import type { BatchRequest } from "../../gen/clipper/v1/heartbeat.js";
import { Proc, ROOT, workerArgs } from "../helpers/processes.js";
import { PYTHON, pythonWorkerEnv, spawnPythonWorker } from "../helpers/python-worker.js";
import { FakeGateway, frames } from "./fake-gateway.js";

const farFuture = (): number => (Date.now() + 60_000) * 1000;

async function serve(t: import("ava").ExecutionContext, inputType: string, extra: string[] = []): Promise<{ gw: FakeGateway; w: Proc }> {
  const gw = await FakeGateway.start();
  const w = spawnPythonWorker(workerArgs({ model: "m", version: "1", inputType, gateway: gw.endpoint, module: "test/fixtures/python/describe.py" }, ["--heartbeat-ms", "50", ...extra]));
  t.teardown(async () => {
    await w.stop("SIGKILL");
    gw.close();
  });
  return { gw, w };
}

async function roundTrip(gw: FakeGateway, identity: Buffer, batchId: number, payloads: Buffer[], extra: Partial<BatchRequest> = {}) {
  await gw.send(identity, { kind: { $case: "batch", value: { batchId, deadlineUnixMicros: 0, itemDeadlinesUnixMicros: [], inputType: "", ...extra } } }, payloads);
  const result = await gw.next("result", (r) => r.value.batchId === batchId);
  return { ...result.value, outputs: result.payloads.map((p) => p.toString("utf8")) };
}

test("registers as the TypeScript worker does, and skips items past their deadline without running them", async (t) => {
  const { gw } = await serve(t, "Doubles", ["--max-batch-size", "8", "--concurrency", "2"]);
  const reg = await gw.acceptRegistration(3);
  t.like(reg.value, { modelName: "m", modelVersion: "1", inputType: "Doubles", maxBatchSize: 8, concurrency: 2 });
  t.regex(reg.value.description, /python=.*describe\.py/);
  t.regex(reg.value.workerId, /^[0-9a-f-]{36}$/);
  t.is(reg.value.curvePublicKey.length, 0);
  t.is(reg.value.registrationProof.length, 0);
  const past = (Date.now() - 1_000) * 1000;
  const r = await roundTrip(gw, reg.identity, 1, [frames.doubles([1, 2.5]), frames.doubles([3]), frames.doubles([])], {
    itemDeadlinesUnixMicros: [farFuture(), past, 0],
  });
  t.deepEqual(r.items.map((i) => i.code), [0, 4, 0]);
  t.is(r.items[1]!.message, "deadline passed before the model ran");
  t.deepEqual([r.outputs[0], r.outputs[2]], ["float64:1.0,2.5", "float64:"]);
  t.is(r.modelError, "");
  t.true(r.modelMicros > 0);
  t.true(r.waitMicros >= 0);
  // Beats follow at the interval the gateway named, with the load report: nothing left once the batch is answered.
  const beat = await gw.next("beat", (b) => b.value.pendingItems === 0);
  t.is(beat.value.inFlight, 0);
});

test("a returned exception fails only its item; a raise or the wrong number of outputs fails the call (model_error)", async (t) => {
  const { gw } = await serve(t, "strings");
  const { identity } = await gw.acceptRegistration(1);
  const item = await roundTrip(gw, identity, 1, [frames.text("a"), frames.text("item-error"), frames.text("b")]);
  t.deepEqual(item.items.map((i) => i.code), [0, 3, 0]);
  t.is(item.items[1]!.message, "this item is bad");
  t.deepEqual([item.outputs[0], item.outputs[2]], ["text:a", "text:b"]);
  t.is(item.modelError, "");
  const raised = await roundTrip(gw, identity, 2, [frames.text("a"), frames.text("raise")]);
  t.deepEqual(raised.items.map((i) => i.code), [13, 13]);
  t.is(raised.modelError, "asked to raise");
  const wrong = await roundTrip(gw, identity, 3, [frames.text("none"), frames.text("x")]);
  t.deepEqual(wrong.items.map((i) => i.code), [13, 13]);
  t.regex(wrong.modelError, /returned 0 outputs for 2 inputs; it must return one output per input/);
  // Input that is not what the worker takes is an item error, as is a batch of another input type.
  const bad = await roundTrip(gw, identity, 4, [Buffer.from([0xff, 0xfe]), frames.text("ok")]);
  t.deepEqual(bad.items.map((i) => i.code), [3, 0]);
  t.is(bad.items[0]!.message, "string input is not valid UTF-8");
  const other = await roundTrip(gw, identity, 5, [frames.text("x")], { inputType: "doubles" });
  t.deepEqual(other.items.map((i) => i.code), [3]);
});

test("floats, ints and bytes reach the model as float32, int32 and bytes", async (t) => {
  for (const [type, payload, want] of [
    ["floats", frames.floats([0.5, -2]), "float32:0.5,-2.0"],
    ["ints", frames.ints([7, -1]), "int32:7,-1"],
    ["bytes", Buffer.from("hi"), "bytes:6869"],
  ] as const) {
    const { gw } = await serve(t, type);
    const { identity } = await gw.acceptRegistration(1);
    const r = await roundTrip(gw, identity, 1, [payload]);
    t.deepEqual(r.outputs, [want], type);
  }
});

test("SIGTERM drains: DrainWorker first, the running batch and one that crossed the drain on the wire are answered, exit 0", async (t) => {
  const { gw, w } = await serve(t, "strings");
  const { identity } = await gw.acceptRegistration(1);
  await gw.send(identity, { kind: { $case: "batch", value: { batchId: 1, deadlineUnixMicros: 0, itemDeadlinesUnixMicros: [], inputType: "" } } }, [frames.text("sleep:600")]);
  // The batch is on the model (sleeping) when the signal comes.
  await new Promise((r) => setTimeout(r, 150));
  w.child.kill("SIGTERM");
  const drain = await gw.next("drain");
  t.is(drain.value.reason, "signal");
  // Sent before the gateway heard of the drain: run, not refused (its callers would fail).
  const late = await roundTrip(gw, identity, 2, [frames.text("x")]);
  t.deepEqual(late.items.map((i) => i.code), [0]);
  t.deepEqual(late.outputs, ["text:x"]);
  const first = await gw.next("result", (r) => r.value.batchId === 1);
  t.deepEqual(first.payloads.map((p) => p.toString()), ["slept"]);
  t.is(await w.waitExit(15_000), 0);
});

test("--model-timeout-ms: a call past it is answered DEADLINE_EXCEEDED, and a model that stays hung makes the worker exit 1", async (t) => {
  const { gw, w } = await serve(t, "strings", ["--model-timeout-ms", "200"]);
  const { identity } = await gw.acceptRegistration(1);
  const r = await roundTrip(gw, identity, 1, [frames.text("sleep:20000")]);
  t.deepEqual(r.items.map((i) => i.code), [4]);
  t.regex(r.items[0]!.message, /did not return within 200 ms/);
  t.is(await w.waitExit(15_000), 1);
  t.regex(w.output, /model hangs; stopping the worker/);
});

test("usage: bad flags exit 2 naming the flag; a missing module exits 2 saying so; --help exits 0", async (t) => {
  const bad = spawnPythonWorker(["--model", "m", "--version", "1", "--module", "x.py", "--concurency", "2"]);
  t.is(await bad.waitExit(15_000), 2);
  t.regex(bad.output, /unknown option '--concurency'/);
  const count = spawnPythonWorker(["--model", "m", "--version", "1", "--module", "x.py", "--concurrency", "two"]);
  t.is(await count.waitExit(15_000), 2);
  t.regex(count.output, /--concurrency: 'two' is not a whole number/);
  const env = spawnPythonWorker(["--module", "x.py"], { CLIPPER_MODEL_NAME: "a:b", CLIPPER_MODEL_VERSION: "1" });
  t.is(await env.waitExit(15_000), 2);
  t.regex(env.output, /--model: the model name 'a:b' must not contain ',' or ':'/);
  const missing = spawnPythonWorker(["--model", "m", "--version", "1", "--module", "test/fixtures/python/nope.py"]);
  t.is(await missing.waitExit(15_000), 2);
  t.regex(missing.output, /model module .*nope\.py does not exist/);
  const help = spawnPythonWorker(["--help"]);
  t.is(await help.waitExit(15_000), 0);
  t.regex(help.output, /--model-timeout-ms VALUE {2}\[CLIPPER_MODEL_TIMEOUT_MS\]/);
});

test("--exit-with-stdin: the Python worker and the TypeScript one exit when their stdin pipe closes", async (t) => {
  const gw = await FakeGateway.start();
  t.teardown(() => gw.close());
  const common = ["--model", "m", "--version", "1", "--gateway", gw.endpoint, "--exit-with-stdin"];
  const procs = [
    new Proc(spawn(PYTHON, ["-m", "clipper_worker", ...common, "--module", "test/fixtures/python/sum.py"], { cwd: ROOT, env: pythonWorkerEnv(), stdio: ["pipe", "pipe", "pipe"] })),
    new Proc(spawn(process.execPath, ["bin/clipper-worker.js", ...common, "--module", "test/fixtures/models/sum.js"], { cwd: ROOT, env: pythonWorkerEnv(), stdio: ["pipe", "pipe", "pipe"] })),
  ];
  for (const p of procs) {
    t.teardown(() => p.stop("SIGKILL"));
    await p.waitFor(/connecting to/);
    p.child.stdin!.write("anything written is ignored\n");
    p.child.stdin!.end();
  }
  for (const p of procs) {
    t.is(await p.waitExit(15_000), 1);
    t.regex(p.output, /standard input closed: the process that started this one is gone; exiting/);
  }
});

test("several gateways, one by host name: the Python worker registers with each under one worker id", async (t) => {
  const [a, b] = [await FakeGateway.start(), await FakeGateway.start()];
  t.teardown(() => {
    a.close();
    b.close();
  });
  const byName = b.endpoint.replace("127.0.0.1", "localhost");
  const w = spawnPythonWorker(["--model", "m", "--version", "1", "--gateway", `${a.endpoint},${byName}`, "--module", "test/fixtures/python/sum.py", "--heartbeat-ms", "50"]);
  t.teardown(() => w.stop("SIGKILL"));
  const [ra, rb] = await Promise.all([a.acceptRegistration(1), b.acceptRegistration(1)]);
  t.is(ra.value.workerId, rb.value.workerId);
  t.not(ra.value.workerId, "");
  // Batches from either gateway are answered on the connection they came on.
  const [x, y] = await Promise.all([roundTrip(a, ra.identity, 1, [frames.doubles([1, 2])]), roundTrip(b, rb.identity, 2, [frames.doubles([3])])]);
  t.deepEqual([x.outputs, y.outputs], [['{"sum":3.0}'], ['{"sum":3.0}']]);
});
