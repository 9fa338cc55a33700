/**
 * Redis high availability (issue: scale-out, item 6): real redis-server
 * primary and replica, three real redis-sentinel processes, and real
 * gateway, management and worker processes given a redis+sentinel:// URL.
 * The primary is killed with -9 under a steady, bounded load.
 */
import test from "ava";
import { NOTIFY_KEYSPACE_EVENTS } from "../../core/redis-layout.js";
import { MANAGEMENT_PORTS_LINE } from "../../core/ports-line.js";
import { eventually, spawnBin, startGatewayProcess, startWorkerProcess, type Proc } from "../helpers/processes.js";
import { configGet, SentinelSet } from "../helpers/redis-sentinel.js";

const PASSWORD = "sentinel-test-pw";

let set: SentinelSet;
const procs: Proc[] = [];
let mgmtHttp = 0;
let gateway: Awaited<ReturnType<typeof startGatewayProcess>>;

test.before(async () => {
  set = await SentinelSet.start({ downAfterMs: 1000, password: PASSWORD });
  // The URL travels in the environment, as clipper up and Kubernetes pass it.
  const m = spawnBin("clipper-management", ["--grpc-port", "0", "--http-port", "0"], { CLIPPER_REDIS_URL: set.url });
  procs.push(m);
  mgmtHttp = MANAGEMENT_PORTS_LINE.read(await m.waitFor(MANAGEMENT_PORTS_LINE.pattern)).http.port;
  gateway = await startGatewayProcess(set.url);
  procs.push(gateway.proc);
});

test.after.always(async () => {
  for (const p of procs.reverse()) await p.stop("SIGKILL");
  await set?.destroy();
});

async function admin(endpoint: string, body: unknown): Promise<{ status: number; text: string }> {
  try {
    const res = await fetch(`http://127.0.0.1:${mgmtHttp}/admin/${endpoint}`, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });
    return { status: res.status, text: await res.text() };
  } catch (err) {
    return { status: 0, text: (err as Error).message };
  }
}

/** One Clipper REST call; "ok" only when the model answered (not the app's default). */
async function predict(app: string, x: number): Promise<"ok" | string> {
  try {
    const res = await fetch(`http://127.0.0.1:${gateway.http}/${app}/predict`, { method: "POST", body: JSON.stringify({ input: [x, 1] }) });
    const json = (await res.json()) as { output?: unknown; default?: boolean };
    return res.status === 200 && json.default === false && json.output === x + 1 ? "ok" : `${res.status} ${JSON.stringify(json)}`;
  } catch (err) {
    return `error ${(err as Error).message}`;
  }
}

/** 4 closed-loop callers of `app` with distinct inputs (no cache, no coalescing) until the returned stop() is called. */
function steadyLoad(app: string, from: number): { answered(): number; stop(): Promise<string[]> } {
  let stop = false;
  let next = from;
  let answered = 0;
  const failures: string[] = [];
  const caller = async (): Promise<void> => {
    while (!stop) {
      const r = await predict(app, next++);
      if (r === "ok") answered++;
      else failures.push(r);
      await new Promise((res) => setTimeout(res, 5));
    }
  };
  const load = Promise.all(Array.from({ length: 4 }, caller));
  return {
    answered: () => answered,
    stop: async () => {
      stop = true;
      await load;
      return failures;
    },
  };
}

async function deployApp(app: string): Promise<boolean> {
  const a = await admin("add_app", { name: app, input_type: "doubles", default_output: "-1", latency_slo_micros: 10_000_000 });
  // A retried add_app whose first try reached Redis finds the app there: that is success too.
  if (a.status !== 200 && !/exists/.test(a.text)) return false;
  return (await admin("add_model_links", { app_name: app, model_names: ["sum"] })).status === 200;
}

test.serial("the primary killed under load: the sentinels promote the replica, the gateway and management follow it, no prediction is lost", async (t) => {
  t.true(await eventually(async () => (await admin("add_model", { model_name: "sum", model_version: "1", labels: [], input_type: "doubles", container_name: "", model_data_path: "", batch_size: -1 })).status === 200, 20_000), "management writes through the sentinels");
  t.true(await deployApp("ha-app"));
  const worker = await startWorkerProcess(gateway.rpc, "sum", "1", "doubles", "test/fixtures/models/sum.js");
  procs.push(worker);
  let last = "";
  t.true(await eventually(async () => (last = await predict("ha-app", 1)) === "ok", 20_000), `the gateway serves from the catalog it read through the sentinels (last: ${last})`);
  t.is(await configGet(set.servers[1].port, "notify-keyspace-events", PASSWORD), "", "the replica has no keyspace notifications before the failover");

  const load = steadyLoad("ha-app", 1_000);
  await new Promise((res) => setTimeout(res, 1_000));
  const beforeKill = load.answered();
  const killedAt = Date.now();
  await set.servers[0].stop();
  const promoted = await eventually(async () => (await set.masterPort()) === set.servers[1].port, 30_000, 100);
  t.true(promoted, "the sentinels promoted the replica");
  const promotedMs = Date.now() - killedAt;
  t.true(await eventually(async () => (await fetch(`http://127.0.0.1:${gateway.http}/readyz`)).status === 200, 30_000), "the gateway is ready again, on the new primary");
  const readyMs = Date.now() - killedAt;
  // The catalog re-enabled keyspace notifications on the promoted replica.
  const flags = (await configGet(set.servers[1].port, "notify-keyspace-events", PASSWORD)) ?? "";
  t.true([...NOTIFY_KEYSPACE_EVENTS].every((f) => flags.includes(f)), `notify-keyspace-events on the new primary: '${flags}'`);
  // Management writes again; the gateway, already reconciled, learns the new app from a keyspace event of the new primary.
  t.true(await eventually(() => deployApp("ha-app-2"), 30_000, 100), "management writes after the failover");
  const writesMs = Date.now() - killedAt;
  t.true(await eventually(async () => (await predict("ha-app-2", 5)) === "ok", 20_000), "the catalog follows the promoted replica");
  await new Promise((res) => setTimeout(res, 1_000));
  const failures = await load.stop();
  const answered = load.answered();
  t.log(`calls answered by the model: ${answered} (${beforeKill} before the kill); lost: ${failures.length}`);
  t.log(`after the kill (down-after-milliseconds 1000): promoted by ${promotedMs} ms, gateway ready by ${readyMs} ms, management writing by ${writesMs} ms`);
  t.true(answered > beforeKill, "calls kept being answered after the kill");
  t.deepEqual(failures, [], "no call lost across the failover");
});

test.serial("a failover that leaves the old primary running: its first write gets READONLY and the servers move to the new primary; no prediction is lost", async (t) => {
  // The killed primary comes back empty, as a replica of the promoted one.
  const [old, current] = set.servers;
  await old.restart();
  await set.replicaOf(old.port, current.port);
  t.true(await eventually(() => set.replicating(old.port), 30_000, 100), "the old primary replicates from the new one");
  const load = steadyLoad("ha-app", 100_000);
  await new Promise((res) => setTimeout(res, 500));
  await set.failover();
  t.true(await eventually(async () => (await set.masterPort()) === old.port, 30_000, 100), "the sentinels promoted it back");
  // Demoted now rather than at the sentinels' next look; it keeps running and keeps its clients.
  await set.replicaOf(current.port, old.port);
  t.true(await eventually(() => set.replicating(current.port), 30_000, 100), "the demoted primary is still running, as a replica");
  // Management's connection is still on the demoted server: a write gets READONLY, then goes to the new primary.
  t.true(await eventually(() => deployApp("ha-app-3"), 30_000, 100), "management writes after the failover");
  const flags = (await configGet(old.port, "notify-keyspace-events", PASSWORD)) ?? "";
  t.true(await eventually(async () => (await predict("ha-app-3", 7)) === "ok", 30_000), `the catalog follows (notify-keyspace-events on the new primary: '${flags}')`);
  await new Promise((res) => setTimeout(res, 500));
  const failures = await load.stop();
  t.log(`calls answered by the model: ${load.answered()}; lost: ${failures.length}`);
  t.deepEqual(failures, [], "no call lost across the failover");
});
