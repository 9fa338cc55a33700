/**
 * deploy/haproxy/haproxy-tls.cfg as shipped, with real haproxy: TLS
 * terminated for clients on one port (gRPC by ALPN h2, HTTPS), opened
 * again to two gateways serving TLS (--tls-cert), whose certificates
 * haproxy verifies against their CA.
 */
import test from "ava";
import { readFileSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { credentials } from "@grpc/grpc-js";
import { PredictClient, PredictRequest, type PredictResponse } from "../../gen/clipper/v1/predict.js";
import { makeTestCerts, type TestCerts } from "../helpers/certs.js";
import { call } from "../helpers/grpc.js";
import { TestHaproxy } from "../helpers/haproxy.js";
import { eventually, spawnBin, startGatewayProcess } from "../helpers/processes.js";
import { Scrape } from "../helpers/prometheus.js";
import { Stack } from "../helpers/stack.js";

type Gateway = Awaited<ReturnType<typeof startGatewayProcess>>;

let certs: TestCerts;
let stack: Stack;
let gateways: [Gateway, Gateway];
let lb: TestHaproxy;

test.before(async () => {
  certs = makeTestCerts();
  const gw = certs.issue("gateway");
  const tlsArgs = ["--tls-cert", gw.cert, "--tls-key", gw.key];
  stack = await Stack.start(tlsArgs);
  gateways = [stack.gateway, await startGatewayProcess(stack.redis.url, tlsArgs)];
  await stack.deploy("tls-app", "sum", "1", "doubles", { sloMicros: 10_000_000 });
  stack.workers.push(spawnBin("clipper-worker", ["--model", "sum", "--version", "1", "--input-type", "doubles", "--module", "test/fixtures/models/sum.js", "--gateway", gateways.map((g) => `tcp://127.0.0.1:${g.rpc}`).join(",")], { CLIPPER_LOG_LEVEL: "info" }));
  const ca = readFileSync(certs.ca);
  for (const g of gateways) {
    const registered = await eventually(async () => new Scrape((await httpsText(g.http, "GET", "/metrics", ca)).body).value("clipper_live_replicas", { model: "sum", version: "1" }) === 1, 30_000);
    if (!registered) throw new Error("the worker did not register with both gateways");
  }
  const front = certs.issue("haproxy");
  const pem = join(certs.dir, "haproxy-bundle.pem");
  writeFileSync(pem, readFileSync(front.cert, "utf8") + readFileSync(front.key, "utf8"), { mode: 0o600 });
  lb = await TestHaproxy.start(gateways, { tls: { pem, gatewayCa: certs.ca, gatewayName: "localhost" } });
  if (!(await eventually(async () => (await lb.isUp("gw1")) && (await lb.isUp("gw2")), 20_000))) throw new Error(`haproxy did not see both TLS gateways ready:\n${lb.output}`);
});

test.after.always(async () => {
  await lb?.stop();
  await gateways?.[1]?.proc.stop("SIGKILL");
  await stack?.close();
});

async function answeredByEach(): Promise<number[]> {
  const ca = readFileSync(certs.ca);
  return Promise.all(
    gateways.map(async (g) => {
      const text = await httpsText(g.http, "GET", "/metrics", ca);
      return new Scrape(text.body).value("clipper_predictions_total", { app: "tls-app", outcome: "ok" }) ?? 0;
    }),
  );
}

function httpsText(port: number, method: string, path: string, ca: Buffer, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", servername: "localhost", port, method, path, ca, headers: body === undefined ? {} : { "content-type": "application/json" } }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

test.serial("gRPC and HTTPS on haproxy's one TLS port reach both TLS gateways", async (t) => {
  const ca = readFileSync(certs.ca);
  const before = await answeredByEach();
  const client = new PredictClient(`127.0.0.1:${lb.tlsPort}`, credentials.createSsl(ca));
  t.teardown(() => client.close());
  const grpc = await Promise.all(
    Array.from({ length: 20 }, (_, i) => call<PredictRequest, PredictResponse>(client, "predict", PredictRequest.fromPartial({ app: "tls-app", input: { doubles: [i, 1] } }))),
  );
  grpc.forEach((r, i) => t.true(r.ok && r.value.output === String(i + 1) && !r.value.default, JSON.stringify(r)));
  for (let i = 0; i < 10; i++) {
    const r = await httpsText(lb.tlsPort, "POST", "/tls-app/predict", ca, JSON.stringify({ input: [100 + i, 1] }));
    t.is(r.status, 200, r.body);
    t.is((JSON.parse(r.body) as { output: unknown }).output, 101 + i);
  }
  const spread = (await answeredByEach()).map((n, i) => n - before[i]!);
  t.is(spread[0]! + spread[1]!, 30);
  t.true(spread.every((n) => n > 0), `calls per gateway: ${spread.join(", ")}`);
});
