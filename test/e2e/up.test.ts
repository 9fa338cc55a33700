import test from "ava";
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials } from "@grpc/grpc-js";
import { HeartbeatClient, type ListWorkersResponse } from "../../gen/clipper/v1/heartbeat.js";
import { createAdminClient, createHeartbeatClient, createPredictClient } from "../../clients/client.js";
import { portProblem } from "../../clients/cli/local-processes.js";
import { freePort } from "../helpers/ports.js";
import { eventually, spawnBin, type Proc } from "../helpers/processes.js";
import { processesWithEnv } from "../helpers/managed-stack.js";

/** Longest wait for `clipper up` to have the demo serving, in ms. */
const UP_TIMEOUT_MS = 90_000;

const dirs: string[] = [];
const procs: Proc[] = [];
const markers: string[] = [];
test.after.always(async () => {
  for (const p of procs) await p.stop("SIGKILL");
  // Workers of a failed test outlive clipper up by design (adoption): never let them outlive the file.
  for (const pid of markers.flatMap((m) => processesWithEnv(`CLIPPER_TEST_MARKER=${m}`))) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  if (process.env.KEEPDIRS) return;
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function ports(): Promise<Record<string, number>> {
  return {
    "gateway-grpc-port": await freePort(),
    "gateway-http-port": await freePort(),
    "rpc-port": await freePort(),
    "clipper-v3-port": await freePort(),
    "management-grpc-port": await freePort(),
    "management-http-port": await freePort(),
  };
}

function up(p: Record<string, number>, marker: string, extra: string[] = [], dir = mkdtempSync(join(tmpdir(), "clipper-up-"))): Proc {
  if (!dirs.includes(dir)) dirs.push(dir);
  markers.push(marker);
  const args = ["up", "--data-dir", dir, ...Object.entries(p).flatMap(([k, v]) => [`--${k}`, String(v)]), ...extra];
  // Management passes the marker on to the demo worker only when asked to (it gives workers an allow-listed environment).
  const proc = spawnBin("clipper", args, { CLIPPER_TEST_MARKER: marker, CLIPPER_LOG_LEVEL: "warn", CLIPPER_WORKER_INHERIT_ENV: "CLIPPER_TEST_MARKER" });
  procs.push(proc);
  return proc;
}

test.serial("clipper up serves the demo over HTTP, Clipper REST and gRPC, and Ctrl-C stops everything", async (t) => {
  const p = await ports();
  const marker = randomUUID();
  const proc = up(p, marker);
  await proc.waitFor(/the stack is running/, UP_TIMEOUT_MS);
  t.regex(proc.output, new RegExp(`curl -s -X POST http://127\\.0\\.0\\.1:${p["gateway-http-port"]}/v1/apps/demo:predict`));
  t.regex(proc.output, /buf curl --protocol grpc --http2-prior-knowledge/);

  const http = await fetch(`http://127.0.0.1:${p["gateway-http-port"]}/v1/apps/demo:predict`, { method: "POST", body: JSON.stringify({ input: { doubles: [1, 2, 3] } }) });
  t.is(http.status, 200);
  t.like(await http.json(), { output: "6", default: false, model: "sum", modelVersion: "1" });
  const clipperRest = await fetch(`http://127.0.0.1:${p["gateway-http-port"]}/demo/predict`, { method: "POST", body: JSON.stringify({ input: [1, 2, 3] }) });
  t.like(await clipperRest.json(), { output: 6, default: false });
  const grpc = createPredictClient(`127.0.0.1:${p["gateway-grpc-port"]}`);
  t.like(await grpc.predict({ app: "demo", input: { doubles: [1, 2, 3] } }), { output: "6", default: false });
  grpc.close();

  // Secure by default: every API but predict and read needs the token clipper up saved (0600).
  const dir = dirs[dirs.length - 1]!;
  t.is(statSync(join(dir, "token")).mode & 0o777, 0o600);
  const token = readFileSync(join(dir, "token"), "utf8").trim();
  // The worker port runs CURVE: the demo worker registered with the key clipper up made for its workers.
  const workerKey = readFileSync(join(dir, "curve", "workers.pub"), "utf8").split("\n").find((l) => l !== "" && !l.startsWith("#"));
  const heartbeat = new HeartbeatClient(`127.0.0.1:${p["gateway-grpc-port"]}`, credentials.createInsecure());
  const workers = await new Promise<ListWorkersResponse>((resolve, reject) => heartbeat.listWorkers({ modelName: "sum" }, (err, res) => (err ? reject(err) : resolve(res))));
  heartbeat.close();
  t.deepEqual(workers.workers.map((w) => w.curvePublicKey), [workerKey]);
  t.is(statSync(join(dir, "curve", "gateway.key")).mode & 0o777, 0o600);
  t.false(readFileSync(join(dir, "tokens"), "utf8").includes(token), "the servers' tokens file holds only the hash");
  const probe = { inputType: "doubles", numReplicas: 1, worker: { command: ["/bin/sh", "-c", "id > /tmp/pwned"] } };
  const mgmt = `http://127.0.0.1:${p["management-http-port"]}`;
  for (const type of ["application/json", "text/plain"]) {
    const r = await fetch(`${mgmt}/v1/models/p/versions/1:deploy`, { method: "POST", headers: { "content-type": type }, body: JSON.stringify(probe) });
    t.is(r.status, 401, `a deploy without the token (${type})`);
  }
  const admin = createAdminClient(`127.0.0.1:${p["management-grpc-port"]}`);
  await t.throwsAsync(admin.createApp({ name: "x", inputType: "doubles", defaultOutput: "0", latencySloMicros: 100_000 }), { message: /UNAUTHENTICATED/ });
  t.true((await admin.listApps({})).apps.length > 0, "read stays open");
  admin.close();
  const plainText = await fetch(`${mgmt}/v1/models/p/versions/1:deploy`, {
    method: "POST",
    headers: { "content-type": "text/plain", authorization: `Bearer ${token}` },
    body: JSON.stringify(probe),
  });
  t.is(plainText.status, 415, "even with the token, a body a web page could send cross-site is refused");
  const withToken = createAdminClient(`127.0.0.1:${p["management-grpc-port"]}`, { token });
  await withToken.createApp({ name: "x", inputType: "doubles", defaultOutput: "0", latencySloMicros: 100_000 });
  withToken.close();
  // Its private Redis requires a password kept beside the token, shown nowhere.
  t.is(statSync(join(dir, "redis-password")).mode & 0o777, 0o600);
  const redisPassword = readFileSync(join(dir, "redis-password"), "utf8").trim();
  t.false(proc.output.includes(redisPassword), "the banner does not show the Redis password");
  const bannerPort = Number(/redis +redis:\/\/127\.0\.0\.1:(\d+)/.exec(proc.output)?.[1]);
  t.regex(await redisReply(bannerPort, "PING\r\n"), /^-NOAUTH/);
  // The CLI finds the token in --data-dir (or CLIPPER_DATA_DIR) by itself.
  const mgmtFlag = ["--management", `127.0.0.1:${p["management-grpc-port"]}`];
  const refused = spawnBin("clipper", ["apps", "create", "y", "--input-type", "doubles", "--data-dir", join(dir, "elsewhere"), ...mgmtFlag]);
  t.not(await refused.waitExit(30_000), 0);
  t.regex(refused.output, /UNAUTHENTICATED/);
  const created = spawnBin("clipper", ["apps", "create", "y", "--input-type", "doubles", ...mgmtFlag], { CLIPPER_DATA_DIR: dir });
  t.is(await created.waitExit(30_000), 0, created.output);

  // clipper up, the gateway, management and the demo worker carry the marker
  // (redis-server rewrites its process title over its environment, so its port is checked instead).
  const running = processesWithEnv(`CLIPPER_TEST_MARKER=${marker}`);
  t.true(running.length >= 4, `processes with the marker: ${running.length}`);
  // The gateway runs with its heap flags (Node 20 cannot apply the young generation's size from inside).
  const gatewayArgv = running.map((pid) => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")).find((argv) => argv.some((a) => a.endsWith("clipper-gateway.js")));
  t.truthy(gatewayArgv, "the gateway is among them");
  t.true(gatewayArgv!.includes("--max-semi-space-size=8") && gatewayArgv!.includes("--heap-growing-percent=50"), `gateway argv: ${gatewayArgv!.join(" ")}`);
  // The demo worker, on the gateway's host, reaches it over the gateway's Unix domain socket (0600, in a 0700 directory).
  const socket = join(dir, "ipc", "rpc-0.sock");
  t.regex(proc.output, new RegExp(`on this host: ipc://${socket.replace(/[/.]/g, "\\$&")}`));
  t.is(statSync(socket).mode & 0o777, 0o600);
  t.is(statSync(join(dir, "ipc")).mode & 0o777, 0o700);
  const overIpc = processesWithEnv(`CLIPPER_GATEWAY=ipc://${socket}`);
  t.is(overIpc.filter((pid) => running.includes(pid)).length, 1, "the demo worker was given the socket");
  const redisPort = Number(/redis +redis:\/\/127\.0\.0\.1:(\d+)/.exec(proc.output)?.[1]);
  t.true(redisPort > 0);
  t.is(await proc.stop("SIGINT", 40_000), 0);
  t.regex(proc.output, /everything stopped/);
  t.deepEqual(processesWithEnv(`CLIPPER_TEST_MARKER=${marker}`), [], "no process left");
  for (const [flag, port] of Object.entries({ ...p, redis: redisPort })) t.is(await portProblem("127.0.0.1", port), null, `${flag} ${port} is free again`);
  t.false(existsSync(socket), "the gateway removed its socket");
});

test.serial("clipper up --tls serves every port over TLS with its own CA and says how to call", async (t) => {
  const p = await ports();
  const proc = up(p, randomUUID(), ["--tls", "--no-status"]);
  await proc.waitFor(/the stack is running/, UP_TIMEOUT_MS);
  const dir = dirs[dirs.length - 1]!;
  const ca = readFileSync(join(dir, "tls", "ca.pem"));
  t.regex(proc.output, /curl -s --cacert \S+ca\.pem -X POST https:\/\/127\.0\.0\.1:/);
  const secure = createPredictClient(`localhost:${p["gateway-grpc-port"]}`, { credentials: credentials.createSsl(ca) });
  t.like(await secure.predict({ app: "demo", input: { doubles: [1, 2, 3] } }), { output: "6", default: false });
  secure.close();
  const plain = createPredictClient(`127.0.0.1:${p["gateway-grpc-port"]}`, { deadlineMs: 5_000 });
  await t.throwsAsync(plain.predict({ app: "demo", input: { doubles: [1, 2, 3] } }), { message: /UNAVAILABLE/ });
  plain.close();
  const https = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpsRequest(
      { host: "127.0.0.1", servername: "localhost", port: p["gateway-http-port"], path: "/v1/apps/demo:predict", method: "POST", ca, agent: false },
      (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify({ input: { doubles: [1, 2, 3] } }));
  });
  t.is(https.status, 200);
  t.like(JSON.parse(https.body), { output: "6" });
  // clipper status reads /metrics over HTTPS too, trusting the CA given.
  const status = spawnBin("clipper", [
    "status", "--json", "--tls-ca", join(dir, "tls", "ca.pem"),
    "--gateway", `localhost:${p["gateway-grpc-port"]}`, "--management", `localhost:${p["management-grpc-port"]}`, "--gateway-http", `localhost:${p["gateway-http-port"]}`,
  ]);
  t.is(await status.waitExit(30_000), 0, status.output);
  const report = JSON.parse(status.output.slice(status.output.indexOf("{"))) as { callsPerSec: number | null; workers: number | null };
  t.not(report.callsPerSec, null, "the HTTPS scrape of /metrics worked");
  t.true((report.workers ?? 0) >= 1);
  t.is(await proc.stop("SIGINT", 40_000), 0);
});

test.serial("a busy port is a clear error and starts nothing", async (t) => {
  const p = await ports();
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(p["gateway-http-port"], "127.0.0.1", resolve));
  try {
    const marker = randomUUID();
    const proc = up(p, marker);
    t.is(await proc.waitExit(30_000), 1);
    t.regex(proc.output, new RegExp(`port ${p["gateway-http-port"]} \\(gateway HTTP\\) on 127\\.0\\.0\\.1 is already in use.*--gateway-http-port N`));
    t.deepEqual(processesWithEnv(`CLIPPER_TEST_MARKER=${marker}`), []);
  } finally {
    blocker.close();
  }
});

test.serial("kill -9 of clipper up leaves no server and no port behind; the next clipper up ends with the configured replicas, none twice", async (t) => {
  const p = await ports();
  const marker = randomUUID();
  const first = up(p, marker, ["--no-status"]);
  await first.waitFor(/the stack is running/, UP_TIMEOUT_MS);
  const dir = dirs[dirs.length - 1]!;
  const token = readFileSync(join(dir, "token"), "utf8").trim();
  const redisPort = Number(/redis +redis:\/\/127\.0\.0\.1:(\d+)/.exec(first.output)?.[1]);
  t.true(redisPort > 0);
  const admin = createAdminClient(`127.0.0.1:${p["management-grpc-port"]}`, { token });
  await admin.setNumReplicas({ modelName: "sum", numReplicas: 2 });
  admin.close();
  const liveReplicas = async (): Promise<number> => {
    const heartbeat = createHeartbeatClient(`127.0.0.1:${p["gateway-grpc-port"]}`, { deadlineMs: 5_000 });
    try {
      return (await heartbeat.listWorkers({ modelName: "sum" })).workers.filter((w) => !w.draining).length;
    } catch {
      return -1;
    } finally {
      heartbeat.close();
    }
  };
  t.true(await eventually(async () => (await liveReplicas()) === 2 && workerPids(marker).length === 2, 60_000), "two replicas before the kill");

  // redis-server (through setpriv), the gateway and management are clipper up's children.
  const servers = childrenOf(first.child.pid!);
  t.is(servers.length, 3, `children of clipper up: ${servers.map((c) => c.name).join(", ")}`);
  t.true(servers.some((c) => c.name.includes("redis-server")), "redis-server is one of them");
  await first.stop("SIGKILL");
  // The bound: within 2 s none of them is left and no port of the stack is held.
  const stackPorts = Object.entries({ ...p, redis: redisPort });
  const held = async (): Promise<string[]> => {
    const busy: string[] = [];
    for (const [flag, port] of stackPorts) if ((await portProblem("127.0.0.1", port)) !== null) busy.push(`${flag} ${port}`);
    return busy;
  };
  const clean = await eventually(async () => servers.every((c) => !alive(c.pid)) && (await held()).length === 0, 2_000);
  t.true(clean, `left running: [${servers.filter((c) => alive(c.pid)).map((c) => c.name).join(", ")}]; ports held: [${(await held()).join(", ")}]`);
  // By design the replica manager's workers outlive it, for the next management to adopt.
  t.is(workerPids(marker).length, 2, "the workers are still running");

  const second = up(p, marker, ["--no-status"], dir);
  await second.waitFor(/the stack is running/, UP_TIMEOUT_MS);
  t.true(await eventually(async () => (await liveReplicas()) === 2, 60_000), "two live replicas again");
  // Give a wrongly started extra worker time to register before counting.
  await new Promise((r) => setTimeout(r, 3_000));
  t.is(await liveReplicas(), 2, "exactly the configured replicas are live");
  t.is(workerPids(marker).length, 2, "exactly two worker processes: adopted or restarted, none twice");
  const grpc = createPredictClient(`127.0.0.1:${p["gateway-grpc-port"]}`);
  t.like(await grpc.predict({ app: "demo", input: { doubles: [2, 3] } }), { output: "5", default: false });
  grpc.close();
  t.is(await second.stop("SIGINT", 40_000), 0);
  t.deepEqual(processesWithEnv(`CLIPPER_TEST_MARKER=${marker}`), [], "no process left");
});

/** Pids of the demo's worker processes carrying `marker`. */
function workerPids(marker: string): number[] {
  return processesWithEnv(`CLIPPER_TEST_MARKER=${marker}`).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("clipper-worker");
    } catch {
      return false;
    }
  });
}

/** Live children of `parent` (Linux /proc), with their command names. */
function childrenOf(parent: number): { pid: number; name: string }[] {
  const found: { pid: number; name: string }[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      // The command name is in parentheses and may hold spaces; the parent pid is the second field after it.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === parent) found.push({ pid: Number(e), name: readFileSync(`/proc/${e}/cmdline`, "utf8").split("\0").filter((a) => a !== "").slice(0, 2).join(" ") });
    } catch {
      // gone
    }
  }
  return found;
}

/** Whether `pid` is a live process: a zombie whose threads have all exited (nobody reaped it yet) counts as gone. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z" || readdirSync(`/proc/${pid}/task`).length > 1;
  } catch {
    return false;
  }
}

/** The first reply line of a raw Redis command. */
function redisReply(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(command));
    socket.setTimeout(5_000, () => socket.destroy(new Error("no reply")));
    socket.once("data", (d) => {
      socket.destroy();
      resolve(d.toString());
    });
    socket.once("error", reject);
  });
}

test.serial("clipper up --gateways 2 runs two gateway processes on one port pair, and the demo worker serves both", async (t) => {
  // Worker ports are --rpc-port + i: 0 gives each process a free one.
  const p: Record<string, number> = { ...(await ports()), "rpc-port": 0 };
  const proc = up(p, randomUUID(), ["--gateways", "2", "--no-status"]);
  await proc.waitFor(/the stack is running/, UP_TIMEOUT_MS);
  const url = `http://127.0.0.1:${p["gateway-http-port"]}`;
  let live: number[] = [];
  for (let i = 0; i < 100 && !(live.length === 2 && live.every((n) => n === 1)); i++) {
    const text = await (await fetch(`${url}/metrics`)).text();
    live = ["0", "1"].map((n) => Number(new RegExp(`clipper_live_replicas\\{[^}]*process="${n}"[^}]*\\} (\\d+)`).exec(text)?.[1] ?? 0));
    await new Promise((r) => setTimeout(r, 200));
  }
  t.deepEqual(live, [1, 1], "one live replica (the demo worker) in each gateway process");
  const res = await fetch(`${url}/demo/predict`, { method: "POST", body: JSON.stringify({ input: [2, 3] }), headers: { connection: "close" } });
  t.like(await res.json(), { output: 5, default: false });
  proc.child.kill("SIGINT");
  t.is(await proc.waitExit(60_000), 0);
});

test.serial("clipper up --demo iris serves the scikit-learn model on the Python worker", async (t) => {
  const p = await ports();
  const proc = up(p, randomUUID(), ["--demo", "iris", "--no-status"]);
  await proc.waitFor(/the stack is running/, UP_TIMEOUT_MS);
  const predict = async (x: number[]): Promise<unknown> => {
    const res = await fetch(`http://127.0.0.1:${p["gateway-http-port"]}/v1/apps/iris:predict`, { method: "POST", body: JSON.stringify({ input: { doubles: x } }) });
    return res.json();
  };
  t.like(await predict([5.1, 3.5, 1.4, 0.2]), { output: "setosa", default: false, model: "iris" });
  t.like(await predict([6.7, 3.0, 5.2, 2.3]), { output: "virginica", default: false, model: "iris" });
  proc.child.kill("SIGINT");
  t.is(await proc.waitExit(60_000), 0);
});
