import { collectDefaultMetrics, Counter, Registry } from "prom-client";
import { BucketHistogram } from "./bucket-histogram.js";
import { DeferredCounter } from "./deferred-counter.js";

/**
 * Histogram buckets for durations, in seconds: 100 µs to 10 s, about three
 * per decade. Every clipper-ts latency histogram uses these, so series from
 * different processes and stages aggregate and compare bucket for bucket
 * (summaries cannot be aggregated across replicas: reference/anchors.md §6,
 * pain point 9).
 */
export const DURATION_BUCKETS_SECONDS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** Histogram buckets for batch sizes, in items: powers of two up to 1024. */
export const BATCH_SIZE_BUCKETS: readonly number[] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/**
 * A process's Prometheus registry with Node's default metrics
 * (process_*, nodejs_*). Each process owns one; nothing registers globally.
 * `labels` are added to every series (the worker adds its model and version).
 */
export function createMetricsRegistry(service: string, labels: Readonly<Record<string, string>> = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service, ...labels });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/**
 * Calls served by a process's gRPC services, over gRPC or transcoded HTTP
 * (and Clipper REST where it maps to one), by full method
 * (`clipper.v1.Admin/CreateApp`), transport and gRPC status code name.
 */
export interface RpcMetrics {
  /** `clipper_rpc_calls_total{method, transport, code}`, counted once per call (core/telemetry/deferred-counter.ts). */
  readonly calls: DeferredCounter<"method" | "transport" | "code">;
  /** `clipper_rpc_duration_seconds{method, transport}`: time from the call's start to its answer (core/telemetry/bucket-histogram.ts). */
  readonly duration: BucketHistogram<"method" | "transport">;
}

/** Defines {@link RpcMetrics} on `registry`. */
export function createRpcMetrics(registry: Registry): RpcMetrics {
  return {
    calls: new DeferredCounter({
      name: "clipper_rpc_calls_total",
      help: "Calls handled, by full gRPC method, transport (grpc, http, clipper-rest) and gRPC status code.",
      labelNames: ["method", "transport", "code"] as const,
      registers: [registry],
    }),
    duration: new BucketHistogram({
      name: "clipper_rpc_duration_seconds",
      help: "Time from a call's arrival to its answer, in seconds, by full gRPC method and transport.",
      labelNames: ["method", "transport"] as const,
      buckets: [...DURATION_BUCKETS_SECONDS],
      registers: [registry],
    }),
  };
}

/** Defines `clipper_redis_reconnects_total{connection}` on `registry`. */
export function createRedisReconnects(registry: Registry): Counter<"connection"> {
  return new Counter({
    name: "clipper_redis_reconnects_total",
    help: "Times a Redis connection became ready again after it was lost, by connection.",
    labelNames: ["connection"] as const,
    registers: [registry],
  });
}
