/**
 * The worker port's Unix domain socket (--rpc-ipc-dir), end to end: a
 * gateway process whose worker port runs CURVE and also listens on
 * ipc://DIR/rpc-0.sock, TypeScript and Python workers that connect there,
 * and the file-system rules that guard the socket (modes, a live socket not
 * stolen, a dead one replaced, paths that cannot work refused).
 */
import test from "ava";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateKeyPair, writeKeyPair } from "../../core/curve/key-pair.js";
import { GATEWAY_PORTS_LINE, GATEWAY_RPC_IPC_ENDPOINTS, parseEndpointsLine } from "../../core/ports-line.js";
import { call } from "../helpers/grpc.js";
import { eventually, ROOT, spawnBin, workerArgs, type Proc } from "../helpers/processes.js";
import { Scrape } from "../helpers/prometheus.js";
import { spawnPythonWorker } from "../helpers/python-worker.js";
import { Stack } from "../helpers/stack.js";

const SUM = join(ROOT, "test/fixtures/models/sum.js");
const dir = mkdtempSync(join(tmpdir(), "clipper-ipc-"));
const ipcDir = join(dir, "ipc");
let stack: Stack;
let ipc: string;
let curve: string[];

/** The rpc-ipc-endpoints line of a gateway's output (waiting for it). */
async function ipcEndpoints(gateway: Proc): Promise<string> {
  await gateway.waitFor(/rpc-ipc-endpoints=\S+\n/);
  return parseEndpointsLine(GATEWAY_RPC_IPC_ENDPOINTS, gateway.output)!;
}

test.before(async () => {
  const gateway = await writeKeyPair(dir, "gateway", generateKeyPair());
  const pair = generateKeyPair();
  const worker = await writeKeyPair(dir, "worker", pair);
  writeFileSync(join(dir, "worker-keys"), `${pair.publicKey}\n`);
  curve = ["--gateway-public-key", gateway.publicFile, "--curve-secret-key", worker.secretFile];
  stack = await Stack.start(["--curve-secret-key", gateway.secretFile, "--worker-keys", join(dir, "worker-keys"), "--rpc-ipc-dir", ipcDir]);
  ipc = await ipcEndpoints(stack.gateway.proc);
  await stack.deploy("ts-app", "ts", "1", "doubles");
  await stack.deploy("py-app", "py", "1", "doubles");
  await stack.deploy("other-app", "other", "1", "doubles");
});

test.after.always(async () => {
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

function tsWorker(model: string, gateway: string, extra: readonly string[]): Proc {
  const w = spawnBin("clipper-worker", workerArgs({ model, version: "1", inputType: "doubles", gateway, module: SUM }, extra), { CLIPPER_LOG_LEVEL: "info" });
  stack.workers.push(w);
  return w;
}

async function workersOf(model: string): Promise<{ curvePublicKey: string }[]> {
  const r = await call<unknown, { workers: { curvePublicKey: string }[] }>(stack.heartbeat, "listWorkers", { modelName: model });
  if (!r.ok) throw new Error(r.error.message);
  return r.value.workers;
}

const handshakeFailures = async (): Promise<number> =>
  (await Scrape.of(`http://127.0.0.1:${stack.gateway.http}/metrics`)).value("clipper_worker_auth_failures_total", { reason: "handshake" }) ?? 0;

test.serial("the gateway prints its socket after the ports line; the directory is 0700 and the socket 0600", (t) => {
  t.is(ipc, `ipc://${join(ipcDir, "rpc-0.sock")}`);
  t.true(stack.gateway.proc.output.indexOf("rpc-ipc-endpoints=") > stack.gateway.proc.output.search(GATEWAY_PORTS_LINE.pattern));
  const socket = lstatSync(join(ipcDir, "rpc-0.sock"));
  t.true(socket.isSocket());
  t.is(socket.mode & 0o777, 0o600);
  t.is(statSync(ipcDir).mode & 0o777, 0o700);
});

test.serial("a TypeScript worker with its CURVE key registers over ipc:// and answers a Predict", async (t) => {
  const w = tsWorker("ts", ipc, curve);
  await w.waitFor(/worker registered/);
  t.regex(w.output, /ipc:\/\//);
  const r = await stack.http("/ts-app/predict", { input: [1, 2, 3.5] });
  t.is(r.status, 200);
  t.deepEqual([r.json.output, r.json.default], [6.5, false]);
  t.is((await workersOf("ts"))[0]?.curvePublicKey.length, 40, "it proved its key");
});

test.serial("a Python worker with its CURVE key registers over ipc:// and answers a Predict", async (t) => {
  const w = spawnPythonWorker(workerArgs({ model: "py", version: "1", inputType: "doubles", gateway: ipc, module: "test/fixtures/python/sum.py" }, curve));
  stack.workers.push(w);
  await w.waitFor(/worker registered/);
  const r = await stack.http("/py-app/predict", { input: [2, 2.5] });
  t.is(r.status, 200);
  t.deepEqual([r.json.output, r.json.default], [{ sum: 4.5 }, false]);
});

test.serial("a second gateway on the same directory is refused (exit 2) and the first keeps its socket and serves", async (t) => {
  const before = lstatSync(join(ipcDir, "rpc-0.sock")).ino;
  const failures = await handshakeFailures();
  const second = spawnBin("clipper-gateway", ["--redis-url", stack.redis.url, "--grpc-port", "0", "--http-port", "0", "--rpc-port", "0", "--rpc-ipc-dir", ipcDir]);
  t.is(await second.waitExit(30_000), 2);
  t.regex(second.output, new RegExp(`another gateway is listening on ${ipc.replace(/[/.]/g, "\\$&")}`));
  t.is(lstatSync(join(ipcDir, "rpc-0.sock")).ino, before, "the socket file was left alone");
  // No peer without keys has connected yet, so nothing else can have failed a handshake.
  t.is(await handshakeFailures(), failures, "its probe hung up without counting as a worker that failed CURVE");
  // The worker connected before is still served through it.
  const r = await stack.http("/ts-app/predict", { input: [4, 4] });
  t.deepEqual([r.json.output, r.json.default], [8, false]);
});

test.serial("CURVE holds over ipc://: a worker without keys never registers", async (t) => {
  const before = await handshakeFailures();
  const w = tsWorker("other", ipc, []);
  await w.waitFor(/its worker port may run CURVE/);
  t.true(await eventually(async () => (await handshakeFailures()) > before));
  t.deepEqual(await workersOf("other"), []);
  t.true((await stack.http("/other-app/predict", { input: [1] })).json.default, "no replica: the app's default");
  await w.stop("SIGKILL");
});

test.serial("a socket left by a killed gateway is replaced by the next one, which serves workers on it; a clean stop removes it", async (t) => {
  const own = join(dir, "restart");
  const socket = join(own, "rpc-0.sock");
  const args = ["--redis-url", stack.redis.url, "--grpc-port", "0", "--http-port", "0", "--rpc-port", "0", "--rpc-ipc-dir", own];
  const first = spawnBin("clipper-gateway", args);
  t.teardown(() => first.stop("SIGKILL"));
  await ipcEndpoints(first);
  await first.stop("SIGKILL");
  t.true(lstatSync(socket).isSocket(), "a killed gateway leaves its socket behind");
  const next = spawnBin("clipper-gateway", args);
  t.teardown(() => next.stop("SIGKILL"));
  const endpoint = await ipcEndpoints(next);
  t.regex(next.output, /removed a stale worker socket/);
  t.is(lstatSync(socket).mode & 0o777, 0o600);
  const http = GATEWAY_PORTS_LINE.read(await next.waitFor(GATEWAY_PORTS_LINE.pattern)).http.port;
  // A plaintext gateway: a worker without keys registers there.
  const w = tsWorker("ts", endpoint, []);
  await w.waitFor(/worker registered/);
  const r = await fetch(`http://127.0.0.1:${http}/ts-app/predict`, { method: "POST", body: JSON.stringify({ input: [5, 5] }) });
  t.is(r.status, 200);
  t.like(await r.json(), { output: 10, default: false });
  await w.stop("SIGKILL");
  t.is(await next.stop("SIGTERM"), 0);
  t.false(existsSync(socket), "a clean stop removes the socket");
});

test.serial("directories and paths that cannot work are refused with exit 2, naming the problem", async (t) => {
  const refused = async (ipcDirArg: string, pattern: RegExp): Promise<void> => {
    const g = spawnBin("clipper-gateway", ["--redis-url", stack.redis.url, "--grpc-port", "0", "--http-port", "0", "--rpc-port", "0", "--rpc-ipc-dir", ipcDirArg]);
    t.is(await g.waitExit(30_000), 2, g.output);
    t.regex(g.output, pattern);
  };
  await refused("relative/ipc", /--rpc-ipc-dir must be an absolute path, got 'relative\/ipc'/);
  await refused(join(dir, "x".repeat(100)), /is 1\d\d bytes long; a Unix domain socket's path holds at most 107/);
  const file = join(dir, "a-file");
  writeFileSync(file, "");
  await refused(file, /exists and is not a directory/);
  const open = join(dir, "open");
  mkdirSync(open);
  chmodSync(open, 0o777);
  await refused(open, /is writable by its group or others \(mode 0777\)/);
  const notSocket = join(dir, "not-socket");
  mkdirSync(notSocket, { mode: 0o700 });
  writeFileSync(join(notSocket, "rpc-0.sock"), "");
  await refused(notSocket, /rpc-0\.sock exists and is not a socket/);
  t.false(existsSync(join(dir, "x".repeat(100))), "nothing created for a path that cannot work");
});

test.serial("a directory that does not exist yet is created with mode 0700", async (t) => {
  const fresh = join(dir, "new", "ipc");
  const g = spawnBin("clipper-gateway", ["--redis-url", stack.redis.url, "--grpc-port", "0", "--http-port", "0", "--rpc-port", "0", "--rpc-ipc-dir", fresh]);
  t.teardown(() => g.stop("SIGKILL"));
  await ipcEndpoints(g);
  t.is(statSync(fresh).mode & 0o777, 0o700);
  t.is(lstatSync(join(fresh, "rpc-0.sock")).mode & 0o777, 0o600);
});

test.serial("a worker's ipc:// endpoint that cannot be a socket path is a usage error (exit 2)", async (t) => {
  for (const [gateway, pattern] of [
    ["ipc://relative.sock", /is not absolute/],
    [`ipc:///${"y".repeat(120)}`, /at most 107/],
  ] as const) {
    const w = spawnBin("clipper-worker", ["--model", "m", "--version", "1", "--module", SUM, "--gateway", gateway]);
    t.is(await w.waitExit(30_000), 2);
    t.regex(w.output, pattern);
    const py = spawnPythonWorker(["--model", "m", "--version", "1", "--module", "test/fixtures/python/sum.py", "--gateway", gateway]);
    t.is(await py.waitExit(30_000), 2);
    t.regex(py.output, pattern);
  }
});
