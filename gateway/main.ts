import { reloadAll } from "../core/reload.js";
import { loadServerSecurity } from "../core/server-security.js";
import { COMMON_OPTIONS, configOrExit } from "../core/config.js";
import { runUntilSignal } from "../core/lifecycle.js";
import { GATEWAY_PORTS_LINE } from "../core/ports-line.js";
import { createLogger } from "../core/telemetry/logger.js";
import { startTracing } from "../core/telemetry/tracing.js";
import { startGateway } from "./gateway.js";

const OPTIONS = {
  ...COMMON_OPTIONS,
  "grpc-port": { kind: "port", env: "CLIPPER_GATEWAY_GRPC_PORT", default: "50051", help: "gRPC port (clipper.v1.Predict, Heartbeat, health, reflection)" },
  "http-port": { kind: "port", env: "CLIPPER_GATEWAY_HTTP_PORT", default: "1337", help: "HTTP port (transcoded Predict, Clipper POST /<app>/predict, /metrics)" },
  "rpc-port": { kind: "port", env: "CLIPPER_RPC_PORT", default: "7000", help: "ZeroMQ port model workers connect to" },
  "cache-bytes": { kind: "bytes", env: "CLIPPER_CACHE_BYTES", default: "33554432", help: "prediction cache size in bytes; 0 turns it off" },
  "queue-capacity": { kind: "count", env: "CLIPPER_QUEUE_CAPACITY", default: "4096", help: "queries one model version may queue before callers get RESOURCE_EXHAUSTED / 429" },
  "max-batch-wait-ms": { kind: "count", env: "CLIPPER_MAX_BATCH_WAIT_MS", default: "0", help: "longest a free replica waits for callers just answered to fill its next batch, ms (e.g. 2 for a model-bound closed-loop load); 0 never waits" },
  "max-worker-message-bytes": {
    kind: "bytes",
    env: "CLIPPER_MAX_WORKER_MESSAGE_BYTES",
    default: "67108864",
    help: "largest message frame a worker may send (one output, or a batch's metadata); a worker that sends more is disconnected",
  },
  "eviction-ms": { kind: "count", env: "CLIPPER_EVICTION_MS", default: "3000", help: "silence after which a worker is evicted, ms (Clipper containers get at least 12000)" },
} as const;

const c = configOrExit("clipper-gateway", OPTIONS);
if (c["queue-capacity"] < 1 || c["eviction-ms"] < 100 || c["max-worker-message-bytes"] < 1024) {
  process.stderr.write("--queue-capacity must be at least 1, --eviction-ms at least 100 and --max-worker-message-bytes at least 1024\n");
  process.exit(2);
}
const security = await loadServerSecurity(c, false);
if (!security.ok) {
  process.stderr.write(`clipper-gateway: ${security.error}\n`);
  process.exit(2);
}
const { auth, tls, warning } = security.value;
const log = createLogger("clipper-gateway", c["log-level"]);
if (warning !== null) log.warn(warning);
// Only when OTEL_* configures an exporter (core/telemetry/tracing.ts).
const tracing = await startTracing("clipper-gateway");
await runUntilSignal(log, async () => {
  const g = await startGateway(
    {
      redisUrl: c["redis-url"],
      host: c.host,
      grpcPort: c["grpc-port"],
      httpPort: c["http-port"],
      rpcPort: c["rpc-port"],
      cacheBytes: c["cache-bytes"],
      queueCapacity: c["queue-capacity"],
      evictionMs: c["eviction-ms"],
      maxBatchWaitMs: c["max-batch-wait-ms"],
      maxWorkerMessageBytes: c["max-worker-message-bytes"],
      auth: auth.authorizer ?? undefined,
      tls: tls ?? undefined,
      ...(warning === null ? {} : { warning }),
    },
    log,
  );
  const at = (port: number) => ({ host: c.host, port });
  process.stdout.write(`${GATEWAY_PORTS_LINE.format({ grpc: at(g.grpcPort), http: at(g.httpPort), rpc: at(g.rpcPort) })}\n`);
  return { close: (graceMs) => g.close(graceMs).finally(() => tracing.shutdown()), reload: () => reloadAll(log, auth, tls) };
}, { exitWithStdin: c["exit-with-stdin"] });
