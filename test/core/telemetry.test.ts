import test from "ava";
import { ROOT_CONTEXT, trace, TraceFlags } from "@opentelemetry/api";
import { status as Status } from "@grpc/grpc-js";
import { pino } from "pino";
import { Registry } from "prom-client";
import type { CallContext } from "../../core/call-context.js";
import { NO_DEADLINE } from "../../core/deadline.js";
import { ServingError } from "../../core/errors.js";
import { CallInstrument } from "../../core/telemetry/call-instrument.js";
import { createRpcMetrics } from "../../core/telemetry/metrics.js";
import { contextFromWire, startTracing, tracesConfigured, tracingEnabled, wireContextOf } from "../../core/telemetry/tracing.js";
import { Scrape } from "../helpers/prometheus.js";

test("tracing is on only when OTEL_* names an exporter or an OTLP endpoint, and never when the SDK is disabled", (t) => {
  t.false(tracesConfigured({}));
  t.false(tracesConfigured({ OTEL_SERVICE_NAME: "x", OTEL_PROPAGATORS: "tracecontext" }));
  t.true(tracesConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" }));
  t.true(tracesConfigured({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://collector:4318/v1/traces" }));
  t.true(tracesConfigured({ OTEL_TRACES_EXPORTER: "otlp" }));
  t.true(tracesConfigured({ OTEL_TRACES_EXPORTER: "console" }));
  t.false(tracesConfigured({ OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" }));
  t.false(tracesConfigured({ OTEL_SDK_DISABLED: "true", OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" }));
  t.false(tracesConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: "  " }));
});

test("with nothing configured, startTracing starts nothing", async (t) => {
  const tracing = await startTracing("clipper-test", { env: {} });
  t.false(tracing.enabled);
  t.false(tracingEnabled());
  await tracing.shutdown();
});

test("the ZeroMQ trace context is W3C traceparent/tracestate, and reads back to the same span context", (t) => {
  const sc = { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", traceFlags: TraceFlags.SAMPLED };
  const wire = wireContextOf(trace.wrapSpanContext(sc));
  t.deepEqual(wire, { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tracestate: "" });
  const back = trace.getSpanContext(contextFromWire(wire));
  t.like(back, { ...sc, isRemote: true });
  t.is(contextFromWire(undefined), ROOT_CONTEXT);
  const tp = (traceparent: string) => trace.getSpanContext(contextFromWire({ traceparent, tracestate: "" }));
  t.is(tp("garbage"), undefined);
  t.is(tp("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), undefined, "all-zero trace id");
  t.is(tp("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"), undefined, "all-zero parent id");
  t.is(tp("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), undefined, "version ff");
  t.is(tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"), undefined, "version 00 has exactly four fields");
  t.is(tp("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-future")?.traceFlags, 0, "a later version may add fields");
  t.is(tp("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"), undefined, "upper-case hex");
  // tracestate travels both ways.
  const withState = contextFromWire({ traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tracestate: "vendor=abc,other=1" });
  t.deepEqual(wireContextOf(trace.wrapSpanContext(trace.getSpanContext(withState)!)), {
    traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    tracestate: "vendor=abc,other=1",
  });
  t.is(wireContextOf(trace.wrapSpanContext({ traceId: "0".repeat(32), spanId: "1".repeat(16), traceFlags: 1 })), undefined);
});

test("an instrumented call is counted by method, transport and code; INTERNAL is logged, others are not", async (t) => {
  const registry = new Registry();
  const lines: string[] = [];
  const log = pino({ level: "info" }, { write: (l: string) => void lines.push(l) });
  const calls = new CallInstrument(createRpcMetrics(registry), log);
  const method = calls.method("clipper.v1.Test/Do", {});
  const ctx: CallContext = { transport: "grpc", deadline: NO_DEADLINE, signal: new AbortController().signal, metadata: new Map(), peer: "", onCancel: () => () => {} };
  t.is(await calls.run(method, ctx, async () => 7), 7);
  await t.throwsAsync(calls.run(method, { ...ctx, transport: "http" }, async () => { throw new ServingError(Status.NOT_FOUND, "APP_NOT_FOUND", "no"); }));
  await t.throwsAsync(calls.run(method, ctx, async () => { throw new Error("bug"); }), { message: "bug" });
  const s = new Scrape(await registry.metrics());
  t.is(s.value("clipper_rpc_calls_total", { method: "clipper.v1.Test/Do", transport: "grpc", code: "OK" }), 1);
  t.is(s.value("clipper_rpc_calls_total", { method: "clipper.v1.Test/Do", transport: "http", code: "NOT_FOUND" }), 1);
  t.is(s.value("clipper_rpc_calls_total", { method: "clipper.v1.Test/Do", transport: "grpc", code: "INTERNAL" }), 1);
  t.is(s.value("clipper_rpc_duration_seconds_count", { method: "clipper.v1.Test/Do", transport: "grpc" }), 2);
  t.is(lines.length, 1);
  t.like(JSON.parse(lines[0]!), { msg: "internal error in call", method: "clipper.v1.Test/Do" });
});
