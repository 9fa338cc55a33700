/**
 * The gateway's spans inside a call (design.md § Observability): the cache
 * lookup and the queue wait, children of the call's server span; and one
 * span per batch, a child of its first call that links every call it
 * carries, whose context travels to native workers in
 * BatchRequest.trace so the worker's predict span is its child.
 *
 * Every helper returns at once, doing nothing, while tracing is off.
 */
import { context, ROOT_CONTEXT, SpanKind, trace, type Context, type Link, type Span } from "@opentelemetry/api";
import { endSpan, tracer, tracingEnabled, type WireTraceContext, wireContextOf } from "../core/telemetry/tracing.js";
import type { CacheResult } from "./metrics.js";
import type { Replica } from "./replica.js";
import type { Task } from "./task.js";

/** The active context of the call being handled, to keep on its tasks; null while tracing is off. */
export function callTraceContext(): Context | null {
  return tracingEnabled() ? context.active() : null;
}

/** Starts the cache lookup span of a query (null while tracing is off). */
export function startCacheSpan(parent: Context | null, model: string, version: string): Span | null {
  if (parent === null) return null;
  return tracer.startSpan("cache lookup", { attributes: { "clipper.model": model, "clipper.model_version": version } }, parent);
}

/** Ends a cache lookup span with its result. */
export function endCacheSpan(span: Span | null, result: CacheResult): void {
  if (span === null) return;
  span.setAttribute("clipper.cache.result", result);
  span.end();
}

/** Starts a task's queue wait span; the dispatcher ends it when the task leaves the queue. */
export function startQueueSpan(task: Task, model: string, version: string): void {
  if (task.traceContext === null) return;
  task.queueSpan = tracer.startSpan(
    "queue wait",
    { attributes: { "clipper.model": model, "clipper.model_version": version, "clipper.attempt": task.attempts + 1 } },
    task.traceContext,
  );
}

/** Ends a task's queue wait span; `dropped` names why it left the queue without a batch. */
export function endQueueSpan(task: Task, dropped?: string): void {
  const span = task.queueSpan;
  if (span === null) return;
  task.queueSpan = null;
  if (dropped !== undefined) span.setAttribute("clipper.dropped", dropped);
  endSpan(span);
}

/** A batch's span and the trace context its message carries. */
export interface BatchTrace {
  readonly span: Span | null;
  /** For native workers: the batch span's context (or, with tracing off, the first caller's traceparent as received). */
  readonly wire: WireTraceContext | undefined;
}

const UNTRACED: BatchTrace = { span: null, wire: undefined };

/**
 * Starts the span of a batch about to be sent: a CLIENT span, child of its
 * first task's call, linked to the call of every task (each call once).
 */
export function startBatchSpan(tasks: readonly Task[], replica: Replica): BatchTrace {
  const first = tasks[0];
  if (first === undefined) return UNTRACED;
  if (first.traceContext === null) {
    // Tracing is off here; a worker that traces can still join the caller's trace.
    if (replica.dialect !== "native" || first.traceparent === "") return UNTRACED;
    return { span: null, wire: { traceparent: first.traceparent, tracestate: "" } };
  }
  const links: Link[] = [];
  const seen = new Set<string>();
  for (const t of tasks) {
    const sc = t.traceContext === null ? undefined : trace.getSpanContext(t.traceContext);
    if (sc === undefined || seen.has(sc.spanId)) continue;
    seen.add(sc.spanId);
    links.push({ context: sc });
  }
  const span = tracer.startSpan(
    `batch ${replica.modelName}:${replica.modelVersion}`,
    {
      kind: SpanKind.CLIENT,
      links,
      attributes: {
        "clipper.model": replica.modelName,
        "clipper.model_version": replica.modelVersion,
        "clipper.replica_id": replica.replicaId,
        "clipper.dialect": replica.dialect,
        "clipper.batch_size": tasks.length,
      },
    },
    first.traceContext ?? ROOT_CONTEXT,
  );
  return { span, wire: replica.dialect === "native" ? wireContextOf(span) : undefined };
}
