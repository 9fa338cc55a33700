import { request } from "node:http";
import test from "ava";
import { status as Status } from "@grpc/grpc-js";
import { pino } from "pino";
import { Registry } from "prom-client";
import type { CallContext } from "../../core/call-context.js";
import { ServingError } from "../../core/errors.js";
import { startHttpServer, type RunningHttpServer } from "../../core/servers/http-server.js";
import { CallInstrument, type InstrumentedMethod } from "../../core/telemetry/call-instrument.js";
import { createRpcMetrics } from "../../core/telemetry/metrics.js";
import type { AdminStore } from "../../management/admin-store.js";
import { clipperAdminRoutes } from "../../management/http/clipper-admin.js";
import { eventually } from "../helpers/processes.js";

/** Keeps the context of every call it runs. */
class SeeingInstrument extends CallInstrument {
  readonly seen: CallContext[] = [];

  override run<T>(method: InstrumentedMethod, ctx: CallContext, fn: () => Promise<T>): Promise<T> {
    this.seen.push(ctx);
    return super.run(method, ctx, fn);
  }
}

/** A store whose listApps never answers, so only the call's context can end a call. */
function stuckStore(): { store: AdminStore; asked: () => number } {
  let asked = 0;
  const store = {
    listApps: () => {
      asked++;
      return new Promise<never>(() => {});
    },
  } as unknown as AdminStore;
  return { store, asked: () => asked };
}

async function serve(t: { teardown(fn: () => Promise<void>): void }, store: AdminStore, calls?: CallInstrument): Promise<RunningHttpServer> {
  const server = await startHttpServer([clipperAdminRoutes(store, calls === undefined ? {} : { calls })], { host: "127.0.0.1", port: 0 });
  t.teardown(() => server.close());
  return server;
}

const BODY = '{"verbose": false}';

test("an /admin/* call's context honours Grpc-Timeout: its signal aborts DEADLINE_EXCEEDED and the answer is 504", async (t) => {
  const { store } = stuckStore();
  const calls = new SeeingInstrument(createRpcMetrics(new Registry()), pino({ level: "silent" }));
  const server = await serve(t, store, calls);
  const started = Date.now();
  const res = await fetch(`http://127.0.0.1:${server.port}/admin/get_all_applications`, { method: "POST", body: BODY, headers: { "grpc-timeout": "100m" } });
  t.is(res.status, 504);
  t.is(await res.text(), "deadline exceeded");
  t.true(Date.now() - started < 5_000);
  t.is(calls.seen.length, 1);
  const ctx = calls.seen[0]!;
  t.is(ctx.transport, "clipper-rest");
  t.true(ctx.deadline >= started + 100, `deadline ${ctx.deadline - started} ms after the call started`);
  t.true(ctx.deadline <= Date.now(), "the deadline had passed when the signal aborted");
  t.true(ctx.signal.aborted);
  t.is((ctx.signal.reason as ServingError).code, Status.DEADLINE_EXCEEDED);
});

test("an uninstrumented /admin/* call honours Grpc-Timeout too, and a malformed one is refused as Clipper refuses (400, bare message)", async (t) => {
  const { store, asked } = stuckStore();
  const server = await serve(t, store);
  const url = `http://127.0.0.1:${server.port}/admin/get_all_applications`;
  const timedOut = await fetch(url, { method: "POST", body: BODY, headers: { "grpc-timeout": "50m" } });
  t.is(timedOut.status, 504);
  const malformed = await fetch(url, { method: "POST", body: BODY, headers: { "grpc-timeout": "soon" } });
  t.is(malformed.status, 400);
  t.regex(await malformed.text(), /timeout/i);
  t.is(asked(), 1);
});

test("an /admin/* call's context aborts CANCELLED when the client disconnects", async (t) => {
  const { store, asked } = stuckStore();
  const calls = new SeeingInstrument(createRpcMetrics(new Registry()), pino({ level: "silent" }));
  const server = await serve(t, store, calls);
  const req = request({ host: "127.0.0.1", port: server.port, method: "POST", path: "/admin/get_all_applications", headers: { "content-type": "application/json" } });
  req.on("error", () => {});
  req.end(BODY);
  t.true(await eventually(() => asked() === 1, 5_000, 10));
  const ctx = calls.seen[0]!;
  t.false(ctx.signal.aborted);
  let told = 0;
  ctx.onCancel(() => told++);
  req.destroy();
  t.true(await eventually(() => ctx.signal.aborted, 5_000, 10));
  t.is((ctx.signal.reason as ServingError).code, Status.CANCELLED);
  t.is(told, 1);
});
