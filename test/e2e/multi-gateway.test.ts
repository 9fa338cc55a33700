/**
 * One worker serving two gateways that share one Redis (issue: scale-out):
 * real gateway processes, a real worker process given both endpoints.
 */
import test from "ava";
import { join } from "node:path";
import { execFile } from "node:child_process";
import { credentials } from "@grpc/grpc-js";
import { HeartbeatClient, type Worker } from "../../gen/clipper/v1/heartbeat.js";
import { call } from "../helpers/grpc.js";
import { eventually, reusablePortFlags, ROOT, spawnBin, startGatewayProcess, untilReady, type Proc } from "../helpers/processes.js";
import { Stack } from "../helpers/stack.js";

const PROBE = join(ROOT, "test/fixtures/models/concurrency-probe.js");

let stack: Stack;
let second: Awaited<ReturnType<typeof startGatewayProcess>>;
let worker: Proc;

test.before(async () => {
  stack = await Stack.start();
  second = await startGatewayProcess(stack.redis.url, await reusablePortFlags()); // restarted on its ports later
  await untilReady(second.http);
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

async function listAt(grpcPort: number): Promise<Worker[] | null> {
  const client = new HeartbeatClient(`127.0.0.1:${grpcPort}`, credentials.createInsecure());
  try {
    const r = await call<unknown, { workers: Worker[] }>(client, "listWorkers", { modelName: "probe" });
    return r.ok ? r.value.workers : null;
  } finally {
    client.close();
  }
}

async function workersAt(grpcPort: number): Promise<number> {
  return (await listAt(grpcPort))?.length ?? -1;
}

/** `clipper status --json` against management and one gateway (bounded). */
function status(gateway: { grpc: number; http: number }): Promise<{ code: number; json: any; stderr: string }> {
  const flags = ["--management", `127.0.0.1:${stack.management.grpcPort}`, "--gateway", `127.0.0.1:${gateway.grpc}`, "--gateway-http", `127.0.0.1:${gateway.http}`];
  return new Promise((resolve) => {
    execFile(process.execPath, ["bin/clipper.js", "status", "--json", ...flags], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, json: stdout === "" ? null : JSON.parse(stdout), stderr }),
    );
  });
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

test.serial("each gateway's ListWorkers names itself and the one worker; clipper status counts the fleet through either gateway", async (t) => {
  t.true(await eventually(async () => (await workersAt(stack.gateway.grpc)) === 1 && (await workersAt(second.grpc)) === 1, 20_000), "registered with both");
  const [a, b] = [(await listAt(stack.gateway.grpc))![0]!, (await listAt(second.grpc))![0]!];
  t.not(a.gatewayId, "");
  t.not(b.gatewayId, "");
  t.not(a.gatewayId, b.gatewayId, "each connection names its own gateway");
  t.not(a.workerId, "");
  t.is(a.workerId, b.workerId, "one worker process behind both connections");
  for (const gw of [stack.gateway, second]) {
    const r = await status(gw);
    t.is(r.code, 0, r.stderr);
    t.deepEqual(r.json.fleet, { gateways: 2, workers: 1, connections: 2 });
    t.is(r.json.workers, 1, "this gateway's own connections");
    t.deepEqual(r.json.apps.map((x: any) => [x.name, x.liveReplicas]), [["p-app", 1]], "the worker counts once");
  }
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
  // A worker may register before the gateway's first catalog load, and until
  // that load calls get 503 by design: wait as a readiness probe would.
  await untilReady(http);
  const a = await predictAt(http, 3000);
  t.is(a.status, 200);
  t.is(a.isDefault, false);
  t.is(await workersAt(stack.gateway.grpc), 1, "and still with the other");
});
