/**
 * The worker's Prometheus metrics, served on `--metrics-port` beside the
 * model's own (worker/model-metrics.ts). Every series carries the
 * worker's `service`, `model` and `version` labels, so replicas of one
 * model aggregate in Prometheus by those labels.
 */
import { Counter, Histogram, type Registry } from "prom-client";
import { createMetricsRegistry, DURATION_BUCKETS_SECONDS } from "../core/telemetry/metrics.js";
import { status as Code } from "@grpc/grpc-js";
import type { BatchAnswer } from "./batch-executor.js";
import { ModelMetrics } from "./model-metrics.js";

/**
 * How one batch item ended: answered, failed by the model (a throw, a wrong
 * shape, or a returned Error), skipped because its deadline had passed,
 * refused as invalid input, or refused unrun (draining or overloaded).
 */
export type ItemOutcome = "ok" | "error" | "expired" | "invalid" | "rejected";

/** The worker runtime's metrics and the model's, on one registry. */
export class WorkerMetrics {
  readonly registry: Registry;
  /** The API model code defines its own metrics with. */
  readonly model: ModelMetrics;
  readonly #predictDuration: Histogram;
  readonly #items: Record<ItemOutcome, Counter.Internal>;
  readonly #modelErrors: Counter;

  constructor(model: string, version: string) {
    this.registry = createMetricsRegistry("clipper-worker", { model, version });
    const registers = [this.registry];
    this.model = new ModelMetrics(this.registry);
    this.#predictDuration = new Histogram({
      name: "clipper_worker_predict_duration_seconds",
      help: "Time the model spent on one batch, in seconds.",
      buckets: [...DURATION_BUCKETS_SECONDS],
      registers,
    });
    const items = new Counter({
      name: "clipper_worker_items_total",
      help: "Batch items answered, by outcome (ok, error, expired: deadline passed before the model ran, invalid: undecodable input, rejected: draining or overloaded).",
      labelNames: ["outcome"] as const,
      registers,
    });
    const outcome = (o: ItemOutcome): Counter.Internal => items.labels({ outcome: o });
    this.#items = { ok: outcome("ok"), error: outcome("error"), expired: outcome("expired"), invalid: outcome("invalid"), rejected: outcome("rejected") };
    this.#modelErrors = new Counter({
      name: "clipper_worker_model_errors_total",
      help: "Model calls that failed as a whole (threw, or returned no array of one output per input).",
      registers,
    });
  }

  /** Counts a batch the model ran (or skipped item by item). */
  batchRan(answer: BatchAnswer): void {
    if (answer.modelCalls > 0) this.#predictDuration.observe(answer.modelMicros / 1e6);
    if (answer.modelError !== null) this.#modelErrors.inc();
    for (const item of answer.items) this.#items[outcomeOf(item.code)].inc();
  }

  /** Counts items refused without running (draining, overloaded). */
  rejected(count: number): void {
    if (count > 0) this.#items.rejected.inc(count);
  }
}

function outcomeOf(code: number): ItemOutcome {
  return code === Code.OK ? "ok" : code === Code.DEADLINE_EXCEEDED ? "expired" : code === Code.INVALID_ARGUMENT ? "invalid" : "error";
}
