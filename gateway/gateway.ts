import { DbBatch } from "../core/redis-batch.js";
import { connectRedis } from "../core/redis-client.js";
import { DB, modelKey } from "../core/redis-layout.js";
import { watchRedis } from "../core/redis-watch.js";
import { startGrpcServer } from "../core/servers/grpc-server.js";
import { startHttpServer } from "../core/servers/http-server.js";
import { opsRoutes } from "../core/servers/ops-routes.js";
import { CallInstrument } from "../core/telemetry/call-instrument.js";
import type { Logger } from "../core/telemetry/logger.js";
import { createMetricsRegistry } from "../core/telemetry/metrics.js";
import { createTranscoder } from "../core/transcoding/index.js";
import { encodeGatewayMessage } from "../core/wire/native.js";
import { PredictionCache } from "./cache.js";
import { Catalog } from "./catalog.js";
import { Dispatcher } from "./dispatcher.js";
import { clipperPredictRoutes } from "./http/clipper-predict.js";
import { GatewayMetrics } from "./metrics.js";
import { Predictor } from "./predictor.js";
import { GatewayReadiness } from "./readiness.js";
import { ReplicaRegistry } from "./replicas.js";
import { WorkerRpc } from "./rpc/worker-rpc.js";
import { HEARTBEAT_SERVICE_NAME, heartbeatBinding, heartbeatStreaming } from "./services/heartbeat.js";
import { PREDICT_SERVICE_NAME, predictBinding, predictStreaming } from "./services/predict.js";
import type { Task } from "./task.js";

/**
 * Default longest wait for returning callers before a batch goes out, in ms:
 * off. On the benchmark box (gateway, model and load generator sharing 2
 * cores) a 2 ms wait raised 32 closed-loop callers from ~51 % to ~59 % of the
 * model's capacity but lowered 128 callers from ~63 % to ~55 %, because
 * there the gateway's CPU, not the model, is the bottleneck (bench/README.md).
 */
export const DEFAULT_MAX_BATCH_WAIT_MS = 0;

export interface GatewayConfig {
  readonly redisUrl: string;
  readonly host: string;
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly rpcPort: number;
  /** Prediction cache size in bytes; 0 turns the cache off. */
  readonly cacheBytes: number;
  /** Queries one model version's queue holds before refusing with RESOURCE_EXHAUSTED. */
  readonly queueCapacity: number;
  /** Silence after which a native worker is evicted, in ms. */
  readonly evictionMs: number;
  /** Longest a free replica waits for returning callers to fill its next batch, in ms; 0 never waits. */
  readonly maxBatchWaitMs?: number;
}

export interface Gateway {
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly rpcPort: number;
  /** The Redis-synced catalog (its `loaded` says whether a full load has succeeded). */
  readonly catalog: Catalog;
  close(graceMs?: number): Promise<void>;
}

/**
 * Starts the query frontend: Predict and Heartbeat over gRPC (with health
 * and reflection) and transcoded HTTP, Clipper's POST /<app>/predict, the
 * worker RPC on ZeroMQ, and the Redis-synced catalog, with /metrics,
 * /healthz and /readyz. It starts while Redis is down and serves as soon as
 * the catalog has loaded; after that, a Redis outage does not stop serving
 * from what it knows, but health reports NOT_SERVING for clipper.v1.Predict
 * (and /readyz 503) until Redis is back and the catalog reconciled.
 */
export async function startGateway(config: GatewayConfig, log: Logger): Promise<Gateway> {
  const where = new URL(config.redisUrl).host;
  const metrics = new GatewayMetrics(createMetricsRegistry("clipper-gateway"));
  const redis = connectRedis(config.redisUrl, { name: "clipper-gateway" });
  // Subscribers may not run other commands, so keyspace events get their own connection.
  const sub = connectRedis(config.redisUrl, { name: "clipper-gateway-events" });
  watchRedis(redis, { connection: "commands", where, log, reconnects: metrics.redisReconnects });
  watchRedis(sub, { connection: "events", where, log, reconnects: metrics.redisReconnects });

  const registry = new ReplicaRegistry<Task>(redis, where, log);
  registry.on("removed", (r, reason) => metrics.replicaRemoved(r, reason));
  let rpc: WorkerRpc | null = null;
  let catalog: Catalog | null = null;
  const dispatcher = new Dispatcher(registry, (r, b, d) => rpc!.sendBatch(r, b, d), log, {
    queueCapacity: config.queueCapacity,
    batchSizeOf: (name, version) => catalog?.model(name, version)?.batchSize ?? -1,
    metrics,
    maxBatchWaitMs: config.maxBatchWaitMs ?? DEFAULT_MAX_BATCH_WAIT_MS,
  });
  catalog = new Catalog(redis, sub, where, log, {
    modelVersionRemoved: (name, version) => {
      // Clipper's cleanup of a version marked invalid: its replicas go, then its key.
      for (const r of dispatcher.modelVersionRemoved(name, version)) {
        if (r.dialect === "native") void rpc?.send(r.identity, encodeGatewayMessage({ kind: { $case: "drain", value: { reason: "model version deleted" } } }));
        registry.remove(r, "model-removed");
      }
      void new DbBatch(redis, where).del(DB.MODELS, modelKey(name, version)).run().catch(() => {});
    },
  });
  redis.on("ready", () => void registry.rewriteAll());

  const cache = new PredictionCache(config.cacheBytes);
  const predictor = new Predictor(catalog, dispatcher, cache, metrics);
  rpc = new WorkerRpc(registry, dispatcher, log, {
    host: config.host,
    port: config.rpcPort,
    evictionMs: config.evictionMs,
    onMissedHeartbeats: (r, n) => metrics.missedHeartbeats(r, n),
  });
  const calls = new CallInstrument(metrics.rpc, log);
  const bindings = [calls.binding(predictBinding(predictor)), calls.binding(heartbeatBinding(registry))];

  await rpc.start();
  const grpc = await startGrpcServer({
    host: config.host,
    port: config.grpcPort,
    bindings,
    streaming: { [PREDICT_SERVICE_NAME]: predictStreaming(predictor, calls), [HEARTBEAT_SERVICE_NAME]: heartbeatStreaming(registry) },
  });
  // Predict (and the server as a whole, "") follow readiness; Heartbeat needs no Redis.
  const setServing = (serving: boolean): void => {
    for (const s of ["", PREDICT_SERVICE_NAME]) grpc.health.setServing(s, serving);
  };
  setServing(false);
  const readiness = new GatewayReadiness(redis, sub, catalog, where, (state) => {
    setServing(state.ready);
    if (state.ready) log.info("gateway ready: serving clipper.v1.Predict");
    else log.warn({ reason: state.reason }, "gateway not ready: clipper.v1.Predict NOT_SERVING");
  });
  metrics.observe({
    queueDepths: () => dispatcher.queueDepths(),
    liveReplicas: () => countReplicas(registry.all()),
    cacheBytes: () => cache.bytes,
    ready: () => readiness.state.ready,
  });
  const http = await startHttpServer(
    [opsRoutes(metrics.registry, () => readiness.state), clipperPredictRoutes(predictor, calls), createTranscoder(bindings)],
    { host: config.host, port: config.httpPort, onError: (err) => log.error({ err }, "internal error in HTTP request") },
  );
  await catalog.start();
  readiness.start();
  log.info({ grpcPort: grpc.port, httpPort: http.port, rpcPort: rpc.port, host: config.host }, "gateway listening");

  return {
    grpcPort: grpc.port,
    httpPort: http.port,
    rpcPort: rpc.port,
    catalog,
    async close(graceMs) {
      setServing(false);
      await Promise.all([grpc.close(graceMs), http.close()]);
      await rpc!.close();
      for (const r of [...registry.all()]) registry.remove(r, "disconnected");
      await new Promise((resolve) => setTimeout(resolve, 20));
      redis.disconnect();
      sub.disconnect();
      log.info("gateway stopped");
    },
  };
}

/** Live replicas per model version, for the clipper_live_replicas gauge. */
function countReplicas(replicas: Iterable<{ modelName: string; modelVersion: string }>): { model: string; version: string; count: number }[] {
  const counts = new Map<string, { model: string; version: string; count: number }>();
  for (const r of replicas) {
    const key = modelKey(r.modelName, r.modelVersion);
    const c = counts.get(key);
    if (c === undefined) counts.set(key, { model: r.modelName, version: r.modelVersion, count: 1 });
    else c.count++;
  }
  return [...counts.values()];
}
