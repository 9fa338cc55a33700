/**
 * A real load balancer in front (issue: scale-out, item 4): real haproxy
 * running deploy/haproxy/haproxy.cfg as shipped, in front of two real
 * gateway processes sharing one Redis, and two real workers, each serving
 * both gateways.
 */
import test from "ava";
import { credentials } from "@grpc/grpc-js";
import { HeartbeatClient } from "../../gen/clipper/v1/heartbeat.js";
import { PredictClient, PredictRequest, type PredictResponse } from "../../gen/clipper/v1/predict.js";
import { call } from "../helpers/grpc.js";
import { TestHaproxy } from "../helpers/haproxy.js";
import { eventually, reusablePortFlags, spawnBin, startGatewayProcess, type Proc } from "../helpers/processes.js";
import { Scrape } from "../helpers/prometheus.js";
import { Stack } from "../helpers/stack.js";

type Gateway = Awaited<ReturnType<typeof startGatewayProcess>>;

let stack: Stack;
let gateways: [Gateway, Gateway];
let lb: TestHaproxy;
let client: PredictClient;

test.before(async () => {
  stack = await Stack.start();
  // The second is killed and restarted on its ports: claim them.
  gateways = [stack.gateway, await startGatewayProcess(stack.redis.url, await reusablePortFlags())];
  await stack.deploy("lb-app", "sum", "1", "doubles", { sloMicros: 10_000_000 });
  const endpoints = gateways.map((g) => `tcp://127.0.0.1:${g.rpc}`).join(",");
  for (let i = 0; i < 2; i++) {
    const w = spawnBin("clipper-worker", ["--model", "sum", "--version", "1", "--input-type", "doubles", "--module", "test/fixtures/models/sum.js", "--gateway", endpoints], { CLIPPER_LOG_LEVEL: "info" });
    stack.workers.push(w);
  }
  for (const g of gateways) if (!(await eventually(async () => (await workersAt(g.grpc)) === 2, 30_000))) throw new Error("workers did not register with both gateways");
  lb = await TestHaproxy.start(gateways);
  if (!(await eventually(async () => (await lb.isUp("gw1")) && (await lb.isUp("gw2")), 20_000))) throw new Error(`haproxy did not see both gateways ready:\n${lb.output}`);
  // One channel: grpc-js holds one HTTP/2 connection to haproxy for all calls.
  client = new PredictClient(`127.0.0.1:${lb.grpcPort}`, credentials.createInsecure());
});

test.after.always(async () => {
  client?.close();
  await lb?.stop();
  await gateways?.[1]?.proc.stop("SIGKILL");
  await stack?.close();
});

async function workersAt(grpcPort: number): Promise<number> {
  const hb = new HeartbeatClient(`127.0.0.1:${grpcPort}`, credentials.createInsecure());
  try {
    const r = await call<unknown, { workers: unknown[] }>(hb, "listWorkers", { modelName: "sum" });
    return r.ok ? r.value.workers.length : -1;
  } finally {
    hb.close();
  }
}

/** Model answers each gateway gave lb-app so far (its clipper_predictions_total, outcome ok). */
async function answeredBy(g: Gateway): Promise<number> {
  const s = await Scrape.of(`http://127.0.0.1:${g.http}/metrics`);
  return s.value("clipper_predictions_total", { app: "lb-app", outcome: "ok" }) ?? 0;
}

async function answeredByEach(): Promise<number[]> {
  return Promise.all(gateways.map(answeredBy));
}

/** One gRPC Predict through haproxy: "ok" when the model answered with the right sum, else what came back. */
async function grpcPredict(x: number): Promise<string> {
  const r = await call<PredictRequest, PredictResponse>(client, "predict", PredictRequest.fromPartial({ app: "lb-app", input: { doubles: [x, 1] } }));
  if (!r.ok) return `grpc ${r.error.code} ${r.error.details}`;
  return !r.value.default && Number(r.value.output) === x + 1 ? "ok" : `grpc answer ${JSON.stringify(r.value)}`;
}

/** One Clipper REST call through haproxy (fetch keeps its connection alive between calls). */
async function restPredict(x: number): Promise<string> {
  try {
    const res = await fetch(`http://127.0.0.1:${lb.httpPort}/lb-app/predict`, { method: "POST", body: JSON.stringify({ input: [x, 1] }) });
    const text = await res.text();
    const json = JSON.parse(text) as { output?: unknown; default?: boolean };
    return res.status === 200 && json.default === false && json.output === x + 1 ? "ok" : `rest ${res.status} ${text}`;
  } catch (err) {
    return `rest error ${(err as Error).message}`;
  }
}

const minus = (a: number[], b: number[]): number[] => a.map((x, i) => x - b[i]!);

test.serial("gRPC calls over one connection, Clipper REST and transcoded HTTP through haproxy are answered by both gateways", async (t) => {
  let before = await answeredByEach();
  const grpc = await Promise.all(Array.from({ length: 40 }, (_, i) => grpcPredict(100 + i)));
  t.deepEqual(grpc.filter((r) => r !== "ok"), []);
  let after = await answeredByEach();
  const grpcSpread = minus(after, before);
  t.is(grpcSpread[0]! + grpcSpread[1]!, 40);
  t.true(grpcSpread.every((n) => n > 0), `gRPC calls of one connection per gateway: ${grpcSpread.join(", ")}`);

  before = after;
  const rest: string[] = [];
  for (let i = 0; i < 20; i++) rest.push(await restPredict(200 + i));
  t.deepEqual(rest.filter((r) => r !== "ok"), []);
  after = await answeredByEach();
  const restSpread = minus(after, before);
  t.is(restSpread[0]! + restSpread[1]!, 20);
  t.true(restSpread.every((n) => n > 0), `REST calls per gateway: ${restSpread.join(", ")}`);

  before = after;
  for (let i = 0; i < 4; i++) {
    const res = await fetch(`http://127.0.0.1:${lb.httpPort}/v1/apps/lb-app:predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input: { doubles: [300 + i, 1] } }) });
    const json = (await res.json()) as { output?: string; default?: boolean };
    t.is(res.status, 200);
    t.is(json.output, String(301 + i));
  }
  const transcodedSpread = minus(await answeredByEach(), before);
  t.true(transcodedSpread.every((n) => n > 0), `transcoded calls per gateway: ${transcodedSpread.join(", ")}`);
});

test.serial("a gateway killed with -9 under steady load: haproxy retries what it dropped on the other, no call fails, and the gateway is back in rotation once restarted", async (t) => {
  let stop = false;
  let next = 10_000;
  const failures: string[] = [];
  let answered = 0;
  const loop = async (predict: (x: number) => Promise<string>): Promise<void> => {
    while (!stop) {
      const r = await predict(next++);
      if (r === "ok") answered++;
      else failures.push(r);
    }
  };
  // 4 gRPC callers sharing the one channel and 4 REST callers, closed loop.
  const load = Promise.all([...Array.from({ length: 4 }, () => loop(grpcPredict)), ...Array.from({ length: 4 }, () => loop(restPredict))]);
  await new Promise((r) => setTimeout(r, 1_000));
  const { grpc, http, rpc } = gateways[1];
  const beforeKill = answered;
  await gateways[1].proc.stop("SIGKILL");
  t.true(await eventually(async () => !(await lb.isUp("gw2")), 20_000), "haproxy's health check took the dead gateway out");
  const atDown = answered;
  await new Promise((r) => setTimeout(r, 1_000));
  stop = true;
  await load;
  t.log(`answered: ${answered} (${beforeKill} before the kill, ${answered - atDown} after haproxy marked it down); failed: ${failures.length}`);
  t.true(answered > atDown, "calls kept being answered through the surviving gateway");
  // A call whose answer the killed gateway had begun to write (its headers
  // already passed haproxy to the client) cannot be sent again by anyone:
  // grpc-js writes a unary answer's trailers after its message, so a kill can
  // fall between them, and the client sees the stream end without a status.
  // Every other call that was in flight must have been retried; REST writes
  // its whole answer at once and has no such window.
  const CUT: string = "grpc 13 Received RST_STREAM with code 0 (Call ended without gRPC status)";
  const cut = failures.filter((f) => f === CUT);
  t.deepEqual(failures.filter((f) => f !== CUT), [], "no call failed otherwise: those in flight on the killed gateway were retried on the other");
  t.true(cut.length <= 4, `at most the 4 gRPC calls in flight had their answer cut: ${cut.length}`);

  // Restarted on the same ports, it passes /readyz again and takes calls again.
  gateways[1] = await startGatewayProcess(stack.redis.url, ["--grpc-port", String(grpc), "--http-port", String(http), "--rpc-port", String(rpc)]);
  t.true(await eventually(async () => (await workersAt(grpc)) === 2, 30_000), "the workers re-attached");
  t.true(await eventually(() => lb.isUp("gw2"), 20_000), "haproxy sees it ready again");
  const before = await answeredBy(gateways[1]);
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => grpcPredict(50_000 + i)));
  t.deepEqual(results.filter((r) => r !== "ok"), []);
  t.true((await answeredBy(gateways[1])) > before, "the restarted gateway answers calls through haproxy");
});

test.serial("Redis lost for every gateway: haproxy takes them out by /readyz and fails open to them as backups, so calls are still answered", async (t) => {
  await stack.redis.stop();
  t.true(await eventually(async () => !(await lb.isUp("gw1")) && !(await lb.isUp("gw2")), 20_000), "both gateways report 503 on /readyz and are down in haproxy");
  const grpc = await Promise.all(Array.from({ length: 10 }, (_, i) => grpcPredict(70_000 + i)));
  const rest = await Promise.all(Array.from({ length: 10 }, (_, i) => restPredict(71_000 + i)));
  t.deepEqual([...grpc, ...rest].filter((r) => r !== "ok"), [], "answered from the catalog each gateway holds");
  await stack.redis.restart();
  t.true(await eventually(async () => (await lb.isUp("gw1")) && (await lb.isUp("gw2")), 30_000), "both back once Redis is");
});
