import { reloadAll } from "../core/reload.js";
import { loadServerSecurity } from "../core/server-security.js";
import { loadRedisTls } from "../core/redis-client.js";
import { COMMON_OPTIONS, configOrExit } from "../core/config.js";
import { gatewayIdProblem } from "../core/deployment-layout.js";
import { runUntilSignal } from "../core/lifecycle.js";
import { formatAddressesLine, GATEWAY_CLIPPER_V3_LINE, GATEWAY_PORTS_LINE, GATEWAY_RPC_IPC_ENDPOINTS } from "../core/ports-line.js";
import { createLogger } from "../core/telemetry/logger.js";
import { startTracing } from "../core/telemetry/tracing.js";
import { startGateway } from "./gateway.js";
import { AUTO_FLOOR_MS, parseDoorSetting } from "./loop-door.js";
import { MAX_PROCESSES, processCount, processIndex, reportPorts, runPrimary } from "./process-cluster.js";
import { claimIpcPath, prepareIpcDir } from "./rpc/ipc-socket.js";
import { loadWorkerPortSecurity } from "./worker-port-security.js";

const OPTIONS = {
  ...COMMON_OPTIONS,
  "grpc-port": { kind: "port", env: "CLIPPER_GATEWAY_GRPC_PORT", default: "50051", help: "gRPC port (clipper.v1.Predict, Heartbeat, health, reflection)" },
  "http-port": { kind: "port", env: "CLIPPER_GATEWAY_HTTP_PORT", default: "1337", help: "HTTP port (transcoded Predict, Clipper POST /<app>/predict, /metrics)" },
  "rpc-port": { kind: "port", env: "CLIPPER_RPC_PORT", default: "7000", help: "ZeroMQ port model workers connect to" },
  "rpc-ipc-dir": {
    kind: "string",
    env: "CLIPPER_RPC_IPC_DIR",
    default: "",
    help: "absolute directory (created 0700; refused if another user may write it) where the worker port also listens on ipc://DIR/rpc-<process>.sock, for workers on this host; empty for none",
  },
  "cache-bytes": { kind: "bytes", env: "CLIPPER_CACHE_BYTES", default: "33554432", help: "prediction cache size in bytes; 0 turns it off" },
  "queue-capacity": { kind: "count", env: "CLIPPER_QUEUE_CAPACITY", default: "4096", help: "queries one model version may queue before callers get RESOURCE_EXHAUSTED / 429" },
  "max-batch-wait-ms": { kind: "count", env: "CLIPPER_MAX_BATCH_WAIT_MS", default: "0", help: "longest a free replica waits for callers just answered to fill its next batch, ms (e.g. 2 for a model-bound closed-loop load); 0 never waits" },
  "max-worker-message-bytes": {
    kind: "bytes",
    env: "CLIPPER_MAX_WORKER_MESSAGE_BYTES",
    default: "67108864",
    help: "largest message frame a worker may send (one output, or a batch's metadata); a worker that sends more is disconnected",
  },
  "curve-secret-key": {
    kind: "string",
    env: "CLIPPER_GATEWAY_CURVE_SECRET_KEY",
    default: "",
    help: "file with the gateway's CURVE secret key (clipper keys generate gateway): the worker port runs CURVE and speaks only the native dialect; needs --worker-keys",
  },
  "worker-keys": {
    kind: "string",
    env: "CLIPPER_WORKER_KEYS",
    default: "",
    help: "allow-list of worker keys, one per line: '<Z85 public key> [model,...]' (no models: any); re-read on SIGHUP, revoked workers are drained",
  },
  "clipper-v3-port": {
    kind: "string",
    env: "CLIPPER_V3_PORT",
    default: "",
    help: "with CURVE on, a separate plaintext port for Clipper's own containers (RPC v3, which cannot do CURVE); empty for none",
  },
  "clipper-v3-host": { kind: "host", env: "CLIPPER_V3_HOST", default: "127.0.0.1", help: "address --clipper-v3-port listens on (a non-loopback address needs --insecure)" },
  "clipper-v3-models": { kind: "string", env: "CLIPPER_V3_MODELS", default: "", help: "comma-separated models Clipper containers may register for; empty for any" },
  "batch-timeout-ms": {
    kind: "count",
    env: "CLIPPER_BATCH_TIMEOUT_MS",
    default: "30000",
    help: "most a batch may run before its replica is quarantined and its queries run elsewhere, ms (the timeout is 10x the replica's latency estimate, at least 1000, at most this)",
  },
  processes: {
    kind: "count",
    env: "CLIPPER_GATEWAY_PROCESSES",
    default: "1",
    help: "gateway processes sharing the gRPC and HTTP ports (0: one per core); process i's worker port is --rpc-port + i (each a free one with 0), all printed on an rpc-endpoints line",
  },
  "gateway-id": {
    kind: "string",
    env: "CLIPPER_GATEWAY_ID",
    default: "",
    help: "this gateway's id on its Redis DB 3 entries and liveness key (letters, digits, '._:@-'); empty for '<hostname>:<rpc port>', so a restart on the same host and port is the same gateway. Unique per gateway sharing one Redis",
  },
  "liveness-ttl-ms": {
    kind: "count",
    env: "CLIPPER_GATEWAY_LIVENESS_TTL_MS",
    default: "10000",
    help: "TTL of the gateway's liveness key in Redis, ms (renewed every third of it): after it, the DB 3 entries of a gateway that died without cleanup stop counting and other gateways remove them",
  },
  "shed-loop-delay-ms": {
    kind: "string",
    env: "CLIPPER_SHED_LOOP_DELAY_MS",
    default: "auto",
    help: `refuse Predict and ModelInfer calls at the door (429 / RESOURCE_EXHAUSTED, reason GATEWAY_BEHIND) while the event loop runs this many ms behind; auto judges each call by half its own app's SLO (at least ${AUTO_FLOOR_MS}; a call naming an unknown app by half the smallest SLO served), following the catalog; a number applies to every call; 0 never refuses`,
  },
  "eviction-ms": { kind: "count", env: "CLIPPER_EVICTION_MS", default: "3000", help: "silence after which a worker is evicted, ms (Clipper containers get at least 12000)" },
} as const;

const c = configOrExit("clipper-gateway", OPTIONS);
if (c["queue-capacity"] < 1 || c["eviction-ms"] < 100 || c["max-worker-message-bytes"] < 1024 || c["batch-timeout-ms"] < 100 || c["stream-stall-ms"] < 100) {
  process.stderr.write("--queue-capacity must be at least 1, --eviction-ms, --batch-timeout-ms and --stream-stall-ms at least 100 and --max-worker-message-bytes at least 1024\n");
  process.exit(2);
}
const processes = processCount(c.processes);
if (processes > MAX_PROCESSES || (c["rpc-port"] !== 0 && c["rpc-port"] + processes - 1 > 65535)) {
  process.stderr.write(`clipper-gateway: --processes must be at most ${MAX_PROCESSES}, and --rpc-port + processes - 1 a port (got ${processes} from ${c["rpc-port"]})\n`);
  process.exit(2);
}
const gatewayIdError = c["gateway-id"] === "" ? null : gatewayIdProblem(c["gateway-id"]);
if (gatewayIdError !== null || c["liveness-ttl-ms"] < 300) {
  process.stderr.write(`clipper-gateway: ${gatewayIdError ?? "--liveness-ttl-ms must be at least 300"}\n`);
  process.exit(2);
}
const door = parseDoorSetting(c["shed-loop-delay-ms"]);
if (!door.ok) {
  process.stderr.write(`clipper-gateway: ${door.error}\n`);
  process.exit(2);
}
const workers = await loadWorkerPortSecurity(c);
if (!workers.ok) {
  process.stderr.write(`clipper-gateway: ${workers.error}\n`);
  process.exit(2);
}
const security = await loadServerSecurity(c, workers.value.auth !== null);
if (!security.ok) {
  process.stderr.write(`clipper-gateway: ${security.error}\n`);
  process.exit(2);
}
const { auth, tls, warning } = security.value;
const redisTls = await loadRedisTls(c["redis-url"], c["redis-tls-ca"]);
if (!redisTls.ok) {
  process.stderr.write(`clipper-gateway: ${redisTls.error}\n`);
  process.exit(2);
}
const index = processIndex();
const log = createLogger("clipper-gateway", c["log-level"]).child(index === null ? {} : { process: index });
// The sockets are checked before anything starts, so a taken one is a usage
// error (exit 2) and not a failed start. The primary of --processes checks
// every process's; each process checks its own again, and once more right
// before it binds (gateway/rpc/ipc-socket.ts).
let ipcPath: string | null = null;
if (c["rpc-ipc-dir"] !== "") {
  const paths = await prepareIpcDir(c["rpc-ipc-dir"], processes);
  if (!paths.ok) {
    process.stderr.write(`clipper-gateway: ${paths.error}\n`);
    process.exit(2);
  }
  for (const path of index === null ? paths.value : [paths.value[index]!]) {
    const claimed = await claimIpcPath(path);
    if (!claimed.ok) {
      process.stderr.write(`clipper-gateway: ${claimed.error}\n`);
      process.exit(2);
    }
    if (claimed.value) log.warn({ path }, "removed a stale worker socket: the gateway that made it is gone");
  }
  ipcPath = paths.value[index ?? 0]!;
}
if (index === null && processes > 1) {
  // The primary: it forks the gateway processes and serves nothing itself.
  await runPrimary(processes, { host: c.host, clipperV3Host: c["clipper-v3-host"] }, log, { exitWithStdin: c["exit-with-stdin"] });
}
if (warning !== null) log.warn(warning);
// Only when OTEL_* configures an exporter (core/telemetry/tracing.ts).
const tracing = await startTracing("clipper-gateway");
await runUntilSignal(log, async () => {
  const g = await startGateway(
    {
      redisUrl: c["redis-url"],
      redisTls: redisTls.value,
      host: c.host,
      grpcPort: c["grpc-port"],
      httpPort: c["http-port"],
      // A ZeroMQ ROUTER cannot share a port: each process has its own.
      rpcPort: c["rpc-port"] === 0 ? 0 : c["rpc-port"] + (index ?? 0),
      rpcIpcPath: ipcPath,
      cacheBytes: c["cache-bytes"],
      queueCapacity: c["queue-capacity"],
      evictionMs: c["eviction-ms"],
      maxBatchWaitMs: c["max-batch-wait-ms"],
      batchTimeoutMs: c["batch-timeout-ms"],
      maxWorkerMessageBytes: c["max-worker-message-bytes"],
      workerAuth: workers.value.auth,
      // Clipper containers connect to one gateway, as in Clipper: process 0's.
      clipperV3: (index ?? 0) === 0 ? workers.value.clipperV3 : null,
      ...(index === null ? {} : { processIndex: index }),
      clipperV3Models: workers.value.clipperV3Models,
      streamStallMs: c["stream-stall-ms"],
      // Each process of --processes is a gateway of its own in DB 3 (the default id already differs by worker port).
      ...(c["gateway-id"] === "" ? {} : { gatewayId: index === null ? c["gateway-id"] : `${c["gateway-id"]}.${index}` }),
      livenessTtlMs: c["liveness-ttl-ms"],
      shedLoopDelay: door.setting,
      auth: auth.authorizer ?? undefined,
      tls: tls ?? undefined,
      ...(warning === null ? {} : { warning }),
    },
    log,
  );
  if (index !== null) reportPorts({ grpc: g.grpcPort, http: g.httpPort, rpc: g.rpcPort, ipc: g.rpcIpcEndpoint, clipperV3: g.clipperV3Port });
  else {
    const at = (port: number) => ({ host: c.host, port });
    process.stdout.write(`${GATEWAY_PORTS_LINE.format({ grpc: at(g.grpcPort), http: at(g.httpPort), rpc: at(g.rpcPort) })}\n`);
    if (g.clipperV3Port !== null) process.stdout.write(`${GATEWAY_CLIPPER_V3_LINE.format({ rpc: { host: c["clipper-v3-host"], port: g.clipperV3Port } })}\n`);
    if (g.rpcIpcEndpoint !== null) process.stdout.write(`${formatAddressesLine(GATEWAY_RPC_IPC_ENDPOINTS, [g.rpcIpcEndpoint])}\n`);
  }
  const workerAuth = workers.value.auth;
  if (workerAuth !== null) log.info({ publicKey: workerAuth.publicKey, workerKeys: workerAuth.size }, "worker port runs CURVE");
  return {
    close: (graceMs) => g.close(graceMs).finally(() => tracing.shutdown()),
    reload: () => Promise.all([reloadAll(log, auth, tls), workerAuth?.reload(log)]).then(() => {}),
  };
}, { exitWithStdin: c["exit-with-stdin"] });
