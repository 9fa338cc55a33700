/**
 * Redis Sentinel failover under load (issue 13 item 6):
 *
 *   node --import tsx bench/sentinel-failover.ts [--rounds 3] [--down-after-ms 1000]
 *
 * Each round starts a fresh set (redis-server primary and replica, three
 * redis-sentinel, quorum 2), management and a gateway given the
 * redis+sentinel:// URL, and a worker (the sum fixture); 8 closed-loop
 * Clipper REST callers run while the primary is killed with -9. Reported
 * per round: calls answered and lost, and the time from the kill until the
 * sentinels name the replica, until the gateway's /readyz is 200 again and
 * until a management write (add_app) succeeds. Not part of CI (~1 min).
 */
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { MANAGEMENT_PORTS_LINE } from "../core/ports-line.js";
import { eventually, spawnBin, startGatewayProcess, startWorkerProcess, type Proc } from "../test/helpers/processes.js";
import { SentinelSet } from "../test/helpers/redis-sentinel.js";
import { median } from "./lib/stats.js";

const USAGE = "usage: node --import tsx bench/sentinel-failover.ts [--rounds N] [--down-after-ms MS]";
let rounds: number;
let downAfterMs: number;
try {
  const v = parseArgs({ options: { rounds: { type: "string", default: "3" }, "down-after-ms": { type: "string", default: "1000" } } }).values;
  rounds = Number(v.rounds);
  downAfterMs = Number(v["down-after-ms"]);
  if (!(Number.isInteger(rounds) && rounds >= 1 && rounds <= 20 && Number.isInteger(downAfterMs) && downAfterMs >= 100)) throw new Error("bad value");
} catch (err) {
  console.error(`${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}

interface Round {
  answered: number;
  lost: number;
  promotedMs: number;
  readyMs: number;
  writesMs: number;
}

async function post(port: number, path: string, body: unknown): Promise<{ status: number; text: string; json: { output?: unknown; default?: boolean } | null }> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });
    const text = await res.text();
    let json = null;
    try {
      json = JSON.parse(text) as { output?: unknown; default?: boolean };
    } catch {
      // not JSON: a failure
    }
    return { status: res.status, text, json };
  } catch (err) {
    return { status: 0, text: (err as Error).message, json: null };
  }
}

async function round(): Promise<Round> {
  const set = await SentinelSet.start({ downAfterMs });
  const procs: Proc[] = [];
  try {
    const m = spawnBin("clipper-management", ["--grpc-port", "0", "--http-port", "0"], { CLIPPER_REDIS_URL: set.url });
    procs.push(m);
    const mgmt = MANAGEMENT_PORTS_LINE.read(await m.waitFor(MANAGEMENT_PORTS_LINE.pattern)).http.port;
    const g = await startGatewayProcess(set.url, ["--cache-bytes", "0"]);
    procs.push(g.proc);
    let lastRefusal = "";
    const admin = async (endpoint: string, body: unknown): Promise<boolean> => {
      const r = await post(mgmt, `/admin/${endpoint}`, body);
      if (r.status !== 200) lastRefusal = `${r.status} ${r.text}`;
      return r.status === 200;
    };
    if (!(await eventually(() => admin("add_app", { name: "a", input_type: "doubles", default_output: "-1", latency_slo_micros: 10_000_000 }), 20_000))) throw new Error("management did not write");
    await admin("add_model", { model_name: "sum", model_version: "1", labels: [], input_type: "doubles", container_name: "", model_data_path: "", batch_size: -1 });
    await admin("add_model_links", { app_name: "a", model_names: ["sum"] });
    procs.push(await startWorkerProcess(g.rpc, "sum", "1", "doubles", "test/fixtures/models/sum.js"));
    const ok = async (x: number): Promise<boolean> => {
      const r = await post(g.http, "/a/predict", { input: [x, 1] });
      return r.status === 200 && r.json?.default === false && r.json.output === x + 1;
    };
    if (!(await eventually(() => ok(0), 20_000))) throw new Error("the gateway does not answer");
    let stop = false;
    let next = 1;
    let answered = 0;
    let lost = 0;
    const load = Promise.all(
      Array.from({ length: 8 }, async () => {
        while (!stop) {
          if (await ok(next++)) answered++;
          else lost++;
        }
      }),
    );
    await sleep(1_000);
    const t0 = performance.now();
    await set.servers[0].stop();
    await eventually(async () => (await set.masterPort()) === set.servers[1].port, 30_000, 50);
    const promotedMs = performance.now() - t0;
    await eventually(async () => (await fetch(`http://127.0.0.1:${g.http}/readyz`)).status === 200, 30_000, 50);
    const readyMs = performance.now() - t0;
    const wrote = await eventually(() => admin("add_app", { name: "b", input_type: "doubles", default_output: "-1", latency_slo_micros: 10_000_000 }), 30_000, 50);
    const writesMs = performance.now() - t0;
    if (!wrote) console.log(`management wrote nothing within 30 s of the kill; its last answer: ${lastRefusal}\n${m.output.slice(-3000)}`);
    await sleep(1_000);
    stop = true;
    await load;
    return { answered, lost, promotedMs, readyMs, writesMs };
  } finally {
    for (const p of procs.reverse()) await p.stop("SIGKILL");
    await set.destroy();
  }
}

const results: Round[] = [];
for (let i = 0; i < rounds; i++) {
  const r = await round();
  results.push(r);
  console.log(`round ${i + 1}: answered ${r.answered}, lost ${r.lost}; replica promoted ${r.promotedMs.toFixed(0)} ms, gateway ready ${r.readyMs.toFixed(0)} ms, management writing ${r.writesMs.toFixed(0)} ms after the kill`);
}
console.log("");
console.log(`## Sentinel failover, primary killed with -9 (down-after-milliseconds ${downAfterMs}, ${rounds} rounds, 8 REST callers)`);
console.log("");
console.log("| calls answered | calls lost | promoted (median ms) | gateway ready (median ms) | management writing (median ms) |");
console.log("|---|---|---|---|---|");
console.log(
  `| ${results.map((r) => r.answered).join(", ")} | ${results.map((r) => r.lost).join(", ")} | ${median(results.map((r) => r.promotedMs)).toFixed(0)} | ${median(results.map((r) => r.readyMs)).toFixed(0)} | ${median(results.map((r) => r.writesMs)).toFixed(0)} |`,
);
