/**
 * TLS to Redis (rediss://) with a private CA, against a real redis-server
 * serving TLS only (Debian's 7.0 has --tls-port): the gateway serves a
 * prediction from the catalog it reads there, management writes apps there,
 * the CLI reads them back through management, and `clipper up` runs its
 * servers on a given rediss:// URL.
 */
import test from "ava";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MANAGEMENT_PORTS_LINE } from "../../core/ports-line.js";
import { connectRedis, loadRedisTls } from "../../core/redis-client.js";
import { makeTestCerts, type TestCerts } from "../helpers/certs.js";
import { freePort } from "../helpers/ports.js";
import { eventually, ROOT, spawnBin, startGatewayProcess, startWorkerProcess, type Proc } from "../helpers/processes.js";
import { TestRedis } from "../helpers/redis-server.js";

let redis: TestRedis;
let certs: TestCerts;
const procs: Proc[] = [];
const dirs: string[] = [];

test.before(async () => {
  certs = makeTestCerts();
  redis = await TestRedis.start({ tls: certs.issue("redis-tls"), password: "redis tls password" });
});

test.after.always(async () => {
  for (const p of procs) await p.stop("SIGKILL");
  await redis?.destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** PING through connectRedis: "PONG", or the error's message. */
async function ping(url: string, ca: string): Promise<string> {
  const tls = await loadRedisTls(url, ca);
  if (!tls.ok) return tls.error;
  const client = connectRedis(url, { name: "tls-test", redisTls: tls.value, retryStrategy: () => null, lazyConnect: true });
  // The connection's own error says why (ioredis's rejection only says it closed).
  let cause = "";
  client.on("error", (err: Error) => (cause ||= err.message));
  try {
    await client.connect();
    return await client.ping();
  } catch (err) {
    return cause || (err as Error).message;
  } finally {
    client.disconnect();
  }
}

test.serial("connectRedis reaches a TLS-only Redis with rediss:// and the private CA, and nothing else does", async (t) => {
  t.regex(redis.url, /^rediss:\/\//);
  t.is(await ping(redis.url, certs.ca), "PONG");
  t.regex(await ping(redis.url, ""), /self[- ]signed|unable to (verify|get)|certificate/i, "the system's CAs do not know the private one");
  t.not(await ping(redis.url.replace(/^rediss:/, "redis:"), ""), "PONG", "plaintext to the TLS port");
  t.regex(await ping(redis.url.replace(/^rediss:/, "REDISS:"), certs.ca), /^PONG$/, "the scheme in capitals is TLS too");
  t.regex(await ping(redis.url.replace(/^rediss:/, "redis:"), certs.ca), /--redis-tls-ca is for a rediss:\/\/ or rediss\+sentinel:\/\/ --redis-url/);
  t.notRegex(await ping(redis.url.replace(/^rediss:/, "redis:"), certs.ca), /redis tls password/, "the message hides the password");
  t.regex(await ping(redis.url, join(certs.dir, "missing.pem")), /--redis-tls-ca: cannot read/);
});

test.serial("gateway and management use a rediss:// Redis with --redis-tls-ca (or its env): management writes, the gateway predicts, the CLI reads", async (t) => {
  // The flag for management, the env variable for the gateway; the URL (with its password) from the environment.
  const management = spawnBin("clipper-management", ["--grpc-port", "0", "--http-port", "0", "--redis-tls-ca", certs.ca], { CLIPPER_REDIS_URL: redis.url });
  procs.push(management);
  const m = MANAGEMENT_PORTS_LINE.read(await management.waitFor(MANAGEMENT_PORTS_LINE.pattern));
  const g = await startGatewayProcess(redis.url, [], { CLIPPER_REDIS_TLS_CA: certs.ca });
  procs.push(g.proc);

  const admin = async (endpoint: string, body: unknown): Promise<void> => {
    const r = await fetch(`http://127.0.0.1:${m.http.port}/admin/${endpoint}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    t.is(r.status, 200, `${endpoint}: ${await r.text()}`);
  };
  await admin("add_app", { name: "tlsapp", input_type: "doubles", default_output: "-1", latency_slo_micros: 5_000_000 });
  await admin("add_model", { model_name: "tlsm", model_version: "1", labels: [], input_type: "doubles", container_name: "", model_data_path: "", batch_size: -1 });
  await admin("add_model_links", { app_name: "tlsapp", model_names: ["tlsm"] });

  procs.push(await startWorkerProcess(g.rpc, "tlsm", "1", "doubles", `${ROOT}/test/fixtures/models/sum.js`));
  let answer: unknown = null;
  t.true(await eventually(async () => {
    const r = await fetch(`http://127.0.0.1:${g.http}/tlsapp/predict`, { method: "POST", body: JSON.stringify({ input: [1, 2, 4] }) });
    answer = await r.json();
    return (answer as { default?: boolean }).default === false;
  }), `the gateway read the app from the TLS Redis: ${JSON.stringify(answer)}`);
  t.like(answer, { output: 7, default: false });

  const list = spawnBin("clipper", ["apps", "list", "--management", `127.0.0.1:${m.grpc.port}`]);
  t.is(await list.waitExit(30_000), 0, list.output);
  t.regex(list.output, /tlsapp/);

  // Misconfigured: each stops at start, naming the flag.
  const plain = spawnBin("clipper-management", ["--grpc-port", "0", "--http-port", "0", "--redis-url", "redis://127.0.0.1:1", "--redis-tls-ca", certs.ca]);
  t.is(await plain.waitExit(30_000), 2);
  t.regex(plain.output, /--redis-tls-ca is for a rediss:\/\/ or rediss\+sentinel:\/\/ --redis-url/);
  const notPem = spawnBin("clipper-gateway", ["--grpc-port", "0", "--http-port", "0", "--rpc-port", "0", "--redis-tls-ca", join(ROOT, "package.json")], { CLIPPER_REDIS_URL: redis.url });
  t.is(await notPem.waitExit(30_000), 2);
  t.regex(notPem.output, /--redis-tls-ca: .*package\.json holds no PEM certificate/);
});

test.serial("clipper up runs its servers on a given rediss:// URL with --redis-tls-ca", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "clipper-up-tls-redis-"));
  dirs.push(dir);
  const ports: Record<string, number> = {};
  for (const flag of ["gateway-grpc-port", "gateway-http-port", "rpc-port", "management-grpc-port", "management-http-port"]) ports[flag] = await freePort();
  const up = spawnBin("clipper", ["up", "--data-dir", dir, "--no-status", "--redis-tls-ca", certs.ca, ...Object.entries(ports).flatMap(([k, v]) => [`--${k}`, String(v)])], {
    CLIPPER_REDIS_URL: redis.url,
    CLIPPER_LOG_LEVEL: "warn",
  });
  procs.push(up);
  await up.waitFor(/the stack is running/, 120_000);
  t.false(up.output.includes("redis tls password"), "the banner hides the Redis password");
  const r = await fetch(`http://127.0.0.1:${ports["gateway-http-port"]}/demo/predict`, { method: "POST", body: JSON.stringify({ input: [1, 2, 3] }) });
  t.like(await r.json(), { output: 6, default: false });
  const list = spawnBin("clipper", ["apps", "list", "--management", `127.0.0.1:${ports["management-grpc-port"]}`], { CLIPPER_DATA_DIR: dir });
  t.is(await list.waitExit(30_000), 0, list.output);
  t.regex(list.output, /demo/);
  t.regex(list.output, /tlsapp/, "the app management wrote before, in the same TLS Redis");
  t.is(await up.stop("SIGINT", 40_000), 0);

  const privateRedis = spawnBin("clipper", ["up", "--data-dir", dir, "--redis-tls-ca", certs.ca]);
  t.is(await privateRedis.waitExit(30_000), 2);
  t.regex(privateRedis.output, /--redis-tls-ca goes with --redis-url rediss:\/\//);
  // A Redis URL is checked by the servers' own rule before anything starts; the password stays out of the message.
  const badUrl = spawnBin("clipper", ["up", "--data-dir", dir], { CLIPPER_REDIS_URL: "redis+sentinel://:hunter2@127.0.0.1:26379" });
  t.is(await badUrl.waitExit(30_000), 2);
  t.regex(badUrl.output, /--redis-url: invalid Redis Sentinel URL .*master group/);
  t.false(badUrl.output.includes("hunter2"));
});
