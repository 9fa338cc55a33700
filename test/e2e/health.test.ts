import test, { type ExecutionContext } from "ava";
import { HealthClient } from "../helpers/health-client.js";
import { eventually, startGatewayProcess, type Proc } from "../helpers/processes.js";
import { Scrape } from "../helpers/prometheus.js";
import { TestRedis } from "../helpers/redis-server.js";

const PREDICT = "clipper.v1.Predict";

/** A gateway process started before its (private) Redis is reachable, and a health client for it. */
interface Outage {
  readonly redis: TestRedis;
  readonly gateway: { proc: Proc; grpc: number; http: number; rpc: number };
  readonly health: HealthClient;
  get(path: string): Promise<Response>;
}

/** Starts an {@link Outage}; everything is stopped when the test ends. */
async function gatewayBeforeRedis(t: ExecutionContext): Promise<Outage> {
  const redis = await TestRedis.start();
  t.teardown(() => redis.destroy());
  await redis.stop();
  const gateway = await startGatewayProcess(redis.url, ["--log-level", "info"]);
  t.teardown(() => gateway.proc.stop());
  const health = new HealthClient(`127.0.0.1:${gateway.grpc}`);
  t.teardown(() => health.close());
  return { redis, gateway, health, get: (path) => fetch(`http://127.0.0.1:${gateway.http}${path}`) };
}

test("Predict health follows Redis: NOT_SERVING until it is reachable, again while it is lost, SERVING once back", async (t) => {
  const { redis, gateway, health, get } = await gatewayBeforeRedis(t);
  const watched: string[] = [];
  const watch = health.watch(PREDICT, (s) => watched.push(s));
  t.teardown(() => watch.cancel());

  // No Redis yet: alive, not ready.
  t.is(await health.check(PREDICT), "NOT_SERVING");
  t.is(await health.check(""), "NOT_SERVING");
  t.is(await health.check("clipper.v1.Heartbeat"), "SERVING");
  t.is((await get("/healthz")).status, 200);
  const notReady = await get("/readyz");
  t.is(notReady.status, 503);
  t.regex(((await notReady.json()) as { reason: string }).reason, /Redis at 127\.0\.0\.1:\d+ is unreachable/);
  t.true(await eventually(() => watched.length > 0));
  t.is(watched[0], "NOT_SERVING");

  await redis.restart();
  t.is(await health.until(PREDICT, "SERVING"), "SERVING");
  t.is(await health.check(""), "SERVING");
  t.is((await get("/readyz")).status, 200);
  t.true(await eventually(() => watched.at(-1) === "SERVING"));

  await redis.stop();
  t.is(await health.until(PREDICT, "NOT_SERVING"), "NOT_SERVING");
  t.is((await get("/readyz")).status, 503);
  t.true(await eventually(() => watched.at(-1) === "NOT_SERVING"));
  // /metrics and /healthz keep working without Redis.
  t.is((await get("/healthz")).status, 200);
  t.is((await Scrape.of(`http://127.0.0.1:${gateway.http}/metrics`)).value("clipper_ready"), 0);

  await redis.restart();
  t.is(await health.until(PREDICT, "SERVING"), "SERVING");
  t.true(await eventually(() => watched.at(-1) === "SERVING"));
  t.deepEqual(watched, ["NOT_SERVING", "SERVING", "NOT_SERVING", "SERVING"]);

  const s = await Scrape.of(`http://127.0.0.1:${gateway.http}/metrics`);
  t.is(s.value("clipper_ready"), 1);
  // The first connection is no reconnect; coming back after the outage is one, per connection.
  t.is(s.value("clipper_redis_reconnects_total", { connection: "commands" }), 1);
  t.is(s.value("clipper_redis_reconnects_total", { connection: "events" }), 1);
});

test("the gateway logs its lifecycle as JSON lines: ports, Redis connect, loss and reconnect, readiness", async (t) => {
  const { redis, gateway, health } = await gatewayBeforeRedis(t);
  // The same outage as above, without the checks between the steps.
  await redis.restart();
  t.is(await health.until(PREDICT, "SERVING"), "SERVING");
  await redis.stop();
  t.is(await health.until(PREDICT, "NOT_SERVING"), "NOT_SERVING");
  await redis.restart();
  t.is(await health.until(PREDICT, "SERVING"), "SERVING");
  const logLines = () =>
    gateway.proc.output
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { msg: string; level: number; service: string; connection?: string; grpcPort?: number });
  // Readiness follows the command connection; the event connection may log its return a moment later.
  t.true(await eventually(() => logLines().filter((l) => l.msg === "redis reconnected").length >= 2), "both connections logged their return");
  const lines = logLines();
  const msgs = lines.map((l) => l.msg);
  t.true(lines.every((l) => l.service === "clipper-gateway"));
  const listening = lines.filter((l) => l.msg === "gateway listening");
  t.is(listening.length, 1);
  t.is(listening[0]?.grpcPort, gateway.grpc);
  for (const m of ["redis connected", "redis connection lost", "redis reconnected", "gateway ready: serving clipper.v1.Predict", "gateway not ready: clipper.v1.Predict NOT_SERVING"]) {
    t.true(msgs.includes(m), m);
  }
  // One line per event: the outage and the return are logged once per connection.
  t.is(lines.filter((l) => l.msg === "redis connection lost").length, 2);
  t.is(lines.filter((l) => l.msg === "redis reconnected").length, 2);
});
