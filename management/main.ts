import { reloadAll } from "../core/reload.js";
import { loadServerSecurity } from "../core/server-security.js";
import { loadRedisTls } from "../core/redis-client.js";
import { COMMON_OPTIONS, configOrExit } from "../core/config.js";
import { runUntilSignal } from "../core/lifecycle.js";
import { MANAGEMENT_PORTS_LINE } from "../core/ports-line.js";
import { createLogger } from "../core/telemetry/logger.js";
import { startTracing } from "../core/telemetry/tracing.js";
import { loadGatewayAccess } from "./gateway-access.js";
import { startManagement } from "./management.js";

const OPTIONS = {
  ...COMMON_OPTIONS,
  "grpc-port": { kind: "port", env: "CLIPPER_MANAGEMENT_GRPC_PORT", default: "50052", help: "gRPC port (clipper.v1.Admin, health, reflection)" },
  "http-port": { kind: "port", env: "CLIPPER_MANAGEMENT_HTTP_PORT", default: "1338", help: "HTTP port (transcoded Admin, Clipper /admin/*, /metrics)" },
  "gateway-rpc": {
    kind: "string",
    env: "CLIPPER_MANAGEMENT_GATEWAY_RPC",
    default: "",
    help: "turns on the replica manager: the gateways' worker RPC endpoints (tcp://HOST:PORT, or ipc:///PATH for a gateway on this host; comma-separated) its workers connect to; it then starts processes on this host for whoever can call Admin",
  },
  "gateway-clipper-v3": {
    kind: "string",
    env: "CLIPPER_MANAGEMENT_GATEWAY_CLIPPER_V3",
    default: "",
    help: "the gateway's --clipper-v3-port endpoint (tcp://HOST:PORT) given to Clipper containers (CLIPPER_IP/CLIPPER_PORT); default: the first tcp:// endpoint of --gateway-rpc (none when it has only ipc:// ones)",
  },
  "worker-curve-secret-key": {
    kind: "string",
    env: "CLIPPER_MANAGEMENT_WORKER_CURVE_SECRET_KEY",
    default: "",
    help: "CURVE secret key file the workers it starts present (its public key must be in the gateway's --worker-keys); with --gateway-public-key",
  },
  "gateway-public-key": {
    kind: "string",
    env: "CLIPPER_MANAGEMENT_GATEWAY_PUBLIC_KEY",
    default: "",
    help: "the gateway's CURVE public key (Z85, or a file holding it), given to the workers it starts",
  },
  "allow-worker-commands": {
    kind: "flag",
    env: "CLIPPER_ALLOW_WORKER_COMMANDS",
    default: "false",
    help: "lets DeployModel run worker.command programs (clipper models deploy … -- COMMAND) as this user; off, such deploys get PERMISSION_DENIED",
  },
  "worker-module-root": {
    kind: "string",
    env: "CLIPPER_WORKER_MODULE_ROOT",
    default: "",
    help: "if set, module deploys must name a file under this directory (symlinks resolved)",
  },
  "worker-inherit-env": {
    kind: "string",
    env: "CLIPPER_WORKER_INHERIT_ENV",
    default: "",
    help: "comma-separated names of more variables of this environment its workers get (beyond PATH, HOME, locale, OTEL_*); never secrets",
  },
  "allowed-hosts": {
    kind: "string",
    env: "CLIPPER_ALLOWED_HOSTS",
    default: "",
    help: "on a loopback --host, comma-separated Host names HTTP requests may carry besides loopback ones (port ignored); others get 421",
  },
} as const;

const c = configOrExit("clipper-management", OPTIONS);
if (c["stream-stall-ms"] < 100) {
  process.stderr.write("clipper-management: --stream-stall-ms must be at least 100\n");
  process.exit(2);
}
if (c["gateway-rpc"] === "" && (c["gateway-clipper-v3"] !== "" || c["worker-curve-secret-key"] !== "" || c["gateway-public-key"] !== "")) {
  process.stderr.write("clipper-management: --gateway-clipper-v3, --worker-curve-secret-key and --gateway-public-key are for the replica manager: give --gateway-rpc too\n");
  process.exit(2);
}
const gatewayAccess = c["gateway-rpc"] === "" ? null : await loadGatewayAccess(c);
if (gatewayAccess !== null && !gatewayAccess.ok) {
  process.stderr.write(`clipper-management: ${gatewayAccess.error}\n`);
  process.exit(2);
}
const security = await loadServerSecurity(c, "none");
if (!security.ok) {
  process.stderr.write(`clipper-management: ${security.error}\n`);
  process.exit(2);
}
const { auth, tls, warning } = security.value;
const redisTls = await loadRedisTls(c["redis-url"], c["redis-tls-ca"]);
if (!redisTls.ok) {
  process.stderr.write(`clipper-management: ${redisTls.error}\n`);
  process.exit(2);
}
const log = createLogger("clipper-management", c["log-level"]);
if (warning !== null) log.warn(warning);
if (c["allow-worker-commands"] && c["gateway-rpc"] !== "") {
  log.warn("--allow-worker-commands: whoever can call DeployModel can run programs on this host as this user");
  if (gatewayAccess?.ok === true && gatewayAccess.value.clipperV3 === null) {
    log.warn("--gateway-rpc has only ipc:// endpoints: command workers get no CLIPPER_IP/CLIPPER_PORT, so Clipper containers cannot connect; give --gateway-clipper-v3 tcp://HOST:PORT for them");
  }
}
// Only when OTEL_* configures an exporter (core/telemetry/tracing.ts).
const tracing = await startTracing("clipper-management");
await runUntilSignal(log, async () => {
  const m = await startManagement(
    {
      redisUrl: c["redis-url"],
      redisTls: redisTls.value,
      host: c.host,
      grpcPort: c["grpc-port"],
      httpPort: c["http-port"],
      gatewayRpc: c["gateway-rpc"],
      ...(gatewayAccess === null ? {} : { gatewayAccess: gatewayAccess.value }),
      logLevel: c["log-level"],
      workerPolicy: { allowCommands: c["allow-worker-commands"], moduleRoot: c["worker-module-root"] },
      workerInheritEnv: commaList(c["worker-inherit-env"]),
      allowedHosts: commaList(c["allowed-hosts"]),
      streamStallMs: c["stream-stall-ms"],
      auth: auth.authorizer ?? undefined,
      tls: tls ?? undefined,
      ...(warning === null ? {} : { warning }),
    },
    log,
  );
  // One plain line for people and scripts; the JSON log has the same facts.
  process.stdout.write(`${MANAGEMENT_PORTS_LINE.format({ grpc: { host: c.host, port: m.grpcPort }, http: { host: c.host, port: m.httpPort } })}\n`);
  return { close: (graceMs) => m.close(graceMs).finally(() => tracing.shutdown()), reload: () => reloadAll(log, auth, tls) };
}, { exitWithStdin: c["exit-with-stdin"] });

/** "a, b,,c" → ["a", "b", "c"]. */
function commaList(text: string): string[] {
  return text.split(",").map((s) => s.trim()).filter((s) => s !== "");
}
