/**
 * HTTP/2 by ALPN on the HTTPS ports, with real processes and certificates:
 * an h2 client calls a predict route, Admin routes (transcoded and Clipper's
 * /admin/*) and /metrics, with the same tokens, guards and limits as
 * HTTP/1.1, which keeps working on the same port; mutual TLS refuses an h2
 * client without a certificate; a SIGHUP reload keeps an open h2 session;
 * a stopping server closes its h2 sessions and exits.
 */
import test from "ava";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { connect, type ClientHttp2Session, type IncomingHttpHeaders } from "node:http2";
import { request as httpsRequest, type RequestOptions } from "node:https";
import type { TLSSocket } from "node:tls";
import { MANAGEMENT_PORTS_LINE, WORKER_PORTS_LINE } from "../../core/ports-line.js";
import { makeTestCerts, type TestCerts } from "../helpers/certs.js";
import { eventually, ROOT, spawnBin, startGatewayProcess, startWorkerProcess, type Proc } from "../helpers/processes.js";
import { TestRedis } from "../helpers/redis-server.js";

let redis: TestRedis;
let certs: TestCerts;
let tokens: string;
const procs: Proc[] = [];
const ALL = "h2-all-scopes-token-0123456789";
const READ = "h2-read-only-token-0123456789";

test.before(async () => {
  redis = await TestRedis.start();
  certs = makeTestCerts();
  tokens = `${certs.dir}/h2-tokens`;
  writeFileSync(tokens, `predict,read,admin,deploy ${ALL}\nread ${READ}\n`);
});

test.after.always(async () => {
  for (const p of procs) await p.stop();
  await redis?.destroy();
});

/** An h2 session to 127.0.0.1:port (SNI localhost), once connected; or the error that ended it. */
function h2Connect(port: number, o: { client?: { cert: string; key: string } } = {}): Promise<ClientHttp2Session | Error> {
  return new Promise((resolve) => {
    const session = connect(`https://127.0.0.1:${port}`, {
      ca: readFileSync(certs.ca),
      servername: "localhost",
      ...(o.client === undefined ? {} : { cert: readFileSync(o.client.cert), key: readFileSync(o.client.key) }),
    });
    session.once("connect", () => resolve(session));
    session.once("error", resolve);
  });
}

interface H2Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** One request on an h2 session; the body, if any, is sent in DATA frames without content-length unless given. */
function h2Call(session: ClientHttp2Session, method: string, path: string, o: { token?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<H2Answer | Error> {
  return new Promise((resolve) => {
    const stream = session.request(
      { ":method": method, ":path": path, ...(o.token === undefined ? {} : { authorization: `Bearer ${o.token}` }), ...o.headers },
      { endStream: o.body === undefined },
    );
    let headers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => (headers = h));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => resolve({ status: Number(headers[":status"]), headers, body: Buffer.concat(chunks).toString() }));
    stream.on("error", resolve);
    stream.setTimeout(10_000, () => stream.close());
    if (o.body !== undefined) stream.end(o.body);
  });
}

/** The answer, or fails the test with the error. */
function ok(a: H2Answer | Error): H2Answer {
  if (a instanceof Error) throw a;
  return a;
}

/** GET over HTTPS with HTTP/1.1 only offered: status, body and the protocol ALPN chose. */
function http1Get(port: number, path: string, token: string): Promise<{ status: number; body: string; alpn: string | false }> {
  // Passed on to tls.connect, though node:https's options type leaves it out.
  const options: RequestOptions & { ALPNProtocols: string[] } = {
    host: "127.0.0.1", servername: "localhost", port, path, ca: readFileSync(certs.ca), agent: false, timeout: 10_000, ALPNProtocols: ["http/1.1"], headers: { authorization: `Bearer ${token}` },
  };
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      options,
      (res) => {
        const alpn = (res.socket as TLSSocket).alpnProtocol ?? false;
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), alpn }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    req.end();
  });
}

const json = { "content-type": "application/json" };

test.serial("gateway and management answer h2 by ALPN: predict, Admin and /metrics, with tokens, guards and limits; HTTP/1.1 on the same ports", async (t) => {
  const mCert = certs.issue("h2-management");
  const gCert = certs.issue("h2-gateway");
  const management = spawnBin("clipper-management", [
    "--redis-url", redis.url, "--grpc-port", "0", "--http-port", "0", "--tls-cert", mCert.cert, "--tls-key", mCert.key, "--auth-tokens", tokens,
  ]);
  procs.push(management);
  const mPort = MANAGEMENT_PORTS_LINE.read(await management.waitFor(MANAGEMENT_PORTS_LINE.pattern)).http.port;
  const g = await startGatewayProcess(redis.url, ["--tls-cert", gCert.cert, "--tls-key", gCert.key, "--auth-tokens", tokens]);
  procs.push(g.proc);

  const m = await h2Connect(mPort);
  if (m instanceof Error) return t.fail(`h2 to management: ${m.message}`);
  t.teardown(() => m.close());
  t.is(m.alpnProtocol, "h2", "ALPN chose h2");

  // Admin, transcoded and Clipper's /admin/*, over h2 with the token.
  t.is(ok(await h2Call(m, "POST", "/v1/apps", { token: ALL, headers: json, body: JSON.stringify({ name: "h2app", input_type: "doubles", default_output: "-1", latency_slo_micros: 5_000_000 }) })).status, 200);
  const model = { model_name: "h2m", model_version: "1", labels: [], input_type: "doubles", container_name: "", model_data_path: "", batch_size: -1 };
  t.is(ok(await h2Call(m, "POST", "/admin/add_model", { token: ALL, headers: json, body: JSON.stringify(model) })).status, 200);
  t.is(ok(await h2Call(m, "POST", "/admin/add_model_links", { token: ALL, headers: json, body: JSON.stringify({ app_name: "h2app", model_names: ["h2m"] }) })).status, 200);
  const app = ok(await h2Call(m, "GET", "/v1/apps/h2app", { token: READ }));
  t.is(app.status, 200, app.body);
  t.deepEqual((JSON.parse(app.body) as { app: { linkedModels: string[] } }).app.linkedModels, ["h2m"]);

  // The same refusals as over HTTP/1.1.
  const noToken = ok(await h2Call(m, "GET", "/v1/apps/h2app"));
  t.is(noToken.status, 401);
  t.regex(String(noToken.headers["www-authenticate"]), /^Bearer/);
  t.is(ok(await h2Call(m, "POST", "/v1/apps", { token: READ, headers: json, body: "{}" })).status, 403, "read cannot write");
  t.is(ok(await h2Call(m, "POST", "/admin/add_app", { token: ALL, headers: { "content-type": "text/plain" }, body: "{}" })).status, 415);
  t.is(ok(await h2Call(m, "DELETE", "/v1/apps/h2app", { token: ALL, body: "x" })).status, 415, "an h2 body without content-length or type is still a body");
  const rebound = ok(await h2Call(m, "GET", "/v1/apps/h2app", { token: READ, headers: { ":authority": `rebound.example:${mPort}` } }));
  t.is(rebound.status, 421, "the Host check reads h2's :authority");
  t.regex(rebound.body, /rebound\.example/);
  t.is(ok(await h2Call(m, "GET", "/v1/apps/h2app", { token: READ, headers: { ":authority": `localhost:${mPort}` } })).status, 200);

  // HTTP/1.1 on the same port.
  const h1 = await http1Get(mPort, "/v1/apps/h2app", READ);
  t.is(h1.alpn, "http/1.1");
  t.is(h1.status, 200);

  // Predict on the gateway over h2, once a worker serves the model.
  await startWorkerProcess(g.rpc, "h2m", "1", "doubles", `${ROOT}/test/fixtures/models/sum.js`).then((w) => procs.push(w));
  const gw = await h2Connect(g.http);
  if (gw instanceof Error) return t.fail(`h2 to the gateway: ${gw.message}`);
  t.teardown(() => gw.close());
  t.is(gw.alpnProtocol, "h2");
  let clipper: H2Answer | Error = new Error("not called");
  t.true(await eventually(async () => {
    clipper = await h2Call(gw, "POST", "/h2app/predict", { token: ALL, headers: json, body: JSON.stringify({ input: [1, 2, 3.5] }) });
    return !(clipper instanceof Error) && clipper.status === 200 && !(JSON.parse(clipper.body) as { default: boolean }).default;
  }), `Clipper REST predict over h2: ${JSON.stringify(clipper)}`);
  t.is((JSON.parse(ok(clipper).body) as { output: number }).output, 6.5);
  const transcoded = ok(await h2Call(gw, "POST", "/v1/apps/h2app:predict", { token: ALL, headers: json, body: JSON.stringify({ input: { doubles: [2, 2] } }) }));
  t.is(transcoded.status, 200, transcoded.body);
  t.regex(transcoded.body, /"4"/, transcoded.body);
  t.is(ok(await h2Call(gw, "POST", "/h2app/predict", { token: READ, headers: json, body: "{}" })).status, 403, "read cannot predict");
  const tooLarge = ok(await h2Call(gw, "POST", "/h2app/predict", { token: ALL, headers: json, body: Buffer.alloc(5 * 1024 * 1024, 0x20) }));
  t.is(tooLarge.status, 413, "a streamed h2 body over the limit");
  t.is(ok(await h2Call(gw, "GET", "/healthz")).status, 200, "the session still serves after the 413");
  const metrics = ok(await h2Call(gw, "GET", "/metrics", { token: READ }));
  t.is(metrics.status, 200);
  t.regex(metrics.body, /clipper_/);
  t.is(ok(await h2Call(gw, "GET", "/metrics")).status, 401);
  const h1Metrics = await http1Get(g.http, "/metrics", READ);
  t.is(h1Metrics.alpn, "http/1.1");
  t.is(h1Metrics.status, 200);
});

test.serial("a worker's HTTPS metrics port answers h2", async (t) => {
  const cert = certs.issue("h2-worker");
  const proc = spawnBin("clipper-worker", [
    "--model", "m", "--version", "1", "--gateway", "tcp://127.0.0.1:1", "--module", `${ROOT}/test/fixtures/models/sum.js`,
    "--metrics-port", "0", "--tls-cert", cert.cert, "--tls-key", cert.key,
  ]);
  procs.push(proc);
  const port = WORKER_PORTS_LINE.read(await proc.waitFor(WORKER_PORTS_LINE.pattern)).metrics.port;
  const s = await h2Connect(port);
  if (s instanceof Error) return t.fail(s.message);
  t.teardown(() => s.close());
  t.is(s.alpnProtocol, "h2");
  const metrics = ok(await h2Call(s, "GET", "/metrics"));
  t.is(metrics.status, 200);
  t.regex(metrics.body, /clipper_worker_/);
});

test.serial("with --tls-client-ca an h2 client without a certificate is refused and one with a certificate served", async (t) => {
  const cert = certs.issue("h2-mtls");
  const client = certs.issue("h2-operator", { server: false });
  const proc = spawnBin("clipper-management", [
    "--redis-url", redis.url, "--grpc-port", "0", "--http-port", "0", "--tls-cert", cert.cert, "--tls-key", cert.key, "--tls-client-ca", certs.ca,
  ]);
  procs.push(proc);
  const port = MANAGEMENT_PORTS_LINE.read(await proc.waitFor(MANAGEMENT_PORTS_LINE.pattern)).http.port;
  // With TLS 1.3 the client may count the handshake done before the server
  // checks its certificate; then the refusal ends the first request instead.
  const anonymous = await h2Connect(port);
  const refused = anonymous instanceof Error ? anonymous : await h2Call(anonymous, "GET", "/healthz");
  if (!(anonymous instanceof Error)) anonymous.destroy();
  t.true(refused instanceof Error, `without a client certificate: ${JSON.stringify(refused)}`);
  const withCert = await h2Connect(port, { client });
  if (withCert instanceof Error) return t.fail(withCert.message);
  t.teardown(() => withCert.close());
  t.is(ok(await h2Call(withCert, "GET", "/healthz")).status, 200);
});

test.serial("SIGHUP reloads the certificate without dropping an open h2 session, and SIGTERM closes sessions and exits", async (t) => {
  const first = certs.issue("h2-reload-1");
  const second = certs.issue("h2-reload-2");
  const live = { cert: `${certs.dir}/h2-live.pem`, key: `${certs.dir}/h2-live.key` };
  copyFileSync(first.cert, live.cert);
  copyFileSync(first.key, live.key);
  const g = await startGatewayProcess(redis.url, ["--tls-cert", live.cert, "--tls-key", live.key]);
  procs.push(g.proc);
  const open = await h2Connect(g.http);
  if (open instanceof Error) return t.fail(open.message);
  const cn = (s: ClientHttp2Session): string => String((s.socket as TLSSocket).getPeerCertificate().subject?.CN ?? "");
  t.is(cn(open), "h2-reload-1");
  copyFileSync(second.cert, live.cert);
  copyFileSync(second.key, live.key);
  g.proc.child.kill("SIGHUP");
  t.true(await eventually(async () => {
    const s = await h2Connect(g.http);
    if (s instanceof Error) return false;
    const name = cn(s);
    s.close();
    return name === "h2-reload-2";
  }, 10_000), "new sessions get the new certificate");
  t.is(ok(await h2Call(open, "GET", "/healthz")).status, 200, "the session opened before the reload still serves");
  t.false(open.closed || open.destroyed);

  // The session stays open on the client's side; stopping must not wait for it.
  const goaway = new Promise<boolean>((resolve) => {
    open.once("goaway", () => resolve(true));
    open.once("close", () => resolve(false));
  });
  t.is(await g.proc.stop("SIGTERM", 20_000), 0, "exited by itself, not killed");
  t.true(await goaway, "the server sent GOAWAY");
  open.destroy();
});
