/** The rule that keeps a server from being exposed by accident. */
import test from "ava";
import { pino } from "pino";
import { exposureError, insecureWarning } from "../../core/exposure.js";
import { startManagement } from "../../management/management.js";
import { eventually, spawnBin } from "../helpers/processes.js";
import { TestRedis } from "../helpers/redis-server.js";

const NONE = { tls: false, tokens: false, workerPort: false } as const;

test("loopback binds start whatever is configured", (t) => {
  for (const host of ["127.0.0.1", "localhost", "::1", "127.1.2.3"]) t.is(exposureError(host, NONE, false), null, host);
});

test("an exposed server names every protection it lacks; management has no worker port", (t) => {
  const gateway = exposureError("0.0.0.0", { tls: true, tokens: false, workerPort: false }, false);
  t.regex(gateway ?? "", /tokens \(--auth-tokens\)/);
  t.regex(gateway ?? "", /worker authentication/);
  t.notRegex(gateway ?? "", /TLS \(/);
  t.regex(gateway ?? "", /--insecure/);
  t.is(exposureError("10.0.0.5", { tls: true, tokens: true, workerPort: "none" }, false), null);
  t.regex(exposureError("10.0.0.5", { tls: false, tokens: true, workerPort: "none" }, false) ?? "", /TLS \(--tls-cert, --tls-key\)/);
});

test("--insecure starts an exposed server, which then warns; a protected or loopback one does not", (t) => {
  t.is(exposureError("0.0.0.0", NONE, true), null);
  t.regex(insecureWarning("0.0.0.0", NONE, true) ?? "", /^INSECURE: listening on 0\.0\.0\.0 without TLS/);
  t.is(insecureWarning("127.0.0.1", NONE, true), null);
  t.is(insecureWarning("0.0.0.0", { tls: true, tokens: true, workerPort: "none" }, true), null);
});

test("a gateway on a non-loopback host without protection exits 2 before binding anything", async (t) => {
  const proc = spawnBin("clipper-gateway", ["--host", "0.0.0.0", "--grpc-port", "0", "--http-port", "0", "--rpc-port", "0", "--redis-url", "redis://127.0.0.1:1"]);
  t.is(await proc.waitExit(30_000), 2);
  t.regex(proc.output, /--host 0\.0\.0\.0 is reachable from other machines/);
  t.regex(proc.output, /--tls-cert.*--auth-tokens.*CURVE/s);
});

test("an --insecure server shows its warning in /readyz", async (t) => {
  const redis = await TestRedis.start();
  const warning = "INSECURE: listening on 0.0.0.0 without TLS (--tls-cert, --tls-key)";
  const m = await startManagement({ redisUrl: redis.url, host: "127.0.0.1", grpcPort: 0, httpPort: 0, warning }, pino({ level: "silent" }));
  try {
    let body: { warning?: string } = {};
    t.true(await eventually(async () => {
      const res = await fetch(`http://127.0.0.1:${m.httpPort}/readyz`);
      body = (await res.json()) as { warning?: string };
      return res.status === 200;
    }, 30_000));
    t.is(body.warning, warning);
  } finally {
    await m.close(0);
    await redis.destroy();
  }
});
