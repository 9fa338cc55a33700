/**
 * The Python worker end to end, on one stack: a gateway process whose worker
 * port runs CURVE (so every Python worker here proves its key in its
 * registration), management, and real `/usr/bin/python3 -m clipper_worker`
 * processes.
 */
import { status } from "@grpc/grpc-js";
import test from "ava";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateKeyPair, writeKeyPair } from "../../core/curve/key-pair.js";
import { WORKER_PORTS_LINE } from "../../core/ports-line.js";
import { PredictRequest } from "../../gen/clipper/v1/predict.js";
import { call } from "../helpers/grpc.js";
import { eventually, workerArgs, type Proc } from "../helpers/processes.js";
import { Scrape } from "../helpers/prometheus.js";
import { spawnPythonWorker } from "../helpers/python-worker.js";
import { Stack } from "../helpers/stack.js";

const dir = mkdtempSync(join(tmpdir(), "clipper-py-"));
let stack: Stack;
let curve: string[];

test.before(async () => {
  const gateway = await writeKeyPair(dir, "gateway", generateKeyPair());
  const workerPair = generateKeyPair();
  const worker = await writeKeyPair(dir, "worker", workerPair);
  writeFileSync(join(dir, "worker-keys"), `${workerPair.publicKey}\n`);
  curve = ["--gateway-public-key", gateway.publicFile, "--curve-secret-key", worker.secretFile];
  // Fast eviction, so a killed replica's batch is re-dispatched well within the SLO.
  stack = await Stack.start(["--curve-secret-key", gateway.secretFile, "--worker-keys", join(dir, "worker-keys"), "--eviction-ms", "600"]);
});

test.after.always(async () => {
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A registered Python worker of `model` version 1 on the stack's gateway. */
async function pythonWorker(model: string, inputType: string, module: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Proc> {
  const w = spawnPythonWorker(workerArgs({ model, version: "1", inputType, gateway: `tcp://127.0.0.1:${stack.gateway.rpc}`, module }, [...curve, ...extra]), env);
  stack.workers.push(w);
  await w.waitFor(/worker registered/);
  return w;
}

const grpcPredict = (req: object, deadlineMs = 10_000) => call<unknown, any>(stack.predict, "predict", PredictRequest.fromPartial(req), { deadlineMs });

let stringsWorker: Proc;

test.serial("every input type over gRPC, transcoded HTTP and Clipper REST", async (t) => {
  const cases: [string, string, Record<string, unknown>, unknown, string][] = [
    ["pd", "doubles", { doubles: [1.5, 2, 3] }, [1.5, 2, 3], "float64:1.5,2.0,3.0"],
    ["pf", "floats", { floats: [0.5, 2] }, [0.5, 2.0], "float32:0.5,2.0"],
    ["pi", "ints", { ints: [1, -2, 3] }, [1, -2, 3], "int32:1,-2,3"],
    ["pb", "bytes", { bytes: Buffer.from("hi").toString("base64") }, Buffer.from("hi").toString("base64"), "bytes:6869"],
    ["ps", "strings", { text: "héllo" }, "héllo", "text:héllo"],
  ];
  // A generous SLO: the gateway's admission must not shed the next test's burst on a replica it has seen run only batches of one.
  await Promise.all(cases.map(([app, type]) => stack.deploy(app, `${app}-model`, "1", type, { sloMicros: 10_000_000 })));
  const workers = await Promise.all(
    cases.map(([app, type]) => pythonWorker(`${app}-model`, type, "test/fixtures/python/describe.py", type === "strings" ? ["--metrics-port", "0"] : [])),
  );
  stringsWorker = workers[4]!;
  for (const [app, , input, clipperInput, expected] of cases) {
    const grpcInput = "bytes" in input ? { bytes: Buffer.from(input.bytes as string, "base64") } : input;
    const g = await grpcPredict({ app, input: grpcInput });
    t.like(g, { ok: true, value: { output: expected, default: false, model: `${app}-model` } }, `${app} gRPC`);
    const h = await stack.http(`/v1/apps/${app}:predict`, { input });
    t.is(h.status, 200, `${app} HTTP ${JSON.stringify(h.json)}`);
    t.is(h.json.output, expected);
    const c = await stack.http(`/${app}/predict`, { input: clipperInput });
    t.is(c.status, 200, `${app} Clipper ${JSON.stringify(c.json)}`);
    t.is(c.json.output, expected);
  }
  // Registered through the CURVE port: ListWorkers shows the key each one proved.
  const listed = await call<unknown, any>(stack.heartbeat, "listWorkers", { modelName: "pd-model" });
  t.true(listed.ok && listed.value.workers.length === 1 && listed.value.workers[0].curvePublicKey.length === 40);
});

test.serial("through the gateway, an item error fails only its caller, a raise only the caller whose input raises", async (t) => {
  const innocent = Array.from({ length: 16 }, (_, i) => grpcPredict({ app: "ps", input: { text: `n${i}` } }));
  const [item, raised] = await Promise.all([grpcPredict({ app: "ps", input: { text: "item-error" } }), grpcPredict({ app: "ps", input: { text: "raise" } })]);
  const rest = await Promise.all(innocent);
  t.like(item, { ok: false, error: { code: status.INVALID_ARGUMENT } });
  if (!item.ok) t.regex(item.error.details, /this item is bad/);
  t.like(raised, { ok: false, error: { code: status.INTERNAL } });
  if (!raised.ok) t.regex(raised.error.details, /asked to raise/);
  t.deepEqual(rest.map((r) => (r.ok ? r.value.output : `failed: ${r.error.details}`)), Array.from({ length: 16 }, (_, i) => `text:n${i}`));
  // The metrics port: the worker's series under the TypeScript worker's names, and the model's own.
  const port = WORKER_PORTS_LINE.read(await stringsWorker.waitFor(WORKER_PORTS_LINE.pattern)).metrics.port;
  const m = await Scrape.of(`http://127.0.0.1:${port}/metrics`);
  const own = { service: "clipper-worker", model: "ps-model", version: "1" };
  t.true((m.value("clipper_worker_model_errors_total", own) ?? 0) >= 1);
  t.true((m.value("clipper_worker_items_total", { ...own, outcome: "ok" }) ?? 0) >= 16);
  // The raise fails at least its own item (error); the returned exception carries INVALID_ARGUMENT (invalid).
  t.true((m.value("clipper_worker_items_total", { ...own, outcome: "error" }) ?? 0) >= 1);
  t.true((m.value("clipper_worker_items_total", { ...own, outcome: "invalid" }) ?? 0) >= 1);
  t.true((m.value("clipper_model_calls_total", own) ?? 0) >= 1);
  t.is((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200);
  t.is((await fetch(`http://127.0.0.1:${port}/metrics`, { method: "POST" })).status, 405);
});

/** `count` calls to app `app`, one every `everyMs`; every outcome. */
async function load(app: string, count: number, during: () => Promise<void>, everyMs = 1): Promise<Map<number, Awaited<ReturnType<typeof grpcPredict>>>> {
  const results = new Map<number, Awaited<ReturnType<typeof grpcPredict>>>();
  const calls = Array.from({ length: count }, async (_, i) => {
    await new Promise((r) => setTimeout(r, i * everyMs));
    results.set(i, await grpcPredict({ app, input: { doubles: [i] } }, 20_000));
  });
  await during();
  await Promise.all(calls);
  return results;
}

test.serial("SIGTERM drains a replica under load: no call fails or falls back to the default, and it exits 0", async (t) => {
  await stack.deploy("drain-app", "drain", "1", "doubles", { sloMicros: 10_000_000 });
  const a = await pythonWorker("drain", "doubles", "test/fixtures/python/sum.py", [], { SUM_DELAY_MS: "20" });
  await pythonWorker("drain", "doubles", "test/fixtures/python/sum.py", [], { SUM_DELAY_MS: "20" });
  let exit = null as number | null;
  // Steady traffic the one remaining replica can carry too (an overloaded gateway would shed some, by design).
  const results = await load("drain-app", 300, async () => {
    await new Promise((r) => setTimeout(r, 300));
    exit = await a.stop("SIGTERM", 20_000);
  }, 3);
  const bad = [...results].filter(([i, r]) => !(r.ok && !r.value.default && JSON.parse(r.value.output).sum === i));
  t.deepEqual(bad.map(([i, r]) => `${i}: ${r.ok ? r.value.output : r.error.details}`), []);
  t.is(results.size, 300);
  t.is(exit, 0);
  t.regex(a.output, /"msg":"worker draining"/);
});

test.serial("kill -9 of one of two replicas under load leaves no call unanswered", async (t) => {
  await stack.deploy("ha-app", "ha", "1", "doubles", { sloMicros: 4_000_000 });
  // The replica to kill holds the first batch it gets, unanswered.
  const a = await pythonWorker("ha", "doubles", "test/fixtures/python/holds_batch.py");
  await pythonWorker("ha", "doubles", "test/fixtures/python/sum.py");
  let held: number[] = [];
  const results = await load("ha-app", 300, async () => {
    held = JSON.parse((await a.waitFor(/holding batch: (\[[^\]]*\])/))[1]!) as number[];
    a.child.kill("SIGKILL");
  });
  const outcomes = [...results.values()];
  t.is(outcomes.filter((r) => !r.ok).length, 0);
  t.true(held.length > 0, "the killed replica had a batch in flight");
  // Only a re-dispatch to the other replica can have answered the held batch's queries with the model's answer.
  for (const i of held) {
    const r = results.get(i);
    t.true(r?.ok === true && !r.value.default && JSON.parse(r.value.output).sum === i, `query ${i} of the held batch: ${JSON.stringify(r)}`);
  }
  t.log(`defaults: ${outcomes.filter((r) => r.ok && r.value.default).length} of 300; held by the killed replica: ${held.length}`);
  t.true(await eventually(async () => {
    const w = await call<unknown, any>(stack.heartbeat, "listWorkers", { modelName: "ha" });
    return w.ok && w.value.workers.length === 1;
  }));
});
