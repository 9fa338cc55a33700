/**
 * `clipper-gateway --processes 2`: two gateway processes sharing the gRPC
 * and HTTP ports, each with its own worker port and socket (--rpc-ipc-dir),
 * and workers serving both, over TCP and over the sockets.
 */
import test from "ava";
import { lstatSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GATEWAY_PORTS_LINE, GATEWAY_RPC_ENDPOINTS, GATEWAY_RPC_IPC_ENDPOINTS, parseEndpointsLine } from "../../core/ports-line.js";
import { eventually, ROOT, spawnBin, type Proc, untilReady } from "../helpers/processes.js";
import { Scrape } from "../helpers/prometheus.js";
import { TestRedis } from "../helpers/redis-server.js";
import { startManagement, type Management } from "../../management/management.js";
import { pino } from "pino";

const SUM = join(ROOT, "test/fixtures/models/sum.js");

let redis: TestRedis;
let management: Management;
let gateway: Proc;
let worker: Proc;
let ipcWorker: Proc;
const ipcDir = mkdtempSync(join(tmpdir(), "clipper-processes-"));

test.after.always(async () => {
  await worker?.stop("SIGKILL");
  await ipcWorker?.stop("SIGKILL");
  await gateway?.stop();
  await management?.close(0);
  await redis?.destroy();
  rmSync(ipcDir, { recursive: true, force: true });
});

test("two processes share one port pair, each with its own worker port; one worker serves both, and /metrics shows both answering", async (t) => {
  redis = await TestRedis.start();
  management = await startManagement({ redisUrl: redis.url, host: "127.0.0.1", grpcPort: 0, httpPort: 0 }, pino({ level: "silent" }));
  await untilReady(management.httpPort);
  gateway = spawnBin("clipper-gateway", ["--redis-url", redis.url, "--grpc-port", "0", "--http-port", "0", "--rpc-port", "0", "--processes", "2", "--rpc-ipc-dir", ipcDir]);
  const ports = GATEWAY_PORTS_LINE.read(await gateway.waitFor(GATEWAY_PORTS_LINE.pattern));
  await gateway.waitFor(/rpc-endpoints=\S+\n/);
  const endpoints = parseEndpointsLine(GATEWAY_RPC_ENDPOINTS, gateway.output);
  t.truthy(endpoints);
  t.is(endpoints!.split(",").length, 2, "one worker port per process");
  t.true(endpoints!.startsWith(`tcp://127.0.0.1:${ports.rpc.port},`), "the ports line names process 0's worker port");
  await gateway.waitFor(/rpc-ipc-endpoints=\S+\n/);
  const sockets = [0, 1].map((i) => join(ipcDir, `rpc-${i}.sock`));
  t.is(parseEndpointsLine(GATEWAY_RPC_IPC_ENDPOINTS, gateway.output), sockets.map((p) => `ipc://${p}`).join(","), "one socket per process, in process order");
  for (const p of sockets) t.is(lstatSync(p).mode & 0o777, 0o600);

  const admin = async (endpoint: string, body: unknown): Promise<void> => {
    const res = await fetch(`http://127.0.0.1:${management.httpPort}/admin/${endpoint}`, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });
    t.is(res.status, 200, await res.text());
  };
  await admin("add_app", { name: "s-app", input_type: "doubles", default_output: "-1", latency_slo_micros: 5_000_000 });
  await admin("add_model", { model_name: "sum", model_version: "1", labels: [], input_type: "doubles", container_name: "", model_data_path: "", batch_size: -1 });
  await admin("add_model_links", { app_name: "s-app", model_names: ["sum"] });
  worker = spawnBin("clipper-worker", ["--model", "sum", "--version", "1", "--module", SUM, "--gateway", endpoints!], { CLIPPER_LOG_LEVEL: "info" });
  t.true(await eventually(() => (worker.output.match(/worker registered/g) ?? []).length >= 2, 30_000), "registered with both processes");
  ipcWorker = spawnBin("clipper-worker", ["--model", "sum", "--version", "1", "--module", SUM, "--gateway", parseEndpointsLine(GATEWAY_RPC_IPC_ENDPOINTS, gateway.output)!], { CLIPPER_LOG_LEVEL: "info" });
  t.true(await eventually(() => (ipcWorker.output.match(/worker registered/g) ?? []).length >= 2, 30_000), "registered with both processes over their sockets");

  // A new connection per call: the shared socket hands connections to the processes in turn.
  const url = `http://127.0.0.1:${ports.http.port}`;
  const answers: number[] = [];
  for (let i = 0; i < 40; i++) {
    const res = await fetch(`${url}/s-app/predict`, { method: "POST", body: JSON.stringify({ input: [i, 1] }), headers: { connection: "close" } });
    const json = (await res.json()) as { output: number; default: boolean };
    if (res.status === 200 && !json.default) answers.push(json.output);
  }
  t.is(answers.length, 40, "every call answered by the model");
  const scrape = await Scrape.of(`${url}/metrics`);
  const byProcess = ["0", "1"].map((p) => scrape.all("clipper_predictions_total", { process: p, outcome: "ok" }).reduce((n, s) => n + s.value, 0));
  t.log(`answered per process: ${byProcess.join(", ")}`);
  t.true(byProcess.every((n) => n > 0), `both processes answered: ${byProcess.join(", ")}`);
  t.is(byProcess[0]! + byProcess[1]!, 40);
});
