import { context, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { contextFromWire, tracer, tracingEnabled } from "../core/telemetry/tracing.js";
import type { BatchRequest } from "../gen/clipper/v1/heartbeat.js";
import type { BatchAnswer } from "./batch-executor.js";

/**
 * Runs one batch inside the worker's predict span: a SERVER span, child of
 * the gateway's batch span named in `request.trace`, so the model's time
 * lands in the caller's trace. Spans the model makes itself, and log lines
 * written meanwhile, are its children. Without tracing, just runs `run`.
 */
export function inPredictSpan(request: BatchRequest, itemCount: number, model: string, version: string, run: () => Promise<BatchAnswer>): Promise<BatchAnswer> {
  // Not async itself, so the untraced path adds no promise of its own.
  return tracingEnabled() ? traced(request, itemCount, model, version, run) : run();
}

async function traced(request: BatchRequest, itemCount: number, model: string, version: string, run: () => Promise<BatchAnswer>): Promise<BatchAnswer> {
  const parent = contextFromWire(request.trace);
  const span = tracer.startSpan(
    `predict ${model}:${version}`,
    {
      kind: SpanKind.SERVER,
      attributes: { "clipper.model": model, "clipper.model_version": version, "clipper.batch_id": request.batchId, "clipper.batch_size": itemCount },
    },
    parent,
  );
  try {
    const answer = await context.with(trace.setSpan(parent, span), run);
    span.setAttribute("clipper.failed_items", answer.items.reduce((n, i) => n + (i.code === 0 ? 0 : 1), 0));
    if (answer.modelError !== null) span.setStatus({ code: SpanStatusCode.ERROR, message: answer.modelError });
    return answer;
  } finally {
    span.end();
  }
}
