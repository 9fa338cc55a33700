/**
 * DB 3 shared by several gateways on one Redis (docs/architecture.md, "DB 3
 * ownership"): replica ids from a Redis counter, entries owned by their
 * gateway, stale entries of a gateway killed with -9 neither counted nor
 * kept. Real redis-server, real gateway and worker processes, management in
 * this process.
 */
import { credentials } from "@grpc/grpc-js";
import test from "ava";
import { hostname } from "node:os";
import { pino } from "pino";
import { AdminClient } from "../../gen/clipper/v1/admin.js";
import { HeartbeatClient } from "../../gen/clipper/v1/heartbeat.js";
import { startManagement, type Management } from "../../management/management.js";
import { call } from "../helpers/grpc.js";
import { freePort } from "../helpers/ports.js";
import { eventually, spawnBin, startGatewayProcess, startWorkerProcess, type Proc, untilReady } from "../helpers/processes.js";
import { redisDb } from "../helpers/redis-dump.js";
import { TestRedis } from "../helpers/redis-server.js";

/** Clipper's seven DB 3 fields (clipper.md §1.3), which must stay as Clipper writes them. */
const CLIPPER_FIELDS = ["model_id", "model_name", "model_version", "model_replica_id", "zmq_connection_id", "batch_size", "input_type"];
const MODULE = "test/fixtures/models/batch-reporter.js";

type Gateway = Awaited<ReturnType<typeof startGatewayProcess>>;

let redis: TestRedis;
let mgmt: Management;
let admin: AdminClient;
const procs: Proc[] = [];

test.before(async () => {
  redis = await TestRedis.start();
  mgmt = await startManagement({ redisUrl: redis.url, host: "127.0.0.1", grpcPort: 0, httpPort: 0 }, pino({ level: "silent" }));
  await untilReady(mgmt.httpPort);
  admin = new AdminClient(`127.0.0.1:${mgmt.grpcPort}`, credentials.createInsecure());
});

test.after.always(async () => {
  admin?.close();
  for (const p of procs) {
    p.child.kill("SIGCONT");
    await p.stop("SIGKILL");
  }
  await mgmt?.close(0);
  await redis?.destroy();
});

async function gateway(extra: readonly string[]): Promise<Gateway> {
  const g = await startGatewayProcess(redis.url, extra);
  procs.push(g.proc);
  return g;
}

async function worker(g: Gateway, model: string): Promise<Proc> {
  const w = await startWorkerProcess(g.rpc, model, "1", "doubles", MODULE);
  procs.push(w);
  return w;
}

/** DB 3 entries of one model: key → hash. */
async function entries(model: string): Promise<Map<string, Record<string, string>>> {
  const db = await redisDb(redis.url, 3);
  try {
    const out = new Map<string, Record<string, string>>();
    for (const k of (await db.keys(`${model},*`)).sort()) out.set(k, await db.hgetall(k));
    return out;
  } finally {
    db.disconnect();
  }
}

async function liveKey(gatewayId: string): Promise<string | null> {
  const db = await redisDb(redis.url, 8);
  try {
    return await db.get(`clipper-ts:gateway:${gatewayId}`);
  } finally {
    db.disconnect();
  }
}

async function deploy(app: string, model: string): Promise<void> {
  const post = async (endpoint: string, body: unknown): Promise<void> => {
    const res = await fetch(`http://127.0.0.1:${mgmt.httpPort}/admin/${endpoint}`, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });
    if (res.status !== 200) throw new Error(`${endpoint}: ${res.status} ${await res.text()}`);
  };
  await post("add_app", { name: app, input_type: "doubles", default_output: "-1.0", latency_slo_micros: 2_000_000 });
  await post("add_model", { model_name: model, model_version: "1", labels: [], input_type: "doubles", container_name: "", model_data_path: "", batch_size: -1 });
  await post("add_model_links", { app_name: app, model_names: [model] });
}

/** What management counts: App.liveReplicas, and ListReplicas' entries. */
async function counted(app: string, model: string): Promise<{ live: number; listed: number[] }> {
  const a = await call<unknown, any>(admin, "getApp", { name: app });
  const r = await call<unknown, any>(admin, "listReplicas", { modelName: model, modelVersion: "1" });
  if (!a.ok || !r.ok) throw new Error("management call failed");
  return { live: a.value.app.liveReplicas, listed: r.value.replicas.map((x: any) => x.replicaId) };
}

test.serial("two gateways on one Redis give distinct replica ids for one model version, and own their entries", async (t) => {
  await deploy("own-app", "own");
  const a = await gateway(["--gateway-id", "gw-a"]);
  // The other one takes the default id: host name and worker RPC port.
  const b = await gateway([]);
  await worker(a, "own");
  await worker(b, "own");
  await worker(a, "own");
  await worker(b, "own");
  t.true(await eventually(async () => (await entries("own")).size === 4));
  const found = await entries("own");
  const ids = [...found.values()].map((h) => Number(h.model_replica_id));
  t.deepEqual([...ids].sort((x, y) => x - y), [0, 1, 2, 3], "ids from one counter: none twice");
  const defaultId = `${hostname()}:${b.rpc}`;
  t.deepEqual([...found.values()].map((h) => h.clipper_ts_gateway).sort(), ["gw-a", "gw-a", defaultId, defaultId].sort());
  for (const [key, h] of found) {
    // Clipper's fields as Clipper writes them; ours are extra.
    t.deepEqual(CLIPPER_FIELDS.filter((f) => f in h), CLIPPER_FIELDS);
    t.is(key, `own,1,${h.model_replica_id}`);
    t.like(h, { model_id: "own:1", model_name: "own", model_version: "1", batch_size: "1", input_type: "doubles" });
    t.regex(h.clipper_ts_gateway_run!, /^[0-9a-f-]{36}$/);
    t.regex(h.clipper_ts_worker!, /^[0-9a-f-]{36}$/);
  }
  t.is(new Set([...found.values()].map((h) => h.clipper_ts_worker)).size, 4);
  // Each gateway reports the same ids as its entries.
  for (const g of [a, b]) {
    const hb = new HeartbeatClient(`127.0.0.1:${g.grpc}`, credentials.createInsecure());
    const w = await call<unknown, any>(hb, "listWorkers", { modelName: "own" });
    hb.close();
    t.true(w.ok);
    const owner = g === a ? "gw-a" : defaultId;
    const expected = [...found.values()].filter((h) => h.clipper_ts_gateway === owner).map((h) => Number(h.model_replica_id)).sort((x, y) => x - y);
    if (w.ok) t.deepEqual(w.value.workers.map((x: any) => x.replicaId).sort((x: number, y: number) => x - y), expected);
  }
  t.deepEqual(await counted("own-app", "own"), { live: 4, listed: [0, 1, 2, 3] });
  const listed = await call<unknown, any>(admin, "listReplicas", { modelName: "own", modelVersion: "1" });
  if (listed.ok) t.deepEqual(listed.value.replicas.map((r: any) => r.gatewayId).sort(), ["gw-a", "gw-a", defaultId, defaultId].sort());
  // Both gateways stopped cleanly: no entry and no liveness key is left.
  await a.proc.stop();
  await b.proc.stop();
  t.is((await entries("own")).size, 0);
  t.is(await liveKey("gw-a"), null);
  t.is(await liveKey(defaultId), null);
});

test.serial("kill -9 of a gateway: its entries stop counting, the survivor sweeps them, and a restart with the same id removes its own", async (t) => {
  await deploy("kill-app", "kill");
  // A's key lapses half a second after A dies; B renews every second and sweeps every 3 s.
  const a = await gateway(["--gateway-id", "gw-k1", "--liveness-ttl-ms", "500"]);
  const b = await gateway(["--gateway-id", "gw-k2", "--liveness-ttl-ms", "3000"]);
  await worker(a, "kill");
  await worker(b, "kill");
  t.true(await eventually(async () => (await counted("kill-app", "kill")).live === 2));
  const aEntry = [...(await entries("kill")).entries()].find(([, h]) => h.clipper_ts_gateway === "gw-k1")![0];
  const bEntry = [...(await entries("kill")).entries()].find(([, h]) => h.clipper_ts_gateway === "gw-k2")![0];

  // (a) B is frozen, so nobody sweeps: A's entry stays in DB 3 once A's key expired, and is not counted.
  b.proc.child.kill("SIGSTOP");
  a.proc.child.kill("SIGKILL");
  t.true(await eventually(async () => (await liveKey("gw-k1")) === null, 5_000), "A's liveness key expires");
  t.true((await entries("kill")).has(aEntry), "A's entry is still in DB 3");
  const bId = Number(bEntry.split(",")[2]);
  t.deepEqual(await counted("kill-app", "kill"), { live: 1, listed: [bId] }, "only B's replica counts (App.ready, ListReplicas, the rollout gate's count)");

  // (b) B resumes: its sweep removes A's entry, and keeps its own.
  b.proc.child.kill("SIGCONT");
  t.true(await eventually(async () => !(await entries("kill")).has(aEntry), 10_000), "the surviving gateway swept A's entry");
  t.true((await entries("kill")).has(bEntry));
  t.is((await counted("kill-app", "kill")).live, 1);

  // (c) A second gateway with A's id and port dies with an entry; restarted
  // with the same id while B is frozen, it removes its predecessor's entry
  // itself, at start.
  const a2 = await gateway(["--gateway-id", "gw-k1", "--liveness-ttl-ms", "500", "--rpc-port", String(await freePort())]); // reused by a3
  await worker(a2, "kill");
  const stale = [...(await entries("kill")).entries()].find(([, h]) => h.clipper_ts_gateway === "gw-k1")![0];
  b.proc.child.kill("SIGSTOP");
  a2.proc.child.kill("SIGKILL");
  const a3 = await gateway(["--gateway-id", "gw-k1", "--liveness-ttl-ms", "500", "--rpc-port", String(a2.rpc)]);
  t.true(await eventually(async () => !(await entries("kill")).has(stale), 10_000), "the restarted gateway removed its own stale entry");
  // Its worker comes back to the same port and registers under a fresh id from the counter.
  t.true(await eventually(async () => [...(await entries("kill")).values()].some((h) => h.clipper_ts_gateway === "gw-k1"), 15_000));
  const fresh = [...(await entries("kill")).values()].find((h) => h.clipper_ts_gateway === "gw-k1")!;
  t.not(`kill,1,${fresh.model_replica_id}`, stale);
  t.not(fresh.model_replica_id, bEntry.split(",")[2]);
  b.proc.child.kill("SIGCONT");
  t.true(await eventually(async () => (await counted("kill-app", "kill")).live === 2));
  await a3.proc.stop();
  await b.proc.stop();
});

test.serial("replicas are counted as workers: one worker's entries on several gateways count once; entries without an owner count as before", async (t) => {
  await deploy("count-app", "count");
  const db3 = await redisDb(redis.url, 3);
  const db8 = await redisDb(redis.url, 8);
  try {
    const clipper = (id: number) => ({
      model_id: "count:1", model_name: "count", model_version: "1", model_replica_id: String(id), zmq_connection_id: String(id), batch_size: "1", input_type: "doubles",
    });
    await db8.set("clipper-ts:gateway:gx", "run-x", "PX", 60_000);
    await db8.set("clipper-ts:gateway:gy", "run-y", "PX", 60_000);
    // One worker connected to two gateways.
    await db3.hset("count,1,0", { ...clipper(0), clipper_ts_gateway: "gx", clipper_ts_gateway_run: "run-x", clipper_ts_worker: "w-1" });
    await db3.hset("count,1,1", { ...clipper(1), clipper_ts_gateway: "gy", clipper_ts_gateway_run: "run-y", clipper_ts_worker: "w-1" });
    // A Clipper container's entry (no owner): counted, as always.
    await db3.hset("count,1,2", clipper(2));
    // An entry of gx's previous run: stale.
    await db3.hset("count,1,3", { ...clipper(3), clipper_ts_gateway: "gx", clipper_ts_gateway_run: "run-old", clipper_ts_worker: "w-2" });
    t.deepEqual(await counted("count-app", "count"), { live: 2, listed: [0, 1, 2] });
    const r = await call<unknown, any>(admin, "listReplicas", { modelName: "count", modelVersion: "1" });
    if (r.ok) t.deepEqual(r.value.replicas.map((x: any) => [x.replicaId, x.gatewayId, x.workerId]), [[0, "gx", "w-1"], [1, "gy", "w-1"], [2, "", ""]]);
    // A gateway's start sweep removes the stale one and leaves the rest (gx and gy are alive, Clipper's has no owner).
    const g = await gateway(["--gateway-id", "gz"]);
    t.true(await eventually(async () => !(await entries("count")).has("count,1,3"), 10_000));
    t.deepEqual([...(await entries("count")).keys()], ["count,1,0", "count,1,1", "count,1,2"]);
    await g.proc.stop();
  } finally {
    db3.disconnect();
    db8.disconnect();
  }
});

test.serial("one worker serving two gateways has two entries with distinct ids and counts once", async (t) => {
  await deploy("both-app", "both");
  const a = await gateway(["--gateway-id", "gw-b1"]);
  const b = await gateway(["--gateway-id", "gw-b2"]);
  const w = spawnBin("clipper-worker", ["--model", "both", "--version", "1", "--module", MODULE, "--gateway", `tcp://127.0.0.1:${a.rpc},tcp://127.0.0.1:${b.rpc}`], { CLIPPER_LOG_LEVEL: "info" });
  procs.push(w);
  t.true(await eventually(async () => (await entries("both")).size === 2, 20_000));
  const found = [...(await entries("both")).values()];
  t.deepEqual(found.map((h) => h.clipper_ts_gateway).sort(), ["gw-b1", "gw-b2"]);
  t.not(found[0]!.model_replica_id, found[1]!.model_replica_id);
  t.is(found[0]!.clipper_ts_worker, found[1]!.clipper_ts_worker, "one worker, one instance id");
  const c = await counted("both-app", "both");
  t.is(c.live, 1, "App.liveReplicas counts the worker once");
  t.is(c.listed.length, 2, "ListReplicas lists both connections");
  await w.stop("SIGKILL");
  await a.proc.stop();
  await b.proc.stop();
});
