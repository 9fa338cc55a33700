import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Authorizer } from "../core/auth/authorizer.js";
import { connectRedis, redisWhere, type RedisTls } from "../core/redis-client.js";
import { watchRedis } from "../core/redis-watch.js";
import { DEFAULT_STREAM_STALL_MS } from "../core/servers/bounded-stream.js";
import { startGrpcServer } from "../core/servers/grpc-server.js";
import { startHttpServer } from "../core/servers/http-server.js";
import { opsRoutes } from "../core/servers/ops-routes.js";
import { CallInstrument } from "../core/telemetry/call-instrument.js";
import type { Logger } from "../core/telemetry/logger.js";
import { createMetricsRegistry } from "../core/telemetry/metrics.js";
import type { ServerTls } from "../core/tls/server-tls.js";
import { createTranscoder } from "../core/transcoding/index.js";
import { PredictionCache } from "./cache.js";
import { Catalog } from "./catalog.js";
import { clusterMetricsSource, type MetricsSource } from "./cluster-metrics.js";
import { DEFAULT_BATCH_TIMEOUT_MS, Dispatcher } from "./dispatcher.js";
import { clipperPredictRoutes } from "./http/clipper-predict.js";
import { inferenceRestRoutes } from "./http/inference-rest.js";
import { appOfRequest, startLoopDoor, type DoorSetting } from "./loop-door.js";
import { GatewayMetrics } from "./metrics.js";
import { Predictor } from "./predictor.js";
import { GatewayReadiness } from "./readiness.js";
import type { Replica } from "./replica.js";
import { GatewayPresence } from "./gateway-presence.js";
import { RedisReplicaIds } from "./replica-ids.js";
import { ReplicaRecords, type GatewayIdentity } from "./replica-records.js";
import { ReplicaRegistry } from "./replica-registry.js";
import type { AuthFailure, WorkerAuth } from "./rpc/worker-auth.js";
import { WorkerRpc } from "./rpc/worker-rpc.js";
import { StaleReplicaSweep } from "./stale-replica-sweep.js";
import { HEARTBEAT_SERVICE_NAME, heartbeatBinding, heartbeatStreaming } from "./services/heartbeat.js";
import { INFERENCE_SERVICE_NAME, inferenceBinding, inferenceHandlers } from "./services/inference.js";
import { PREDICT_SERVICE_NAME, predictBinding, predictStreaming } from "./services/predict.js";

/**
 * Default longest wait for returning callers before a batch goes out, in ms:
 * off. Holding pays only while the model, not the gateway's own CPU, is the
 * bottleneck; where they share a small host it can lower throughput
 * (bench/README.md has the measurements).
 */
const DEFAULT_MAX_BATCH_WAIT_MS = 0;

/** Default largest frame a worker may send: a batch's outputs are one frame each, so this bounds one output. */
export const DEFAULT_MAX_WORKER_MESSAGE_BYTES = 64 * 1024 * 1024;

/** Default TTL of a gateway's liveness key in DB 8, in ms: how long its DB 3 entries outlive it when it dies without cleanup. */
export const DEFAULT_LIVENESS_TTL_MS = 10_000;

export interface GatewayConfig {
  readonly redisUrl: string;
  /** TLS to a rediss:// Redis (its CA); without it, a rediss:// URL uses the system's CAs. */
  readonly redisTls?: RedisTls | null;
  readonly host: string;
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly rpcPort: number;
  /** A Unix domain socket the worker port binds too (--rpc-ipc-dir: `<dir>/rpc-<i>.sock`); none when absent. */
  readonly rpcIpcPath?: string | null;
  /** Prediction cache size in bytes; 0 turns the cache off. */
  readonly cacheBytes: number;
  /** Queries one model version's queue holds before refusing with RESOURCE_EXHAUSTED. */
  readonly queueCapacity: number;
  /** Silence after which a native worker is evicted, in ms. */
  readonly evictionMs: number;
  /** Longest a free replica waits for returning callers to fill its next batch, in ms; 0 never waits. */
  readonly maxBatchWaitMs?: number;
  /** Cap of a batch's timeout, after which its replica is quarantined, in ms (dispatcher.ts batchTimeoutMs); default 30 000. */
  readonly batchTimeoutMs?: number;
  /** Largest frame a worker may send, in bytes (default {@link DEFAULT_MAX_WORKER_MESSAGE_BYTES}). */
  readonly maxWorkerMessageBytes?: number;
  /** Admits calls by token and scope on the gRPC and HTTP ports; every call is admitted when absent. */
  readonly auth?: Authorizer;
  /** TLS (mutual with a client CA) on the gRPC and HTTP ports; plaintext when absent. */
  readonly tls?: ServerTls;
  /** Shown in /readyz's body while the server runs exposed without protection (--insecure). */
  readonly warning?: string;
  /** CURVE on the worker port (native dialect only); plaintext, both dialects, when absent. */
  readonly workerAuth?: WorkerAuth | null;
  /** With CURVE, a separate plaintext port for Clipper containers; none when absent. */
  readonly clipperV3?: ClipperV3Port | null;
  /** Models Clipper containers may register for (on the port that speaks to them); any when absent. */
  readonly clipperV3Models?: ReadonlySet<string> | null;
  /** This process's index when the gateway runs as several (--processes): its metrics are labelled with it and /metrics shows every process. */
  readonly processIndex?: number;
  /** How long a stream may stay blocked on a client that does not read, ms (default {@link DEFAULT_STREAM_STALL_MS}). */
  readonly streamStallMs?: number;
  /** This gateway's id in DB 3 and DB 8 (checked by deployment-layout.ts gatewayIdProblem); default `<hostname>:<worker RPC port>`. */
  readonly gatewayId?: string;
  /** TTL of the liveness key, in ms (default {@link DEFAULT_LIVENESS_TTL_MS}); renewed every third of it, and peers' stale entries are swept every TTL. */
  readonly livenessTtlMs?: number;
  /**
   * How far behind the event loop may fall before Predict and ModelInfer
   * calls are refused at the door (gateway/loop-door.ts): a fixed number
   * of ms for every call, off, or (the default) half the SLO of each
   * call's own app.
   */
  readonly shedLoopDelay?: DoorSetting;
}

/** The plaintext port Clipper's containers connect to while the worker port runs CURVE. */
export interface ClipperV3Port {
  readonly host: string;
  /** 0 picks a free one. */
  readonly port: number;
  /** Models they may register for; null for any. */
  readonly models: ReadonlySet<string> | null;
}

export interface Gateway {
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly rpcPort: number;
  /** `ipc://<path>` of the worker port's Unix domain socket, when it has one. */
  readonly rpcIpcEndpoint: string | null;
  /** The Clipper v3 port, when one is open. */
  readonly clipperV3Port: number | null;
  /** Its id on its DB 3 entries and liveness key. */
  readonly gatewayId: string;
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
  const where = redisWhere(config.redisUrl);
  const index = config.processIndex ?? null;
  const metrics = new GatewayMetrics(createMetricsRegistry("clipper-gateway", index === null ? {} : { process: String(index) }));
  const metricsSource: MetricsSource = index === null ? metrics.registry : clusterMetricsSource(metrics.registry);
  const redis = connectRedis(config.redisUrl, { name: "clipper-gateway", redisTls: config.redisTls ?? null });
  // Subscribers may not run other commands, so keyspace events get their own connection.
  const sub = connectRedis(config.redisUrl, { name: "clipper-gateway-events", redisTls: config.redisTls ?? null });
  watchRedis(redis, { connection: "commands", where, log, reconnects: metrics.redisReconnects });
  watchRedis(sub, { connection: "events", where, log, reconnects: metrics.redisReconnects });

  // Built leaves first, so nothing needs a reference to what comes later:
  // catalog and registry know nobody; the dispatcher follows the registry
  // and reaches replicas through their links; the worker RPC registers
  // replicas (its dialects are their links) and hands answers to the
  // dispatcher; the predictor asks catalog, cache and dispatcher.
  const catalog = new Catalog(redis, sub, where, log);
  const registry = new ReplicaRegistry(log, new RedisReplicaIds(redis, where, log));
  registry.on("removed", (r, reason) => metrics.replicaRemoved(r, reason));
  registry.on("missedBeats", (r, n) => metrics.missedHeartbeats(r, n));
  registry.on("quarantined", (r) => metrics.replicaQuarantined(r));
  const dispatcher = new Dispatcher(registry, log, {
    queueCapacity: config.queueCapacity,
    batchSizeOf: (name, version) => catalog.model(name, version)?.batchSize ?? -1,
    metrics,
    maxBatchWaitMs: config.maxBatchWaitMs ?? DEFAULT_MAX_BATCH_WAIT_MS,
    batchTimeoutMs: config.batchTimeoutMs ?? DEFAULT_BATCH_TIMEOUT_MS,
  });
  // State for a version nobody registered in Redis goes with its last replica.
  registry.on("removed", (r) => {
    if (catalog.model(r.modelName, r.modelVersion) !== undefined) return;
    if (registry.noneLeft(r.modelName, r.modelVersion)) dispatcher.forgetPool(r.modelName, r.modelVersion);
  });
  catalog.on("modelVersionRemoved", (name, version) => {
    for (const r of dispatcher.modelVersionRemoved(name, version)) registry.dismiss(r, "model-removed", "model version deleted");
  });
  const workerAuth = config.workerAuth ?? null;
  const authFailures = (reason: AuthFailure): void => metrics.workerAuthFailed(reason);
  const portBase = { evictionMs: config.evictionMs, maxMessageBytes: config.maxWorkerMessageBytes ?? DEFAULT_MAX_WORKER_MESSAGE_BYTES, onAuthFailure: authFailures };
  const rpc = new WorkerRpc(registry, dispatcher, log, {
    ...portBase,
    host: config.host,
    port: config.rpcPort,
    ipcPath: config.rpcIpcPath ?? null,
    dialects: workerAuth === null ? "both" : "native",
    auth: workerAuth,
    clipperV3Models: config.clipperV3Models ?? null,
  });
  const v3 = config.clipperV3 ?? null;
  const v3rpc =
    v3 === null
      ? null
      : new WorkerRpc(registry, dispatcher, log, { ...portBase, host: v3.host, port: v3.port, dialects: "clipper-v3", clipperV3Models: v3.models });
  const cache = new PredictionCache(config.cacheBytes);
  const predictor = new Predictor(catalog, dispatcher, cache, metrics);
  const calls = new CallInstrument(metrics.rpc, log);
  // Whether Predict (and so the inference service) is served: followed by health, /readyz and ServerReady.
  let serving = false;
  // The Open Inference Protocol has REST routes of its own (gateway/http/inference-rest.ts), not transcoded ones.
  const inferenceCalls = inferenceHandlers({
    predictor,
    versions: (model) => catalog.versions(model),
    replicaCount: (model, version) => dispatcher.replicaCount(model, version),
    ready: () => serving,
  });
  const inference = calls.binding(inferenceBinding(inferenceCalls));

  const streamStallMs = config.streamStallMs ?? DEFAULT_STREAM_STALL_MS;
  await rpc.start();
  // The default id needs the bound worker port. Nothing is registered yet:
  // a replica joins only after its id came back from Redis.
  const identity: GatewayIdentity = { gatewayId: config.gatewayId ?? defaultGatewayId(rpc.port), run: randomUUID() };
  const bindings = [calls.binding(predictBinding(predictor)), calls.binding(heartbeatBinding(registry, identity.gatewayId))];
  const door = startLoopDoor(
    config.shedLoopDelay ?? { kind: "auto" },
    { sloOf: (app) => catalog.app(app)?.latencySloMicros, slos: () => Array.from(catalog.apps(), (a) => a.latencySloMicros) },
    metrics,
    log,
  );
  if (door !== null) catalog.on("appsChanged", () => door.fit());
  const ttlMs = config.livenessTtlMs ?? DEFAULT_LIVENESS_TTL_MS;
  const sweep = new StaleReplicaSweep(redis, where, identity.run, log);
  // Presence listens to "ready" before the records do, so on a reconnect the renewal goes out ahead of the rewrites.
  const presence = new GatewayPresence(redis, where, identity, ttlMs, log, (lapsed) => {
    if (!lapsed) return;
    records.rewriteAll();
    // At start this removes the entries of this gateway's previous run at once.
    void sweep.sweep();
  });
  presence.start();
  const records = new ReplicaRecords(registry, redis, where, identity, log);
  sweep.start(ttlMs);
  await v3rpc?.start();
  registry.startSweeping(sweepEveryMs(config.evictionMs));
  const grpc = await startGrpcServer({
    host: config.host,
    port: config.grpcPort,
    bindings: [...bindings, inference],
    ...(config.auth === undefined ? {} : { auth: config.auth }),
    ...(config.tls === undefined ? {} : { tls: config.tls }),
    streamStallMs,
    ...(door === null ? {} : { door: { check: door.check("grpc"), subjectOf: appOfRequest } }),
    streaming: { [PREDICT_SERVICE_NAME]: predictStreaming(predictor, calls, streamStallMs), [HEARTBEAT_SERVICE_NAME]: heartbeatStreaming(registry, identity.gatewayId, streamStallMs) },
  });
  // Predict, the inference service and the server as a whole ("") follow readiness; Heartbeat needs no Redis.
  const setServing = (ready: boolean): void => {
    serving = ready;
    for (const s of ["", PREDICT_SERVICE_NAME, INFERENCE_SERVICE_NAME]) grpc.health.setServing(s, ready);
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
    doorThresholdMs: () => door?.thresholdMs ?? 0,
  });
  const http = await startHttpServer(
    [opsRoutes(metricsSource, () => readiness.state, config.warning ?? null), clipperPredictRoutes(predictor, calls), createTranscoder(bindings, { subjectField: "app" }), inferenceRestRoutes(inferenceCalls, calls)],
    {
      host: config.host,
      port: config.httpPort,
      onError: (err) => log.error({ err }, "internal error in HTTP request"),
      ...(config.auth === undefined ? {} : { auth: config.auth }),
      ...(config.tls === undefined ? {} : { tls: config.tls }),
      ...(door === null ? {} : { door: door.check("http") }),
    },
  );
  await catalog.start();
  readiness.start();
  log.info({ grpcPort: grpc.port, httpPort: http.port, rpcPort: rpc.port, rpcIpc: rpc.ipcEndpoint ?? undefined, host: config.host, gatewayId: identity.gatewayId }, "gateway listening");

  return {
    grpcPort: grpc.port,
    httpPort: http.port,
    rpcPort: rpc.port,
    rpcIpcEndpoint: rpc.ipcEndpoint,
    clipperV3Port: v3rpc?.port ?? null,
    gatewayId: identity.gatewayId,
    catalog,
    async close(graceMs) {
      // 1. Load balancers and health checkers stop sending calls here.
      setServing(false);
      // 2. No new calls; calls in flight get the grace period to be answered
      //    while the workers still answer them.
      await Promise.all([grpc.close(graceMs), http.close()]);
      door?.stop();
      // 3. Then the workers go: no more answers, no more evictions.
      registry.stopSweeping();
      sweep.stop();
      await Promise.all([rpc.close(), v3rpc?.close()]);
      // 4. Their DB 3 entries are deleted, and those writes finish before
      //    Redis is let go, so no stale replica outlives the gateway.
      registry.clear("disconnected");
      dispatcher.close();
      await records.close();
      // 5. Then its liveness key, so peers see at once that it is gone.
      await presence.close();
      redis.disconnect();
      sub.disconnect();
      log.info("gateway stopped");
    },
  };
}

/**
 * `<hostname>:<worker RPC port>`: the same for a gateway restarted on the
 * same host and port, so it recognises its own entries; characters a
 * gateway id cannot hold become '_'.
 */
export function defaultGatewayId(rpcPort: number): string {
  return `${hostname().replace(/[^A-Za-z0-9._@-]/g, "_").slice(0, 180)}:${rpcPort}`;
}

/** How often the registry looks for silent replicas: four times per eviction timeout, 50 to 500 ms apart. */
function sweepEveryMs(evictionMs: number): number {
  return Math.max(50, Math.min(500, Math.floor(evictionMs / 4)));
}

/** Live replicas per model version, for the clipper_live_replicas gauge. */
function countReplicas(replicas: Iterable<Replica>): { model: string; version: string; count: number }[] {
  const counts = new Map<string, { model: string; version: string; count: number }>();
  for (const r of replicas) {
    const key = r.pool;
    const c = counts.get(key);
    if (c === undefined) counts.set(key, { model: r.modelName, version: r.modelVersion, count: 1 });
    else c.count++;
  }
  return [...counts.values()];
}
