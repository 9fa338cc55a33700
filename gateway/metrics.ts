/**
 * Every Prometheus metric the gateway exports, defined in one place
 * (design.md § Observability). Names follow Prometheus conventions: the
 * `clipper_` prefix, base units (seconds), `_total` counters, histograms
 * rather than summaries. Label values come only from the catalog and the
 * replica registry (apps, models, versions, replica ids), never from a
 * query, and a replica's series are removed when it leaves, so the number
 * of series stays bounded by what is deployed.
 *
 * Components get small per-app / per-model-version / per-replica objects
 * holding their metric children, built once when first needed and kept by
 * their users (the predictor keeps an app's on its target), so the hot path
 * only increments.
 */
import { performance } from "node:perf_hooks";
import { Counter, Gauge, type Registry } from "prom-client";
import { BucketHistogram, type BucketHistogramChild } from "../core/telemetry/bucket-histogram.js";
import {
  BATCH_SIZE_BUCKETS,
  createRedisReconnects,
  createRpcMetrics,
  DURATION_BUCKETS_SECONDS,
  type RpcMetrics,
} from "../core/telemetry/metrics.js";
import { DeferredCounter, type DeferredCount } from "../core/telemetry/deferred-counter.js";

/** How one query ended: a model answer (or cache hit), the app's default, an error, or refused for a full queue. */
export type Outcome = "ok" | "default" | "error" | "shed";

/**
 * Why a query got the app's default output: the app has no linked model
 * with a current version, no replica of that version is connected, or the
 * SLO passed before the model answered.
 */
export type DefaultReason = "no_model" | "no_replica" | "slo";

/** A cache lookup's result; `coalesced` joined an identical query already in flight. */
export type CacheResult = "hit" | "miss" | "coalesced";

/**
 * Why a queued query left its queue without being batched: the queue was
 * full or the queries ahead were predicted to outlast its deadline
 * (overloaded; both never queued, the caller is shed), its deadline passed, no replica could answer it in
 * time (doomed), or its model version was removed.
 */
export type DropReason = "full" | "overloaded" | "expired" | "doomed" | "removed";

/** What the gateway's gauges read at scrape time. */
export interface GaugeSources {
  /** Queries waiting per model version. */
  queueDepths(): Iterable<{ readonly model: string; readonly version: string; readonly depth: number }>;
  /** Connected replicas (draining ones included) per model version. */
  liveReplicas(): Iterable<{ readonly model: string; readonly version: string; readonly count: number }>;
  /** Bytes the prediction cache holds. */
  cacheBytes(): number;
  /** Whether clipper.v1.Predict is SERVING (Redis reachable, catalog loaded). */
  ready(): boolean;
  /** How far behind the event loop may run before the door refuses calls, ms; 0 when it never does. */
  doorThresholdMs(): number;
}

/** The predictor's metric children for one app answered by one model version. */
export class AppInstruments {
  readonly #outcomes: Record<Outcome, DeferredCount>;
  readonly #defaults: Record<DefaultReason, Counter.Internal>;
  readonly #latency: BucketHistogramChild;

  /** @internal built by {@link GatewayMetrics.app} */
  constructor(m: { predictions: DeferredCounter<"app" | "model" | "version" | "outcome">; defaults: Counter<string>; latency: BucketHistogram<"app"> }, app: string, model: string, version: string) {
    const outcome = (o: Outcome): DeferredCount => m.predictions.labels({ app, model, version, outcome: o });
    this.#outcomes = { ok: outcome("ok"), default: outcome("default"), error: outcome("error"), shed: outcome("shed") };
    const reason = (r: DefaultReason): Counter.Internal => m.defaults.labels({ app, reason: r });
    this.#defaults = { no_model: reason("no_model"), no_replica: reason("no_replica"), slo: reason("slo") };
    this.#latency = m.latency.labels({ app });
  }

  /** Counts a query that ended with `outcome` and observes its end-to-end latency (`startMs` from performance.now()). */
  answered(outcome: Outcome, startMs: number): void {
    this.#outcomes[outcome].inc();
    this.#latency.observe((performance.now() - startMs) / 1000);
  }

  /** Counts a default output and why it was given. */
  defaulted(reason: DefaultReason): void {
    this.#defaults[reason].inc();
  }
}

/** The dispatcher's metric children for one model version's queue. */
export class PoolInstruments {
  readonly queueWait: BucketHistogramChild;
  /** Batches split in two to find the input their model call failed on, or re-sent in parts after their replica was lost. */
  readonly batchSplits: Counter.Internal;
  /** Inputs failed alone: their model call failed as a whole with only them in it, or their replica was lost twice in a row running them. */
  readonly poisonItems: Counter.Internal;
  readonly #dropped: Record<DropReason, Counter.Internal>;

  /** @internal built by {@link GatewayMetrics.pool} */
  constructor(
    m: { queueWait: BucketHistogram<"model" | "version">; dropped: Counter<string>; batchSplits: Counter<"model" | "version">; poisonItems: Counter<"model" | "version"> },
    model: string,
    version: string,
  ) {
    this.queueWait = m.queueWait.labels({ model, version });
    this.batchSplits = m.batchSplits.labels({ model, version });
    this.poisonItems = m.poisonItems.labels({ model, version });
    const dropped = (reason: DropReason): Counter.Internal => m.dropped.labels({ model, version, reason });
    this.#dropped = { full: dropped("full"), overloaded: dropped("overloaded"), expired: dropped("expired"), doomed: dropped("doomed"), removed: dropped("removed") };
  }

  dropped(reason: DropReason, count = 1): void {
    if (count > 0) this.#dropped[reason].inc(count);
  }
}

/** The dispatcher's metric children for one replica's batches. */
export class ReplicaInstruments {
  readonly batchSize: BucketHistogramChild;
  readonly batchDuration: BucketHistogramChild;

  /** @internal built by {@link GatewayMetrics.replica} */
  constructor(m: { batchSize: BucketHistogram<"model" | "version" | "replica">; batchDuration: BucketHistogram<"model" | "version" | "replica"> }, labels: { model: string; version: string; replica: string }) {
    this.batchSize = m.batchSize.labels(labels);
    this.batchDuration = m.batchDuration.labels(labels);
  }
}

/** A replica as metrics see it. */
export interface ReplicaLabels {
  readonly modelName: string;
  readonly modelVersion: string;
  readonly replicaId: number;
}

/** The gateway's metrics on one registry (which also has Node's default metrics). */
export class GatewayMetrics {
  readonly registry: Registry;
  /** clipper_rpc_calls_total / clipper_rpc_duration_seconds (core/telemetry/metrics). */
  readonly rpc: RpcMetrics;
  /** clipper_redis_reconnects_total{connection}. */
  readonly redisReconnects: Counter<"connection">;
  readonly #predictions: DeferredCounter<"app" | "model" | "version" | "outcome">;
  readonly #latency: BucketHistogram<"app">;
  readonly #defaults: Counter<"app" | "reason">;
  readonly #cacheLookups: Record<CacheResult, DeferredCount>;
  readonly #queueWait: BucketHistogram<"model" | "version">;
  readonly #dropped: Counter<"model" | "version" | "reason">;
  readonly #batchSize: BucketHistogram<"model" | "version" | "replica">;
  readonly #batchDuration: BucketHistogram<"model" | "version" | "replica">;
  readonly #evictions: Counter<"model" | "version">;
  readonly #latencyRestarts: Counter<"model" | "version">;
  readonly #missedBeats: Counter<"model" | "version">;
  readonly #workerAuthFailures: Counter<"reason">;
  readonly #batchSplits: Counter<"model" | "version">;
  readonly #quarantines: Counter<"model" | "version">;
  readonly #behindRefusals: Counter<"transport" | "app">;
  readonly #poisonItems: Counter<"model" | "version">;
  readonly #apps = new Map<string, AppInstruments>();
  readonly #pools = new Map<string, PoolInstruments>();
  readonly #replicas = new Map<ReplicaLabels, ReplicaInstruments>();
  #sources: GaugeSources | null = null;

  constructor(registry: Registry) {
    this.registry = registry;
    const registers = [registry];
    const seconds = [...DURATION_BUCKETS_SECONDS];
    this.rpc = createRpcMetrics(registry);
    this.redisReconnects = createRedisReconnects(registry);
    this.#predictions = new DeferredCounter({
      name: "clipper_predictions_total",
      help: "Queries answered, by app, model, version and outcome (ok: model answer or cache hit; default: the app's default output; error; shed: refused, queue full or overloaded).",
      labelNames: ["app", "model", "version", "outcome"] as const,
      registers,
    });
    this.#latency = new BucketHistogram({
      name: "clipper_prediction_duration_seconds",
      help: "End-to-end time of a query inside the gateway, from catalog lookup to answer, in seconds, by app.",
      labelNames: ["app"] as const,
      buckets: seconds,
      registers,
    });
    this.#defaults = new Counter({
      name: "clipper_default_outputs_total",
      help: "Queries answered with the app's default output, by app and reason (no_model, no_replica, slo).",
      labelNames: ["app", "reason"] as const,
      registers,
    });
    const lookups = new DeferredCounter<"result">({
      name: "clipper_cache_lookups_total",
      help: "Prediction cache lookups by result (hit; miss: sent to the model; coalesced: joined an identical query in flight).",
      labelNames: ["result"] as const,
      registers,
    });
    this.#cacheLookups = { hit: lookups.labels({ result: "hit" }), miss: lookups.labels({ result: "miss" }), coalesced: lookups.labels({ result: "coalesced" }) };
    this.#queueWait = new BucketHistogram({
      name: "clipper_queue_wait_seconds",
      help: "Time a query waited in its model version's queue before a replica took it in a batch, in seconds.",
      labelNames: ["model", "version"] as const,
      buckets: seconds,
      registers,
    });
    this.#dropped = new Counter({
      name: "clipper_queue_dropped_total",
      help: "Queries that left a queue unbatched, by reason (full: refused, queue at capacity; overloaded: refused, the queries ahead would outlast its deadline; expired: deadline passed; doomed: no replica could answer in time; removed: version deleted).",
      labelNames: ["model", "version", "reason"] as const,
      registers,
    });
    this.#batchSize = new BucketHistogram({
      name: "clipper_batch_size",
      help: "Queries per batch sent to a replica, by model, version and replica id.",
      labelNames: ["model", "version", "replica"] as const,
      buckets: [...BATCH_SIZE_BUCKETS],
      registers,
    });
    this.#batchDuration = new BucketHistogram({
      name: "clipper_batch_duration_seconds",
      help: "Time from sending a batch to a replica to its answer, in seconds, by model, version and replica id.",
      labelNames: ["model", "version", "replica"] as const,
      buckets: seconds,
      registers,
    });
    this.#evictions = new Counter({
      name: "clipper_replica_evictions_total",
      help: "Replicas evicted for missing heartbeats or for not reading their messages, by model and version.",
      labelNames: ["model", "version"] as const,
      registers,
    });
    this.#latencyRestarts = new Counter({
      name: "clipper_latency_model_restarts_total",
      help: "Times a replica's latency model started over because its batches became far slower or faster than predicted, by model and version.",
      labelNames: ["model", "version"] as const,
      registers,
    });
    this.#missedBeats = new Counter({
      name: "clipper_missed_heartbeats_total",
      help: "Heartbeat intervals that passed without a message from a replica, by model and version.",
      labelNames: ["model", "version"] as const,
      registers,
    });
    this.#workerAuthFailures = new Counter({
      name: "clipper_worker_auth_failures_total",
      help: "Workers turned away by a CURVE worker port, by reason (handshake: the CURVE handshake failed, e.g. no CURVE, a wrong gateway key, or a peer that hung up in it; unknown_key: not in --worker-keys; bad_proof: registration without a valid proof of its key; model_not_allowed).",
      labelNames: ["reason"] as const,
      registers,
    });
    this.#batchSplits = new Counter({
      name: "clipper_batch_splits_total",
      help: "Batches re-sent in parts, by model and version: their model call failed as a whole (split in halves to find the input at fault), or their replica was lost while running them.",
      labelNames: ["model", "version"] as const,
      registers,
    });
    this.#poisonItems = new Counter({
      name: "clipper_poison_items_total",
      help: "Inputs failed on their own, by model and version: the model call failed with only them in the batch, or their replica was lost twice in a row while running them.",
      labelNames: ["model", "version"] as const,
      registers,
    });
    this.#quarantines = new Counter({
      name: "clipper_replica_quarantines_total",
      help: "Replicas taken out of service because a batch ran past its timeout (the model may hang), by model and version.",
      labelNames: ["model", "version"] as const,
      registers,
    });
    this.#behindRefusals = new Counter({
      name: "clipper_behind_refusals_total",
      help: "Predict and ModelInfer calls refused at the door (RESOURCE_EXHAUSTED / 429, reason GATEWAY_BEHIND) because the gateway's event loop was behind by --shed-loop-delay-ms, by transport (grpc, http) and app (\"\" when the call named no app the gateway serves).",
      labelNames: ["transport", "app"] as const,
      registers,
    });
    // Exported at 0 from the start, so a rate over them exists before the first refusal.
    for (const transport of ["grpc", "http"] as const) this.#behindRefusals.inc({ transport, app: "" }, 0);
    const sources = (): GaugeSources | null => this.#sources;
    new Gauge({
      name: "clipper_queue_depth",
      help: "Queries waiting in a model version's queue.",
      labelNames: ["model", "version"] as const,
      registers,
      collect() {
        this.reset();
        for (const q of sources()?.queueDepths() ?? []) this.set({ model: q.model, version: q.version }, q.depth);
      },
    });
    new Gauge({
      name: "clipper_live_replicas",
      help: "Replicas connected to this gateway, by model and version.",
      labelNames: ["model", "version"] as const,
      registers,
      collect() {
        this.reset();
        for (const r of sources()?.liveReplicas() ?? []) this.set({ model: r.model, version: r.version }, r.count);
      },
    });
    new Gauge({
      name: "clipper_cache_bytes",
      help: "Bytes held by the prediction cache.",
      registers,
      collect() {
        this.set(sources()?.cacheBytes() ?? 0);
      },
    });
    new Gauge({
      name: "clipper_loop_door_threshold_seconds",
      help: "How far behind the event loop may run before the door refuses the Predict and ModelInfer calls that bear the least (--shed-loop-delay-ms; auto: half the smallest SLO served, what a call naming an unknown app gets, while each app's calls bear half its own SLO), in seconds; 0 when it never refuses.",
      registers,
      collect() {
        this.set((sources()?.doorThresholdMs() ?? 0) / 1000);
      },
    });
    new Gauge({
      name: "clipper_ready",
      help: "1 while clipper.v1.Predict is SERVING (Redis reachable and the catalog loaded), else 0.",
      registers,
      collect() {
        this.set(sources()?.ready() === true ? 1 : 0);
      },
    });
  }

  /** A call refused at the door while the event loop was behind; `app` is "" when the call named no app served (the label's values stay the catalog's). */
  refusedBehind(transport: "grpc" | "http", app: string): void {
    this.#behindRefusals.inc({ transport, app });
  }

  /** A worker turned away by a CURVE worker port. */
  workerAuthFailed(reason: string): void {
    this.#workerAuthFailures.inc({ reason });
  }

  /** Connects the gauges to what they read; called once the components exist. */
  observe(sources: GaugeSources): void {
    this.#sources = sources;
  }

  /** Children for queries of `app` answered by `model`:`version` ("" when none); the same object for the same labels. */
  app(app: string, model: string, version: string): AppInstruments {
    const key = `${app}\u0000${model}\u0000${version}`;
    let a = this.#apps.get(key);
    if (a === undefined) {
      a = new AppInstruments({ predictions: this.#predictions, defaults: this.#defaults, latency: this.#latency }, app, model, version);
      this.#apps.set(key, a);
    }
    return a;
  }

  /** Children for one model version's queue. */
  pool(model: string, version: string): PoolInstruments {
    const key = `${model}\u0000${version}`;
    let p = this.#pools.get(key);
    if (p === undefined) {
      p = new PoolInstruments({ queueWait: this.#queueWait, dropped: this.#dropped, batchSplits: this.#batchSplits, poisonItems: this.#poisonItems }, model, version);
      this.#pools.set(key, p);
    }
    return p;
  }

  /** Drops every series of a model version that is gone for good (no replica, no catalog entry). */
  forgetVersion(model: string, version: string): void {
    this.#pools.delete(`${model}\u0000${version}`);
    for (const m of [this.#queueWait, this.#evictions, this.#missedBeats, this.#latencyRestarts, this.#batchSplits, this.#poisonItems, this.#quarantines]) m.remove({ model, version });
    for (const reason of ["full", "overloaded", "expired", "doomed", "removed"] as const) this.#dropped.remove({ model, version, reason });
  }

  /** Children for one replica's batches; dropped by {@link replicaRemoved}. */
  replica(r: ReplicaLabels): ReplicaInstruments {
    let i = this.#replicas.get(r);
    if (i === undefined) {
      i = new ReplicaInstruments({ batchSize: this.#batchSize, batchDuration: this.#batchDuration }, replicaLabels(r));
      this.#replicas.set(r, i);
    }
    return i;
  }

  /**
   * A replica left: counts an eviction, and removes its batch series so
   * replica ids (never reused while the gateway lives) cannot pile up.
   */
  replicaRemoved(r: ReplicaLabels, reason: string): void {
    if (reason === "evicted") this.#evictions.inc({ model: r.modelName, version: r.modelVersion });
    this.#replicas.delete(r);
    const labels = replicaLabels(r);
    this.#batchSize.remove(labels);
    this.#batchDuration.remove(labels);
  }

  /** Counts a replica quarantined for a batch past its timeout. */
  replicaQuarantined(r: ReplicaLabels): void {
    this.#quarantines.inc({ model: r.modelName, version: r.modelVersion });
  }

  /** Counts a restart of a replica's latency model (its cost changed abruptly). */
  latencyModelRestarted(r: ReplicaLabels): void {
    this.#latencyRestarts.inc({ model: r.modelName, version: r.modelVersion });
  }

  /** Counts heartbeat intervals a replica let pass in silence. */
  missedHeartbeats(r: ReplicaLabels, count: number): void {
    if (count > 0) this.#missedBeats.inc({ model: r.modelName, version: r.modelVersion }, count);
  }

  cacheLookup(result: CacheResult): void {
    this.#cacheLookups[result].inc();
  }
}

function replicaLabels(r: ReplicaLabels): { model: string; version: string; replica: string } {
  return { model: r.modelName, version: r.modelVersion, replica: String(r.replicaId) };
}
