/** Servers on a Redis that requires a password: the URL's password works, a wrong one is a clear not-ready, never a crash. */
import test from "ava";
import { MANAGEMENT_PORTS_LINE } from "../../core/ports-line.js";
import { eventually, spawnBin, startGatewayProcess, type Proc } from "../helpers/processes.js";
import { TestRedis } from "../helpers/redis-server.js";

let redis: TestRedis;
const procs: Proc[] = [];

test.before(async () => {
  redis = await TestRedis.start({ password: "p@ss word/with:odd chars" });
});

test.after.always(async () => {
  for (const p of procs) await p.stop();
  await redis?.destroy();
});

async function management(url: string): Promise<{ proc: Proc; http: number }> {
  // The URL travels in the environment, as clipper up passes it.
  const proc = spawnBin("clipper-management", ["--grpc-port", "0", "--http-port", "0"], { CLIPPER_REDIS_URL: url });
  procs.push(proc);
  const ports = MANAGEMENT_PORTS_LINE.read(await proc.waitFor(MANAGEMENT_PORTS_LINE.pattern));
  return { proc, http: ports.http.port };
}

test.serial("management and the gateway serve from a Redis that requires a password", async (t) => {
  const m = await management(redis.url);
  t.true(await eventually(async () => (await fetch(`http://127.0.0.1:${m.http}/readyz`)).status === 200, 20_000), "management is ready");
  const res = await fetch(`http://127.0.0.1:${m.http}/admin/add_app`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "pw-app", input_type: "doubles", default_output: "7", latency_slo_micros: 100_000 }),
  });
  t.is(res.status, 200);
  const g = await startGatewayProcess(redis.url);
  procs.push(g.proc);
  t.true(await eventually(async () => {
    const r = await fetch(`http://127.0.0.1:${g.http}/pw-app/predict`, { method: "POST", body: JSON.stringify({ input: [1] }) });
    return r.status === 200;
  }, 20_000), "the gateway loaded the app from the password-protected Redis");
  t.false(g.proc.output.includes("p@ss"), "the password is not logged");
  t.false(m.proc.output.includes("p@ss"), "the password is not logged");
});

test.serial("a wrong password leaves the server running and not ready, with a reason", async (t) => {
  const wrong = `redis://:wrong@127.0.0.1:${redis.port}`;
  const m = await management(wrong);
  let body = "";
  t.true(await eventually(async () => {
    const r = await fetch(`http://127.0.0.1:${m.http}/readyz`);
    body = await r.text();
    return r.status === 503;
  }, 20_000));
  t.regex(body, /not ready/);
  t.is(m.proc.child.exitCode, null, "still running");
});
