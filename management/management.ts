import { connectRedis } from "../core/redis-client.js";
import { startGrpcServer } from "../core/servers/grpc-server.js";
import { startHttpServer } from "../core/servers/http-server.js";
import { opsRoutes } from "../core/servers/ops-routes.js";
import { createTranscoder } from "../core/transcoding/index.js";
import type { Logger } from "../core/telemetry/logger.js";
import { createMetricsRegistry } from "../core/telemetry/metrics.js";
import { AdminStore } from "./admin-store.js";
import { clipperAdminRoutes } from "./http/clipper-admin.js";
import { ADMIN_SERVICE_NAME, adminBinding } from "./services/admin.js";

export interface ManagementConfig {
  readonly redisUrl: string;
  readonly host: string;
  readonly grpcPort: number;
  readonly httpPort: number;
}

/** A running management server. */
export interface Management {
  readonly grpcPort: number;
  readonly httpPort: number;
  /** Stops accepting, lets calls in flight finish (up to `graceMs`), closes Redis. */
  close(graceMs?: number): Promise<void>;
}

/** Grace period for calls in flight at shutdown, in ms. */
const DEFAULT_CLOSE_GRACE_MS = 5_000;

/**
 * Starts the management frontend: clipper.v1.Admin over gRPC (with health
 * and reflection) and over transcoded HTTP, plus Clipper's /admin/* REST,
 * /metrics, /healthz and /readyz. It starts even while Redis is down: calls
 * then fail with UNAVAILABLE / 503, health says NOT_SERVING, and the Redis
 * connection keeps retrying in the background.
 */
export async function startManagement(config: ManagementConfig, log: Logger): Promise<Management> {
  const redisWhere = new URL(config.redisUrl).host;
  const redis = connectRedis(config.redisUrl, { name: "clipper-management" });
  // ioredis emits 'error' on every failed reconnect; without a listener Node would crash.
  let lastRedisError = "connecting";
  redis.on("error", (err: Error) => {
    if (err.message !== lastRedisError) log.warn({ err: err.message, redis: redisWhere }, "redis error");
    lastRedisError = err.message;
  });
  const store = new AdminStore(redis, redisWhere);
  const binding = adminBinding(store);
  const registry = createMetricsRegistry("clipper-management");

  const grpc = await startGrpcServer({
    host: config.host,
    port: config.grpcPort,
    bindings: [binding],
    onError: (err, method) => log.error({ err, method }, "internal error in call"),
  });
  const setServing = (serving: boolean): void => {
    grpc.health.setServing("", serving);
    grpc.health.setServing(ADMIN_SERVICE_NAME, serving);
  };
  setServing(redis.status === "ready");
  redis.on("ready", () => {
    log.info({ redis: redisWhere }, "redis connected");
    lastRedisError = "";
    setServing(true);
  });
  redis.on("close", () => {
    if (lastRedisError === "") log.warn({ redis: redisWhere }, "redis connection lost");
    setServing(false);
  });

  const readiness = () =>
    redis.status === "ready" ? { ready: true, reason: "" } : { ready: false, reason: `Redis at ${redisWhere} is unreachable (${redis.status})` };
  let http;
  try {
    http = await startHttpServer([opsRoutes(registry, readiness), clipperAdminRoutes(store), createTranscoder([binding])], {
      host: config.host,
      port: config.httpPort,
      onError: (err) => log.error({ err }, "internal error in HTTP request"),
    });
  } catch (err) {
    await grpc.close(0);
    redis.disconnect();
    throw err;
  }
  log.info({ grpcPort: grpc.port, httpPort: http.port, host: config.host }, "management listening");

  return {
    grpcPort: grpc.port,
    httpPort: http.port,
    async close(graceMs = DEFAULT_CLOSE_GRACE_MS) {
      await Promise.all([grpc.close(graceMs), http.close()]);
      redis.disconnect();
      log.info("management stopped");
    },
  };
}
