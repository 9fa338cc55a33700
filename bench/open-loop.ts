/**
 * Open-loop batching: queries arrive at fixed rates, each with an input of
 * its own, whatever the answers do (closed-loop callers in `npm run bench`
 * only ask again once answered, which caps what a batcher can get from the
 * model). Drives the batching model (5 ms + 0.1 ms per item per batch)
 * through Clipper REST and reports, per rate, how many queries the model
 * answered in time.
 *
 *   node --import tsx bench/open-loop.ts [--rates 3000,6000,7200] [--seconds 6] [--slo-ms 50]
 *
 * The model's capacity within an SLO: a query may wait for the batch in
 * progress and then run in the next, so a batch may take at most SLO / 2,
 * which allows (SLO / 2 − 5) / 0.1 items: 200 items per 25 ms, 8000 req/s,
 * for a 50 ms SLO. The load generator runs in this process (node:http,
 * keep-alive), on the same two cores as the gateway.
 *
 * A second table gives, per rate, the CPU the gateway, the worker and the
 * load generator used per call, against bare node:http
 * (bench/servers/bare-http.ts) driven the same way at the same rates after
 * the gateway's runs: how much of the box the gateway leaves free at each rate.
 */
import http from "node:http";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { readTreeCpuSeconds } from "./lib/proc-status.js";
import { BenchStack, startBareServer } from "./lib/stack.js";
import { batchModelCapacity } from "./lib/batch-capacity.js";

const BATCH_MODULE = fileURLToPath(new URL("./models/batch-cost.ts", import.meta.url));

const USAGE = "usage: node --import tsx bench/open-loop.ts [--rates R1,R2,…] [--seconds S] [--slo-ms MS > 10]";
let values: { rates: string; seconds: string; "slo-ms": string };
try {
  values = parseArgs({ options: { rates: { type: "string", default: "3000,6000,7200" }, seconds: { type: "string", default: "6" }, "slo-ms": { type: "string", default: "50" } } }).values;
} catch (err) {
  console.error(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
  process.exit(2);
}
const rates = values.rates.split(",").map(Number);
const seconds = Number(values.seconds);
const sloMs = Number(values["slo-ms"]);
if (rates.some((r) => !(r > 0)) || !(seconds > 0) || !(sloMs > 10)) {
  console.error(USAGE);
  process.exit(2);
}
const capacity = batchModelCapacity(sloMs, 5, 0.1).perSecond;

interface Outcome {
  sent: number;
  inTime: number;
  defaults: number;
  /** Refused at once (429: admission or a full queue), a designed outcome under overload. */
  shed: number;
  errors: number;
  latencies: number[];
}

/** Sends `rate` queries per second for `seconds`, each with a distinct input; resolves when all are answered. */
function drive(port: number, agent: http.Agent, rate: number, secs: number, salt: { n: number }): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { sent: 0, inTime: 0, defaults: 0, shed: 0, errors: 0, latencies: [] };
    const t0 = performance.now();
    const end = t0 + secs * 1000;
    let pending = 0;
    let done = false;
    const finish = (): void => {
      if (!done && pending === 0 && performance.now() >= end) {
        done = true;
        resolve(out);
      }
    };
    const settle = (start: number, kind: "inTime" | "defaults" | "shed" | "errors"): void => {
      pending--;
      if (kind !== "shed") out.latencies.push(performance.now() - start);
      out[kind]++;
      finish();
    };
    const tick = (): void => {
      const now = performance.now();
      const due = Math.floor(((Math.min(now, end) - t0) / 1000) * rate);
      while (out.sent < due) {
        out.sent++;
        pending++;
        const start = performance.now();
        const body = JSON.stringify({ input: [salt.n++, 1, 2] });
        const req = http.request(
          { host: "127.0.0.1", port, path: "/batch/predict", method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
          (res) => {
            let text = "";
            res.setEncoding("utf8");
            res.on("data", (c: string) => (text += c));
            res.on("end", () =>
              settle(start, res.statusCode === 429 ? "shed" : res.statusCode !== 200 ? "errors" : text.includes('"default":true') ? "defaults" : "inTime"),
            );
          },
        );
        req.on("error", () => settle(start, "errors"));
        req.end(body);
      }
      if (now < end) setTimeout(tick, 1);
      else finish();
    };
    tick();
  });
}

async function batchTotals(port: number): Promise<{ items: number; batches: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const value = (name: string): number => text.split("\n").filter((l) => l.startsWith(name)).reduce((s, l) => s + Number(l.split(" ").pop()), 0);
  return { items: value("clipper_batch_size_sum"), batches: value("clipper_batch_size_count") };
}

/** CPU used per call sent while `run` drives one rate, µs: by each of `pids` (with their children), and by this process (the load generator) in cores. */
async function withCpu<T extends { sent: number }>(pids: readonly number[], run: () => Promise<T>): Promise<{ out: T; perCallUs: number[]; driverCores: number }> {
  const before = pids.map(readTreeCpuSeconds);
  const self = process.cpuUsage();
  const t0 = performance.now();
  const out = await run();
  const wallS = (performance.now() - t0) / 1000;
  const used = process.cpuUsage(self);
  const perCallUs = pids.map((pid, i) => ((readTreeCpuSeconds(pid) - before[i]!) * 1e6) / Math.max(1, out.sent));
  return { out, perCallUs, driverCores: (used.user + used.system) / 1e6 / wallS };
}

const cpuRows: string[] = [];
const stack = await BenchStack.start({ profileDir: null, profileIntervalUs: 0 });
try {
  await stack.deploy("batch", "batch-cost", { sloMicros: sloMs * 1000 });
  const worker = await stack.worker("batch-cost", BATCH_MODULE);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
  const salt = { n: 0 };
  await drive(stack.gateway.http, agent, 2000, 2, salt); // warm-up; also waits for the worker
  console.log(`Open-loop batching, Clipper REST, SLO ${sloMs} ms, ${seconds} s per rate; model capacity within the SLO ${capacity.toFixed(0)} req/s.\n`);
  console.log("| offered req/s | share of capacity | answered in time | in-time req/s | defaults | shed | errors | p50 ms | p99 ms | mean batch |");
  console.log("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
  for (const rate of rates) {
    const before = await batchTotals(stack.gateway.http);
    const { out: o, perCallUs, driverCores } = await withCpu([stack.gateway.pid, worker.pid], () => drive(stack.gateway.http, agent, rate, seconds, salt));
    const after = await batchTotals(stack.gateway.http);
    cpuRows.push(`| ${rate} | ${perCallUs[0]!.toFixed(0)} | ${perCallUs[1]!.toFixed(0)} | ${driverCores.toFixed(2)}`);
    const lat = o.latencies.sort((a, b) => a - b);
    const q = (p: number): string => (lat[Math.floor(p * (lat.length - 1))] ?? NaN).toFixed(1);
    const batch = (after.items - before.items) / Math.max(1, after.batches - before.batches);
    console.log(`| ${rate} | ${((100 * rate) / capacity).toFixed(0)} % | ${((100 * o.inTime) / o.sent).toFixed(1)} % | ${(o.inTime / seconds).toFixed(0)} | ${o.defaults} | ${o.shed} | ${o.errors} | ${q(0.5)} | ${q(0.99)} | ${batch.toFixed(1)} |`);
  }
  agent.destroy();
} finally {
  await stack.close();
}

// The same driver against bare node:http at the same rates.
const bare = await startBareServer("bare-http");
try {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
  const salt = { n: 0 };
  await drive(bare.port, agent, 2000, 2, salt); // warm-up
  console.log("\nCPU per call sent (µs; /proc, children included) and the load generator's share of the box (cores), the gateway's runs against bare node:http at the same rates:\n");
  console.log("| offered req/s | gateway µs/call | worker µs/call | load generator cores | bare node:http µs/call | load generator cores | bare p99 ms |");
  console.log("|--:|--:|--:|--:|--:|--:|--:|");
  for (const [i, rate] of rates.entries()) {
    const { out, perCallUs, driverCores } = await withCpu([bare.pid], () => drive(bare.port, agent, rate, seconds, salt));
    const lat = out.latencies.sort((a, b) => a - b);
    console.log(`${cpuRows[i]} | ${perCallUs[0]!.toFixed(0)} | ${driverCores.toFixed(2)} | ${(lat[Math.floor(0.99 * (lat.length - 1))] ?? NaN).toFixed(1)} |`);
  }
  agent.destroy();
} finally {
  await bare.proc.stop("SIGTERM");
}
