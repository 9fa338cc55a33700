/**
 * OpenTelemetry tracing for every clipper-ts process, configured only by the
 * standard `OTEL_*` environment variables (the SDK reads them itself).
 *
 * Spans are made by hand with @opentelemetry/api, not by auto-
 * instrumentation: under ESM, grpc-js imported before an import-in-the-
 * middle hook yields no spans at all (reference/toolchain.md §6), and a
 * hand-made span per call also covers transcoded HTTP and Clipper REST,
 * which the grpc instrumentation never sees. So import order does not
 * matter, and nothing needs `--import` or a loader hook. Tracers taken
 * before {@link startTracing} are the API's proxies and start recording
 * once the SDK registers its provider.
 *
 * With no exporter configured the SDK is never even loaded:
 * {@link tracingEnabled} is false and every span helper returns at once.
 */
import {
  context,
  createTraceState,
  isSpanContextValid,
  propagation,
  ROOT_CONTEXT,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
  type TextMapGetter,
  type Tracer,
} from "@opentelemetry/api";
import type { SpanProcessor } from "@opentelemetry/sdk-trace-base";

let enabled = false;

/** True while an SDK started by {@link startTracing} records spans. Hot paths check it before any span work. */
export function tracingEnabled(): boolean {
  return enabled;
}

/** The tracer every clipper-ts span comes from (instrumentation scope "clipper-ts"). */
export const tracer: Tracer = trace.getTracer("clipper-ts");

/** A started (or deliberately not started) tracing SDK. */
export interface Tracing {
  readonly enabled: boolean;
  /** Flushes spans still buffered and stops the SDK; resolves even if the exporter is unreachable. */
  shutdown(): Promise<void>;
}

const DISABLED: Tracing = { enabled: false, shutdown: async () => {} };

/** Longest {@link Tracing.shutdown} waits for the exporter to take the last spans, in ms. */
const SHUTDOWN_TIMEOUT_MS = 3_000;

/**
 * True when the environment asks for trace export: `OTEL_TRACES_EXPORTER`
 * names an exporter other than `none`, or an OTLP endpoint is set
 * (`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`);
 * never when `OTEL_SDK_DISABLED=true`. Unlike the SDK's own default (export
 * OTLP to localhost:4318 when nothing is set), nothing set means no tracing,
 * so an unconfigured process pays nothing.
 */
export function tracesConfigured(env: NodeJS.ProcessEnv): boolean {
  if ((env.OTEL_SDK_DISABLED ?? "").trim().toLowerCase() === "true") return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "" && s !== "null");
  // The SDK itself ignores everything after a leading "none".
  if (exporters.length > 0) return exporters[0] !== "none";
  return (env.OTEL_EXPORTER_OTLP_ENDPOINT ?? "").trim() !== "" || (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? "").trim() !== "";
}

/** Options of {@link startTracing}; programs and tests only, processes use the environment. */
export interface TracingOptions {
  /** Span processors to use instead of the exporters the environment names (tests: an in-memory exporter). */
  readonly spanProcessors?: SpanProcessor[];
  /** Environment to read; defaults to process.env. */
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Starts the OpenTelemetry Node SDK for a process named `service`
 * (`OTEL_SERVICE_NAME` overrides it) when the environment configures a trace
 * exporter (see {@link tracesConfigured}) or `options.spanProcessors` are
 * given; otherwise does nothing. The SDK picks the exporter and protocol
 * from `OTEL_TRACES_EXPORTER`, `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`
 * (grpc, http/protobuf, http/json), endpoint, headers, sampler and batch
 * settings from the usual `OTEL_*` variables. Only traces: metrics are
 * Prometheus (prom-client) and logs JSON on stdout, so the SDK's metric and
 * log exporters are switched off.
 */
export async function startTracing(service: string, options: TracingOptions = {}): Promise<Tracing> {
  const env = options.env ?? process.env;
  if (options.spanProcessors === undefined && !tracesConfigured(env)) return DISABLED;
  // Loaded only when used: the SDK and its exporters cost tens of ms to import.
  const { NodeSDK } = await import("@opentelemetry/sdk-node");
  const sdk = new NodeSDK({
    ...((env.OTEL_SERVICE_NAME ?? "") === "" ? { serviceName: service } : {}),
    ...(options.spanProcessors !== undefined ? { spanProcessors: options.spanProcessors } : {}),
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [],
  });
  sdk.start();
  enabled = true;
  let stopped: Promise<void> | null = null;
  return {
    enabled: true,
    shutdown() {
      stopped ??= (async () => {
        enabled = false;
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, SHUTDOWN_TIMEOUT_MS);
          timer.unref();
        });
        await Promise.race([sdk.shutdown().catch(() => {}), timeout]);
        clearTimeout(timer);
      })();
      return stopped;
    },
  };
}

const MAP_GETTER: TextMapGetter<ReadonlyMap<string, string>> = {
  keys: (carrier) => [...carrier.keys()],
  get: (carrier, key) => carrier.get(key),
};

/**
 * The context a call's server span continues: the caller's trace from its
 * metadata (gRPC metadata or HTTP headers: `traceparent` / `tracestate`),
 * read by the propagators `OTEL_PROPAGATORS` names (W3C by default); the
 * root context when there is none.
 */
export function contextFromMetadata(metadata: ReadonlyMap<string, string>): Context {
  return propagation.extract(ROOT_CONTEXT, metadata, MAP_GETTER);
}

/** W3C trace context as the native wire carries it (heartbeat.proto TraceContext). */
export interface WireTraceContext {
  readonly traceparent: string;
  readonly tracestate: string;
}

/*
 * The ZeroMQ hop always speaks W3C Trace Context (https://www.w3.org/TR/trace-context/
 * §3.2 traceparent, §3.3 tracestate), whatever `OTEL_PROPAGATORS` says for
 * HTTP and gRPC: the wire field is defined as `traceparent`. It is written
 * here rather than with @opentelemetry/core's propagator, whose import alone
 * would slow every process's start-up even with tracing off (bench/README.md
 * has the measurement).
 */

/** version-traceid-parentid-flags; versions above 00 may append fields (§3.2.4), "ff" is invalid. */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** The wire trace context naming `span` as the parent, or undefined when it is not a valid span context. */
export function wireContextOf(span: Span): WireTraceContext | undefined {
  const sc = span.spanContext();
  if (!isSpanContextValid(sc)) return undefined;
  const flags = (sc.traceFlags & 0xff).toString(16).padStart(2, "0");
  return { traceparent: `00-${sc.traceId}-${sc.spanId}-${flags}`, tracestate: sc.traceState?.serialize() ?? "" };
}

/** The context a wire trace context continues; the root context when it is absent or malformed. */
export function contextFromWire(wire: WireTraceContext | undefined): Context {
  const m = wire === undefined ? null : TRACEPARENT.exec(wire.traceparent.trim());
  if (m === null || m[1] === "ff" || (m[1] === "00" && m[5] !== undefined)) return ROOT_CONTEXT;
  const sc = {
    traceId: m[2]!,
    spanId: m[3]!,
    traceFlags: parseInt(m[4]!, 16),
    isRemote: true,
    ...(wire!.tracestate === "" ? {} : { traceState: createTraceState(wire!.tracestate) }),
  };
  // All-zero ids are invalid (§3.2.2.3, §3.2.2.4).
  return isSpanContextValid(sc) ? trace.setSpanContext(ROOT_CONTEXT, sc) : ROOT_CONTEXT;
}

/** Ends a span unless it has ended already (several paths may race to end a queue span). */
export function endSpan(span: Span | null, error?: string): void {
  if (span === null || !span.isRecording()) return;
  if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
  span.end();
}

/** `trace_id` / `span_id` of the active span, for log lines; empty outside a span. */
export function activeTraceIds(): { trace_id?: string; span_id?: string } {
  const span = trace.getSpan(context.active());
  if (span === undefined) return {};
  const sc = span.spanContext();
  return { trace_id: sc.traceId, span_id: sc.spanId };
}
