/**
 * One worker serving two gateways that share one Redis (issue: scale-out):
 * real gateway processes, a real worker process given both endpoints.
 */
import test from "ava";
import { join } from "node:path";
import { credentials } from "@grpc/grpc-js";
import { HeartbeatClient } from "../../gen/clipper/v1/heartbeat.js";
import { call } from "../helpers/grpc.js";
import { eventually, ROOT, spawnBin, startGatewayProcess, type Proc } from "../helpers/processes.js";
import { Stack } from "../helpers/stack.js";

const PROBE = join(ROOT, "test/fixtures/models/concurrency-probe.js");

let stack: Stack;
let second: Awaited<ReturnType<typeof startGatewayProcess>>;
let worker: Proc;

test.before(async () => {
  stack = await Stack.start();
  second = await startGatewayProcess(stack.redis.url);
  await stack.deploy("p-app", "probe", "1", "doubles", { sloMicros: 5_000_000 });
  worker = spawnBin(
    "clipper-worker",
    ["--model", "probe", "--version", "1", "--module", PROBE, "--concurrency", "1", "--gateway", `tcp://127.0.0.1:${stack.gateway.rpc},tcp://localhost:${second.rpc}`],
    { CLIPPER_LOG_LEVEL: "info" },
  );
  stack.workers.push(worker);
});

test.after.always(async () => {
  await second?.proc.stop("SIGKILL");
  await stack?.close();
});

async function workersAt(grpcPort: number): Promise<number> {
  const client = new HeartbeatClient(`127.0.0.1:${grpcPort}`, credentials.createInsecure());
  try {
    const r = await call<unknown, { workers: unknown[] }>(client, "listWorkers", { modelName: "probe" });
    return r.ok ? r.value.workers.length : -1;
  } finally {
    client.close();
  }
}

async function predictAt(httpPort: number, x: number): Promise<{ status: number; output: unknown; isDefault: unknown }> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/p-app/predict`, { method: "POST", body: JSON.stringify({ input: [x] }) });
  const json = (await res.json()) as { output: unknown; default: unknown };
  return { status: res.status, output: json.output, isDefault: json.default };
}

test.serial("one worker registers with both gateways and answers calls arriving at each, never running more batches than its concurrency", async (t) => {
  t.true(await eventually(async () => (await workersAt(stack.gateway.grpc)) === 1 && (await workersAt(second.grpc)) === 1, 20_000), "registered with both");
  // 20 concurrent calls per gateway, distinct inputs (no cache, no coalescing).
  const calls = Array.from({ length: 40 }, (_, i) => predictAt(i % 2 === 0 ? stack.gateway.http : second.http, 1000 + i));
  const answers = await Promise.all(calls);
  const byGateway = [0, 1].map((g) => answers.filter((a, i) => i % 2 === g && a.status === 200 && a.isDefault === false).length);
  t.deepEqual(byGateway, [20, 20], "every call answered by the model, through both gateways");
  // The probe answers with the most model calls it ever saw at once: the
  // two gateways together never pushed it past --concurrency 1.
  t.true(answers.every((a) => a.output === 1), `max concurrent model calls: ${[...new Set(answers.map((a) => a.output))].join(",")}`);
});

test.serial("with one gateway killed the worker keeps serving through the other, and re-attaches when it returns", async (t) => {
  const { grpc, http, rpc } = second;
  await second.proc.stop("SIGKILL");
  for (let i = 0; i < 10; i++) {
    const a = await predictAt(stack.gateway.http, 2000 + i);
    t.is(a.status, 200);
    t.is(a.isDefault, false, "answered by the model through the surviving gateway");
  }
  // The same ports again (later flags win): the worker's session for that
  // address reconnects and registers with the new process.
  second = await startGatewayProcess(stack.redis.url, ["--grpc-port", String(grpc), "--http-port", String(http), "--rpc-port", String(rpc)]);
  t.true(await eventually(async () => (await workersAt(grpc)) === 1, 30_000), "registered again with the restarted gateway");
  const a = await predictAt(http, 3000);
  t.is(a.status, 200);
  t.is(a.isDefault, false);
  t.is(await workersAt(stack.gateway.grpc), 1, "and still with the other");
});
