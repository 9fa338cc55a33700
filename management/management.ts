import type { Authorizer } from "../core/auth/authorizer.js";
import type { ServerTls } from "../core/tls/server-tls.js";
import { connectRedis, redisWhere, type RedisTls } from "../core/redis-client.js";
import { watchRedis } from "../core/redis-watch.js";
import { DEFAULT_CLOSE_GRACE_MS, startGrpcServer } from "../core/servers/grpc-server.js";
import { startHttpServer } from "../core/servers/http-server.js";
import { opsRoutes } from "../core/servers/ops-routes.js";
import { allowHosts, guardRoutes, requireJsonBody, type RequestGuard } from "../core/servers/request-guards.js";
import { isLoopbackHost } from "../core/loopback.js";
import { createTranscoder } from "../core/transcoding/index.js";
import type { Logger } from "../core/telemetry/logger.js";
import { CallInstrument } from "../core/telemetry/call-instrument.js";
import { createMetricsRegistry, createRedisReconnects, createRpcMetrics } from "../core/telemetry/metrics.js";
import { AdminStore } from "./admin-store.js";
import { clipperAdminRoutes } from "./http/clipper-admin.js";
import { DeploymentStore } from "./deployment-store.js";
import { type GatewayAccess, plainGatewayAccess } from "./gateway-access.js";
import { ReplicaManager } from "./replica-manager.js";
import { ADMIN_SERVICE_NAME, adminBinding } from "./services/admin.js";
import type { WorkerPolicy } from "./worker-policy.js";

/**
 * Answered whatever the Host: a probe reads "ok" or "ready" and changes
 * nothing, and a kubelet or load balancer sends its own Host.
 */
const PROBE_PATHS: ReadonlySet<string> = new Set(["/healthz", "/readyz"]);

export interface ManagementConfig {
  readonly redisUrl: string;
  /** TLS to a rediss:// Redis (its CA); without it, a rediss:// URL uses the system's CAs. */
  readonly redisTls?: RedisTls | null;
  readonly host: string;
  readonly grpcPort: number;
  readonly httpPort: number;
  /**
   * The gateways' worker RPC endpoints (tcp://host:port or ipc:///path, comma-separated). When set, a replica
   * manager runs worker processes on this host (SetNumReplicas, DeployModel);
   * when empty or absent, those calls fail with FAILED_PRECONDITION.
   */
  readonly gatewayRpc?: string;
  /** How workers reach the gateway beyond gatewayRpc (CURVE keys, the Clipper v3 port); from gatewayRpc alone when absent. */
  readonly gatewayAccess?: GatewayAccess;
  /** Log level of the workers the replica manager starts; default "info". */
  readonly logLevel?: string;
  /** Admits calls by token and scope on the gRPC and HTTP ports; every call is admitted when absent. */
  readonly auth?: Authorizer;
  /** TLS (mutual with a client CA) on the gRPC and HTTP ports; plaintext when absent. */
  readonly tls?: ServerTls;
  /** Shown in /readyz's body while the server runs exposed without protection (--insecure). */
  readonly warning?: string;
  /** What the replica manager may run; default: modules anywhere, no commands (worker-policy.ts). */
  readonly workerPolicy?: WorkerPolicy;
  /** More variables of this process's environment its workers get (worker-env.ts). */
  readonly workerInheritEnv?: readonly string[];
  /** On a loopback host, the Host header names HTTP requests may carry besides loopback ones. */
  readonly allowedHosts?: readonly string[];
  /** How long a reflection stream may stay blocked on a client that does not read, ms (core/servers/bounded-stream.ts). */
  readonly streamStallMs?: number;
}

/** A running management server. */
export interface Management {
  readonly grpcPort: number;
  readonly httpPort: number;
  /** Stops accepting, lets calls in flight finish (up to `graceMs`), closes Redis. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Starts the management frontend: clipper.v1.Admin over gRPC (with health
 * and reflection) and over transcoded HTTP, plus Clipper's /admin/* REST,
 * /metrics, /healthz and /readyz. It starts even while Redis is down: calls
 * then fail with UNAVAILABLE / 503, health says NOT_SERVING, and the Redis
 * connection keeps retrying in the background.
 */
export async function startManagement(config: ManagementConfig, log: Logger): Promise<Management> {
  const redisAt = redisWhere(config.redisUrl);
  const redis = connectRedis(config.redisUrl, { name: "clipper-management", redisTls: config.redisTls ?? null });
  const registry = createMetricsRegistry("clipper-management");
  // Logs connect / loss / reconnect once each, and keeps ioredis 'error' events from crashing Node.
  watchRedis(redis, { connection: "commands", where: redisAt, log, reconnects: createRedisReconnects(registry) });
  const store = new AdminStore(redis, redisAt);
  const manager =
    config.gatewayRpc === undefined || config.gatewayRpc === ""
      ? null
      : new ReplicaManager(store, new DeploymentStore(redis, redisAt, ReplicaManager.host()), log.child({ component: "replica-manager" }), {
          gateway: config.gatewayAccess ?? plainAccess(config.gatewayRpc),
          workerLogLevel: config.logLevel ?? "info",
          workerPolicy: config.workerPolicy,
          workerInheritEnv: config.workerInheritEnv,
        });
  // Spans, clipper_rpc_* metrics and internal-error logs for every Admin call (gRPC, HTTP, Clipper REST).
  const calls = new CallInstrument(createRpcMetrics(registry), log);
  const binding = calls.binding(adminBinding(store, manager));

  const grpc = await startGrpcServer({
    host: config.host,
    port: config.grpcPort,
    bindings: [binding],
    ...(config.streamStallMs === undefined ? {} : { streamStallMs: config.streamStallMs }),
    ...(config.auth === undefined ? {} : { auth: config.auth }),
    ...(config.tls === undefined ? {} : { tls: config.tls }),
  });
  const setServing = (serving: boolean): void => {
    grpc.health.setServing("", serving);
    grpc.health.setServing(ADMIN_SERVICE_NAME, serving);
  };
  setServing(redis.status === "ready");
  redis.on("ready", () => setServing(true));
  redis.on("close", () => setServing(false));

  const readiness = () =>
    redis.status === "ready" ? { ready: true, reason: "" } : { ready: false, reason: `Redis at ${redisAt} is unreachable (${redis.status})` };
  let http;
  try {
    // See docs/security.md: DNS rebinding and cross-site "simple requests".
    const hostGuard: RequestGuard[] = isLoopbackHost(config.host) ? [allowHosts(config.allowedHosts ?? [])] : [];
    const apiGuards = [...hostGuard, requireJsonBody];
    http = await startHttpServer([
      guardRoutes(opsRoutes(registry, readiness, config.warning ?? null), hostGuard, { except: PROBE_PATHS }),
      guardRoutes(clipperAdminRoutes(store, { calls }), apiGuards),
      guardRoutes(createTranscoder([binding]), apiGuards),
    ], {
      host: config.host,
      port: config.httpPort,
      onError: (err) => log.error({ err }, "internal error in HTTP request"),
      ...(config.auth === undefined ? {} : { auth: config.auth }),
    ...(config.tls === undefined ? {} : { tls: config.tls }),
    });
  } catch (err) {
    await grpc.close(0);
    redis.disconnect();
    throw err;
  }
  log.info({ grpcPort: grpc.port, httpPort: http.port, host: config.host }, "management listening");
  manager?.start();

  return {
    grpcPort: grpc.port,
    httpPort: http.port,
    async close(graceMs = DEFAULT_CLOSE_GRACE_MS) {
      // The replica manager drains its workers while Redis is still there to forget their records.
      await Promise.all([grpc.close(graceMs), http.close(), manager?.close()]);
      redis.disconnect();
      log.info("management stopped");
    },
  };
}

function plainAccess(rpc: string): GatewayAccess {
  const access = plainGatewayAccess(rpc);
  if (!access.ok) throw new TypeError(`gateway RPC endpoint ${access.error}`);
  return access.value;
}
