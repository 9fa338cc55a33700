/**
 * The per-call interceptor of every served method (style.md rule 13): a
 * SERVER span continuing the caller's W3C trace, the call counted and timed
 * by method, transport and status code, and INTERNAL failures logged with
 * their trace id. Wrapping a binding's handlers covers gRPC and transcoded
 * HTTP at once, since both edges run the same handlers.
 */
import { performance } from "node:perf_hooks";
import { context, SpanKind, SpanStatusCode, trace, type Attributes } from "@opentelemetry/api";
import { status as Status } from "@grpc/grpc-js";
import type { BucketHistogramChild } from "./bucket-histogram.js";
import type { DeferredCount } from "./deferred-counter.js";
import type { CallContext, Transport, UnaryHandler } from "../call-context.js";
import { ServingError } from "../errors.js";
import type { UnaryServiceBinding } from "../service-binding.js";
import type { Logger } from "./logger.js";
import type { RpcMetrics } from "./metrics.js";
import { contextFromMetadata, tracer, tracingEnabled } from "./tracing.js";

/** gRPC status code → its name ("NOT_FOUND"), the `code` label. */
const CODE_NAMES: readonly string[] = Array.from({ length: 17 }, (_, code) => Status[code] ?? String(code));

/**
 * Codes that mark a server span as an error, per the OpenTelemetry gRPC
 * semantic conventions: the server's fault, not the caller's.
 */
const SERVER_ERROR_CODES: ReadonlySet<number> = new Set([
  Status.UNKNOWN, Status.DEADLINE_EXCEEDED, Status.UNIMPLEMENTED, Status.INTERNAL, Status.UNAVAILABLE, Status.DATA_LOSS,
]);

/** One method's metric children and span identity, built once when the server is built. */
export class InstrumentedMethod {
  /** Span name and `method` label, e.g. "clipper.v1.Predict/Predict". */
  readonly name: string;
  readonly attributes: Attributes;
  readonly #metrics: RpcMetrics;
  /** Children by transport, then code, made on first use (most pairs never occur). */
  readonly #calls: Record<Transport, (DeferredCount | undefined)[]> = { grpc: [], http: [], "clipper-rest": [] };
  readonly #durations: Partial<Record<Transport, BucketHistogramChild>> = {};

  constructor(name: string, attributes: Attributes, metrics: RpcMetrics) {
    this.name = name;
    this.attributes = attributes;
    this.#metrics = metrics;
  }

  /** Counts one finished call and its duration (`startMs` from performance.now()). */
  record(transport: Transport, code: number, startMs: number): void {
    const byCode = this.#calls[transport];
    let calls = byCode[code];
    if (calls === undefined) {
      calls = this.#metrics.calls.labels({ method: this.name, transport, code: CODE_NAMES[code] ?? String(code) });
      byCode[code] = calls;
    }
    calls.inc();
    const duration = (this.#durations[transport] ??= this.#metrics.duration.labels({ method: this.name, transport }));
    duration.observe((performance.now() - startMs) / 1000);
  }
}

/** Builds instrumented methods and runs calls through them. */
export class CallInstrument {
  readonly #metrics: RpcMetrics;
  readonly #log: Logger;

  constructor(metrics: RpcMetrics, log: Logger) {
    this.#metrics = metrics;
    this.#log = log;
  }

  /** A method by span name (and `method` label), with span attributes that never change. */
  method(name: string, attributes: Attributes): InstrumentedMethod {
    return new InstrumentedMethod(name, attributes, this.#metrics);
  }

  /**
   * The binding with every handler wrapped by {@link run}; served by both
   * the gRPC server and the transcoder. Built once, at server start.
   */
  binding(binding: UnaryServiceBinding): UnaryServiceBinding {
    const handlers: Record<string, UnaryHandler<unknown, unknown>> = {};
    for (const [key, handler] of Object.entries(binding.handlers)) {
      const path = binding.definition[key]?.path ?? `/${binding.name}/${key}`;
      const rpcMethod = path.slice(path.lastIndexOf("/") + 1);
      const method = this.method(path.slice(1), { "rpc.system": "grpc", "rpc.service": binding.name, "rpc.method": rpcMethod });
      handlers[key] = (request, ctx) => this.#serve(method, ctx, handler, request);
    }
    return { ...binding, handlers };
  }

  /**
   * Runs one call. With tracing on, `fn` runs inside a SERVER span that
   * continues the caller's trace (`traceparent` in `ctx.metadata`), so spans
   * and log lines made inside are its children. The outcome is counted
   * either way; an INTERNAL failure is logged here, inside the span, so the
   * line carries the trace id. The result or error passes through unchanged.
   */
  run<T>(method: InstrumentedMethod, ctx: CallContext, fn: () => Promise<T>): Promise<T> {
    return this.#serve(method, ctx, callThunk, fn);
  }

  /**
   * {@link run} for `handler(request, ctx)`. Untraced calls take one
   * promise reaction and no closure over the request: this runs for every
   * call the gateway serves.
   */
  #serve<Req, T>(method: InstrumentedMethod, ctx: CallContext, handler: (request: Req, ctx: CallContext) => Promise<T>, request: Req): Promise<T> {
    const start = performance.now();
    if (tracingEnabled()) return this.#traced(method, ctx, () => handler(request, ctx), start);
    let work: Promise<T>;
    try {
      work = handler(request, ctx);
    } catch (err) {
      this.#failed(method, ctx.transport, err, start);
      return Promise.reject(err);
    }
    return work.then(
      (result) => {
        method.record(ctx.transport, Status.OK, start);
        return result;
      },
      (err: unknown) => {
        this.#failed(method, ctx.transport, err, start);
        throw err;
      },
    );
  }

  async #traced<T>(method: InstrumentedMethod, ctx: CallContext, fn: () => Promise<T>, start: number): Promise<T> {
    const parent = contextFromMetadata(ctx.metadata);
    const span = tracer.startSpan(method.name, { kind: SpanKind.SERVER, attributes: { ...method.attributes, "clipper.transport": ctx.transport } }, parent);
    const spanContext = trace.setSpan(parent, span);
    try {
      const result = await context.with(spanContext, fn);
      span.setAttribute("rpc.grpc.status_code", Status.OK);
      method.record(ctx.transport, Status.OK, start);
      return result;
    } catch (err) {
      const code = context.with(spanContext, () => this.#failed(method, ctx.transport, err, start));
      span.setAttribute("rpc.grpc.status_code", code);
      if (SERVER_ERROR_CODES.has(code)) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: CODE_NAMES[code] });
        if (err instanceof Error) span.recordException(err);
      }
      throw err;
    } finally {
      span.end();
    }
  }

  /** Counts a failed call and logs it when INTERNAL; returns its code. */
  #failed(method: InstrumentedMethod, transport: Transport, err: unknown, start: number): number {
    const e = ServingError.from(err);
    // A thrown "OK" ends the call as INTERNAL at every edge.
    const code = e.code === Status.OK ? Status.INTERNAL : e.code;
    method.record(transport, code, start);
    // A model's own errors are logged by the gateway as a summary per model
    // version (gateway/model-error-log.ts): a failing model would otherwise
    // write one line per call.
    if (code === Status.INTERNAL && e.reason !== "MODEL_ERROR") this.#log.error({ err, method: method.name }, "internal error in call");
    return code;
  }
}

function callThunk<T>(fn: () => Promise<T>): Promise<T> {
  return fn();
}
