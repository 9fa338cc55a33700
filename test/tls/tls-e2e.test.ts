/**
 * TLS and mutual TLS on real server processes with real certificates (a
 * private CA made by openssl): gRPC, HTTPS, reflection through buf curl,
 * plaintext refused fast, and a new certificate picked up on SIGHUP.
 */
import test from "ava";
import { execFile, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { TLSSocket } from "node:tls";
import { Client, credentials, status, type ChannelCredentials } from "@grpc/grpc-js";
import { createHeartbeatClient, isServiceError } from "../../clients/client.js";
import { makeTestCerts, type TestCerts } from "../helpers/certs.js";
import { MANAGEMENT_PORTS_LINE, WORKER_PORTS_LINE } from "../../core/ports-line.js";
import { eventually, ROOT, spawnBin, startGatewayProcess, type Proc } from "../helpers/processes.js";
import { TestRedis } from "../helpers/redis-server.js";

let redis: TestRedis;
let certs: TestCerts;
const procs: Proc[] = [];

test.before(async () => {
  redis = await TestRedis.start();
  certs = makeTestCerts();
});

test.after.always(async () => {
  for (const p of procs) await p.stop();
  await redis?.destroy();
});

/** GET over HTTPS; resolves with the status and the server certificate's CN, or the error. */
function httpsGet(port: number, path: string, o: { ca: string; client?: { cert: string; key: string } }): Promise<{ status: number; cn: string } | Error> {
  return new Promise((resolve) => {
    const req = httpsRequest(
      {
        host: "127.0.0.1",
        // SNI takes names only; the certificate covers both.
        servername: "localhost",
        port,
        path,
        ca: readFileSync(o.ca),
        agent: false,
        timeout: 5_000,
        ...(o.client === undefined ? {} : { cert: readFileSync(o.client.cert), key: readFileSync(o.client.key) }),
      },
      (res) => {
        const cn = String((res.socket as TLSSocket).getPeerCertificate().subject?.CN ?? "");
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode ?? 0, cn }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", resolve);
    req.end();
  });
}

/** ListWorkers over a channel with these credentials: "ok" or the status code. */
async function listWorkers(port: number, creds: ChannelCredentials): Promise<"ok" | number> {
  const client = createHeartbeatClient(`127.0.0.1:${port}`, { credentials: creds, deadlineMs: 5_000 });
  try {
    await client.listWorkers({});
    return "ok";
  } catch (err) {
    return isServiceError(err) ? err.code : -1;
  } finally {
    client.close();
  }
}

test.serial("a gateway with --tls-cert serves gRPC and HTTPS, reflection through buf curl, and refuses plaintext at once", async (t) => {
  const server = certs.issue("gateway-1");
  const g = await startGatewayProcess(redis.url, ["--tls-cert", server.cert, "--tls-key", server.key]);
  procs.push(g.proc);
  const ca = readFileSync(certs.ca);
  t.is(await listWorkers(g.grpc, credentials.createSsl(ca)), "ok");
  t.like(await httpsGet(g.http, "/healthz", { ca: certs.ca }), { status: 200, cn: "gateway-1" });

  const started = Date.now();
  t.is(await listWorkers(g.grpc, credentials.createInsecure()), status.UNAVAILABLE, "a plaintext gRPC client fails, not hangs");
  t.true(Date.now() - started < 5_000, "before its deadline");
  const plain = await new Promise<Error | number>((resolve) => {
    const req = httpRequest({ host: "127.0.0.1", port: g.http, path: "/healthz", timeout: 5_000, agent: false }, (res) => resolve(res.statusCode ?? 0));
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", resolve);
    req.end();
  });
  t.true(plain instanceof Error && plain.message !== "timed out", `plain HTTP to the HTTPS port: ${String(plain)}`);

  // Reflection over TLS: buf curl needs no .proto file.
  const out = await new Promise<string>((resolve, reject) =>
    execFile(
      "npx",
      ["buf", "curl", "--protocol", "grpc", "--cacert", certs.ca, "-d", "{}", `https://127.0.0.1:${g.grpc}/clipper.v1.Heartbeat/ListWorkers`],
      { cwd: ROOT, timeout: 60_000 },
      (err, stdout, stderr) => (err === null ? resolve(stdout) : reject(new Error(`${err.message}\n${stderr}`))),
    ),
  );
  t.deepEqual(JSON.parse(out === "" ? "{}" : out), {});
});

test.serial("SIGHUP makes the gateway serve a new certificate without a restart", async (t) => {
  const first = certs.issue("reload-1");
  const second = certs.issue("reload-2");
  const live = { cert: `${certs.dir}/live.pem`, key: `${certs.dir}/live.key` };
  copyFileSync(first.cert, live.cert);
  copyFileSync(first.key, live.key);
  const g = await startGatewayProcess(redis.url, ["--tls-cert", live.cert, "--tls-key", live.key]);
  procs.push(g.proc);
  t.like(await httpsGet(g.http, "/healthz", { ca: certs.ca }), { cn: "reload-1" });
  copyFileSync(second.cert, live.cert);
  copyFileSync(second.key, live.key);
  g.proc.child.kill("SIGHUP");
  t.true(await eventually(async () => {
    const r = await httpsGet(g.http, "/healthz", { ca: certs.ca });
    return !(r instanceof Error) && r.cn === "reload-2";
  }, 10_000), "HTTPS serves the new certificate");
  t.is(await listWorkers(g.grpc, credentials.createSsl(readFileSync(certs.ca))), "ok", "gRPC still serves after the reload");
  t.is(g.proc.child.exitCode, null, "the process kept running");
});

test.serial("management with --tls-client-ca refuses clients without a certificate and serves those with one", async (t) => {
  const server = certs.issue("management-1");
  const client = certs.issue("operator", { server: false });
  const proc = spawnBin("clipper-management", [
    "--redis-url", redis.url, "--grpc-port", "0", "--http-port", "0",
    "--tls-cert", server.cert, "--tls-key", server.key, "--tls-client-ca", certs.ca,
  ]);
  procs.push(proc);
  const ports = MANAGEMENT_PORTS_LINE.read(await proc.waitFor(MANAGEMENT_PORTS_LINE.pattern));
  const ca = readFileSync(certs.ca);
  const admin = (creds: ChannelCredentials) => healthCheck(ports.grpc.port, creds);
  t.is(await admin(credentials.createSsl(ca)), status.UNAVAILABLE, "no client certificate");
  t.is(await admin(credentials.createSsl(ca, readFileSync(client.key), readFileSync(client.cert))), "ok");
  t.true((await httpsGet(ports.http.port, "/healthz", { ca: certs.ca })) instanceof Error, "HTTPS without a client certificate");
  t.like(await httpsGet(ports.http.port, "/healthz", { ca: certs.ca, client }), { status: 200 });

  // The CLI: --tls-ca, --tls-cert and --tls-key (or CLIPPER_CLIENT_TLS_*).
  const mgmt = ["--management", `127.0.0.1:${ports.grpc.port}`];
  const withCert = spawnBin("clipper", ["apps", "list", ...mgmt, "--tls-ca", certs.ca, "--tls-cert", client.cert, "--tls-key", client.key]);
  t.is(await withCert.waitExit(30_000), 0, withCert.output);
  const fromEnv = spawnBin("clipper", ["apps", "list", ...mgmt], { CLIPPER_CLIENT_TLS_CA: certs.ca, CLIPPER_CLIENT_TLS_CERT: client.cert, CLIPPER_CLIENT_TLS_KEY: client.key });
  t.is(await fromEnv.waitExit(30_000), 0, fromEnv.output);
  const noCert = spawnBin("clipper", ["apps", "list", ...mgmt, "--tls-ca", certs.ca]);
  t.is(await noCert.waitExit(30_000), 3, "refused without a client certificate");
  const halfPair = spawnBin("clipper", ["apps", "list", ...mgmt, "--tls-cert", client.cert]);
  t.is(await halfPair.waitExit(30_000), 2);
  t.regex(halfPair.output, /--tls-cert and --tls-key go together/);
});

/** A health check over a channel with these credentials: "ok" or the status code. */
function healthCheck(port: number, creds: ChannelCredentials): Promise<"ok" | number> {
  const client = new Client(`127.0.0.1:${port}`, creds);
  return new Promise((resolve) => {
    // An empty Check request asks about the whole server.
    client.makeUnaryRequest("/grpc.health.v1.Health/Check", () => Buffer.alloc(0), (b: Buffer) => b, Buffer.alloc(0), { deadline: Date.now() + 5_000 }, (err) => {
      client.close();
      resolve(err === null ? "ok" : err.code);
    });
  });
}

test.serial("a worker serves its metrics port over HTTPS with --tls-cert", async (t) => {
  const server = certs.issue("worker-metrics");
  const proc = spawnBin("clipper-worker", [
    "--model", "m", "--version", "1", "--gateway", "tcp://127.0.0.1:1", "--module", `${ROOT}/test/fixtures/models/sum.js`,
    "--metrics-port", "0", "--tls-cert", server.cert, "--tls-key", server.key,
  ]);
  procs.push(proc);
  const port = WORKER_PORTS_LINE.read(await proc.waitFor(WORKER_PORTS_LINE.pattern)).metrics.port;
  t.like(await httpsGet(port, "/healthz", { ca: certs.ca }), { status: 200, cn: "worker-metrics" });
  const noPort = spawnBin("clipper-worker", ["--model", "m", "--version", "1", "--module", `${ROOT}/test/fixtures/models/sum.js`, "--tls-cert", server.cert, "--tls-key", server.key]);
  t.is(await noPort.waitExit(30_000), 2);
  t.regex(noPort.output, /give --metrics-port too/);
});

/** Debian's Python with grpcio and the generated stubs (scripts/test.sh installs both). */
const python = "/usr/bin/python3";
const pythonReady = spawnSync(python, ["-c", "import grpc"]).status === 0 && existsSync(`${ROOT}/gen/python/clipper/v1/predict_pb2.py`);

(pythonReady ? test.serial : test.serial.skip)("the Python example calls over TLS with a token", async (t) => {
  const server = certs.issue("python-gateway");
  const tokens = `${certs.dir}/python-tokens`;
  writeFileSync(tokens, "predict python-token-0123456789\n");
  const g = await startGatewayProcess(redis.url, ["--tls-cert", server.cert, "--tls-key", server.key, "--auth-tokens", tokens]);
  procs.push(g.proc);
  const run = (env: Record<string, string>) =>
    new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(python, ["clients/python/predict_example.py", "no-such-app", "1"], { cwd: ROOT, env: { ...process.env, CLIPPER_GATEWAY_ADDR: `localhost:${g.grpc}`, CLIPPER_CLIENT_TLS_CA: certs.ca, ...env }, timeout: 30_000 }, (err, _out, stderr) =>
        resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? -1), stderr }),
      ),
    );
  const withToken = await run({ CLIPPER_TOKEN: "python-token-0123456789" });
  t.regex(withToken.stderr, /NOT_FOUND/, "admitted over TLS: the gateway answered for the unknown app");
  const without = await run({});
  t.regex(without.stderr, /UNAUTHENTICATED/);
});

test("bad TLS flags stop a server at start with exit 2", async (t) => {
  const server = certs.issue("bad-flags");
  for (const [args, message] of [
    [["--tls-cert", server.cert], /--tls-cert and --tls-key go together/],
    [["--tls-client-ca", certs.ca], /--tls-client-ca needs --tls-cert and --tls-key/],
    [["--tls-cert", server.cert, "--tls-key", certs.ca], /--tls-cert\/--tls-key\/--tls-client-ca: /],
  ] as const) {
    const err = await startGatewayProcess(redis.url, args).catch((e: unknown) => e);
    t.true(err instanceof Error, args.join(" "));
    t.regex(String((err as Error).message), message);
    t.regex(String((err as Error).message), /process exited \(2\)/);
  }
});
