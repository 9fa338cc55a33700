import test, { type ExecutionContext } from "ava";
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { freePort } from "../helpers/ports.js";
import { eventually, FakeGateway, frames } from "./fake-gateway.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Bound on a process start (tsx compiles on first use) and on its exit, in ms. */
const PROCESS_WAIT_MS = 30_000;

interface Run {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Exit code (null when killed by a signal), bounded by PROCESS_WAIT_MS. */
  exited(): Promise<number | null>;
}

/** Spawns the real `node bin/clipper-worker.js` with a clean CLIPPER_* environment. */
function runWorker(t: ExecutionContext, args: string[], env: Record<string, string> = {}): Run {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("CLIPPER_")));
  const child = spawn(process.execPath, ["bin/clipper-worker.js", ...args], { cwd: ROOT, env: { ...clean, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited: () =>
      Promise.race([
        exit,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`worker did not exit within ${PROCESS_WAIT_MS} ms; stderr: ${err}`)), PROCESS_WAIT_MS).unref()),
      ]),
  };
}

const flags = (gateway: string): string[] => ["--model", "cli-model", "--input-type", "strings", "--gateway", gateway, "--module", "test/fixtures/describe-inputs.ts", "--heartbeat-ms", "100"];

/** A fake gateway and the CLI worker connected to it, once the worker's first RegisterWorker has arrived. */
async function registering(t: ExecutionContext, args: (gateway: string) => string[], env: Record<string, string> = {}) {
  const gw = await FakeGateway.start();
  t.teardown(() => gw.close());
  const run = runWorker(t, args(gw.endpoint), env);
  const reg = await gw.next("register", undefined, PROCESS_WAIT_MS);
  return { gw, run, reg };
}

test("the CLI registers, answers a batch, and drains and exits 0 on SIGTERM", async (t) => {
  const { gw, run, reg } = await registering(t, flags, { CLIPPER_MODEL_VERSION: "3" });
  t.like(reg.value, { modelName: "cli-model", modelVersion: "3", inputType: "strings", concurrency: 1, maxBatchSize: 0 });
  t.regex(reg.value.description, /module=.*describe-inputs\.ts/);
  await gw.send(reg.identity, { kind: { $case: "registered", value: { replicaId: 5, heartbeatIntervalMs: 100, evictionTimeoutMs: 5_000 } } });
  await eventually(() => /"replicaId":5.*"msg":"worker registered"/.test(run.stdout()), "the 'worker registered' log line");

  await gw.send(reg.identity, { kind: { $case: "batch", value: { batchId: 42, deadlineUnixMicros: 0, itemDeadlinesUnixMicros: [], inputType: "strings" } } }, [frames.text("hello"), frames.text("world")]);
  const result = await gw.next("result", (r) => r.value.batchId === 42);
  t.deepEqual(result.value.items.map((i) => i.code), [0, 0]);
  t.deepEqual(result.payloads.map(String), ["HELLO", "WORLD"]);

  run.child.kill("SIGTERM");
  const drain = await gw.next("drain");
  t.deepEqual(drain.identity, reg.identity);
  t.is(await run.exited(), 0);
});

test("the CLI exits 0 when the gateway drains it", async (t) => {
  const { gw, run, reg } = await registering(t, (gateway) => [...flags(gateway), "--version", "1"]);
  await gw.send(reg.identity, { kind: { $case: "registered", value: { replicaId: 1, heartbeatIntervalMs: 100, evictionTimeoutMs: 5_000 } } });
  await gw.send(reg.identity, { kind: { $case: "drain", value: { reason: "version deleted" } } });
  t.is(await run.exited(), 0);
});

test("the CLI exits 1 when the gateway refuses its registration", async (t) => {
  const { gw, run, reg } = await registering(t, (gateway) => [...flags(gateway), "--version", "1"]);
  await gw.send(reg.identity, { kind: { $case: "drain", value: { reason: "registration refused: test" } } });
  t.is(await run.exited(), 1);
  t.regex(run.stdout(), /gateway refused the registration/);
});

test("a worker started before its gateway keeps retrying and registers once the gateway is up", async (t) => {
  const endpoint = `tcp://127.0.0.1:${await freePort()}`;
  const run = runWorker(t, [...flags(endpoint), "--version", "1"]);
  // Past the default 3 s silence, so the worker has reconnected at least once.
  await eventually(() => run.stdout().includes("gateway silent, reconnecting"), "a reconnect log line", PROCESS_WAIT_MS);
  const gw = await FakeGateway.start(endpoint);
  t.teardown(() => gw.close());
  const reg = await gw.next("register", undefined, PROCESS_WAIT_MS);
  t.is(reg.value.modelName, "cli-model");
  t.is(run.child.exitCode, null);
});

test("a second signal exits at once, even with a batch still running", async (t) => {
  const gw = await FakeGateway.start();
  t.teardown(() => gw.close());
  const args = ["--model", "stuck", "--version", "1", "--input-type", "strings", "--gateway", gw.endpoint, "--module", "test/fixtures/never-answers.ts"];
  const run = runWorker(t, args);
  const reg = await gw.acceptRegistration(1);
  await gw.send(reg.identity, { kind: { $case: "batch", value: { batchId: 1, deadlineUnixMicros: 0, itemDeadlinesUnixMicros: [], inputType: "" } } }, [frames.text("x")]);
  await gw.next("beat", (b) => b.value.inFlight === 1, PROCESS_WAIT_MS);
  run.child.kill("SIGTERM");
  await gw.next("drain");
  run.child.kill("SIGTERM");
  t.not(await run.exited(), 0);
});

const BAD: [string, string[], RegExp][] = [
  ["a missing --model", ["--version", "1", "--module", "test/fixtures/sum-doubles.ts"], /--model is required/],
  ["an unknown input type", ["--model", "m", "--version", "1", "--module", "test/fixtures/sum-doubles.ts", "--input-type", "tensor"], /not a valid input type/],
  ["a gateway that is not tcp://host:port", ["--model", "m", "--version", "1", "--module", "test/fixtures/sum-doubles.ts", "--gateway", "localhost:7000"], /--gateway/],
  ["a model name with a comma", ["--model", "a,b", "--version", "1", "--module", "test/fixtures/sum-doubles.ts"], /must not contain/],
  ["a module file that does not exist", ["--model", "m", "--version", "1", "--module", "test/fixtures/nope.ts"], /does not exist/],
  ["a module without a model function", ["--model", "m", "--version", "1", "--module", "test/fixtures/no-model-export.ts"], /no model function/],
  ["an unknown flag", ["--model", "m", "--colour", "red"], /colour/],
];

for (const [what, args, message] of BAD) {
  test(`${what} exits 2 with a message`, async (t) => {
    const run = runWorker(t, args);
    t.is(await run.exited(), 2);
    t.regex(run.stderr(), message);
  });
}

test("--help exits 0 and lists the flags", async (t) => {
  const run = runWorker(t, ["--help"]);
  t.is(await run.exited(), 0);
  for (const flag of ["--model", "--version", "--input-type", "--gateway", "--module", "--concurrency", "--max-batch-size", "--heartbeat-ms"]) t.true(run.stdout().includes(flag), flag);
});
