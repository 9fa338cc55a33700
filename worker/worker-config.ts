/**
 * clipper-worker's flags (each with a CLIPPER_* env variable, as Clipper's
 * own containers read CLIPPER_MODEL_NAME, CLIPPER_MODEL_VERSION and
 * CLIPPER_INPUT_TYPE) and their validation beyond what core/config checks.
 */
import { COMMON_OPTIONS, parseConfig, type OptionSpec } from "../core/config.js";
import { parseInputType, unknownInputTypeMessage } from "../core/input-types.js";
import { modelNameProblem } from "../core/names.js";
import { parseWorkerEndpointList } from "../core/worker-endpoint.js";

/** Shortest heartbeat interval accepted, in ms: below it the beats themselves become load. */
const MIN_HEARTBEAT_MS = 10;

/** The flags of clipper-worker. */
const WORKER_OPTIONS = {
  model: { kind: "string", env: "CLIPPER_MODEL_NAME", default: "", help: "model name (required)" },
  version: { kind: "string", env: "CLIPPER_MODEL_VERSION", default: "", help: "model version (required)" },
  "input-type": { kind: "string", env: "CLIPPER_INPUT_TYPE", default: "doubles", help: "bytes, integers, floats, doubles or strings (Clipper aliases accepted)" },
  gateway: {
    kind: "string",
    env: "CLIPPER_GATEWAY",
    default: "tcp://127.0.0.1:7000",
    help: "the gateways' worker RPC endpoints, tcp://host:port or ipc:///path (a gateway on this host, --rpc-ipc-dir), comma-separated; a host name means every address it resolves to (re-resolved)",
  },
  "gateway-resolve-ms": { kind: "count", env: "CLIPPER_GATEWAY_RESOLVE_MS", default: "10000", help: "how often gateway host names are resolved again, ms (>= 100)" },
  module: { kind: "string", env: "CLIPPER_MODULE", default: "", help: "model module (required): default export or `predict` is async (inputs) => outputs" },
  concurrency: { kind: "count", env: "CLIPPER_WORKER_CONCURRENCY", default: "1", help: "batches run at the same time (>= 1)" },
  "max-batch-size": { kind: "count", env: "CLIPPER_MAX_BATCH_SIZE", default: "0", help: "largest batch the model takes; 0 for no limit" },
  "model-timeout-ms": {
    kind: "count",
    env: "CLIPPER_MODEL_TIMEOUT_MS",
    default: "0",
    help: "a model call running this long has its items answered DEADLINE_EXCEEDED; if it has not returned as long again, the worker exits 1 (its supervisor restarts it); 0 for no timeout",
  },
  "heartbeat-ms": { kind: "count", env: "CLIPPER_HEARTBEAT_MS", default: "1000", help: `heartbeat and registration retry interval in ms until the gateway names one (>= ${MIN_HEARTBEAT_MS})` },
  "metrics-port": { kind: "string", env: "CLIPPER_WORKER_METRICS_PORT", default: "", help: "serve GET /metrics (worker and model metrics), /healthz and /readyz on this port; 0 picks a free one; empty for none" },
  "metrics-host": { kind: "host", env: "CLIPPER_WORKER_METRICS_HOST", default: "127.0.0.1", help: "address the metrics port listens on (0.0.0.0 for every interface)" },
  "tls-cert": { kind: "string", env: "CLIPPER_TLS_CERT", default: "", help: "PEM certificate chain: serve the metrics port over HTTPS (with --tls-key); re-read on SIGHUP" },
  "tls-key": { kind: "string", env: "CLIPPER_TLS_KEY", default: "", help: "PEM private key of --tls-cert" },
  "tls-client-ca": { kind: "string", env: "CLIPPER_TLS_CLIENT_CA", default: "", help: "PEM CA bundle: require client certificates it signed on the metrics port (mutual TLS)" },
  "gateway-public-key": {
    kind: "string",
    env: "CLIPPER_GATEWAY_PUBLIC_KEY",
    default: "",
    help: "the gateway's CURVE public key (40 Z85 characters, or a file holding it), for a worker port that runs CURVE; with --curve-secret-key",
  },
  "curve-secret-key": {
    kind: "string",
    env: "CLIPPER_WORKER_CURVE_SECRET_KEY",
    default: "",
    help: "file with this worker's CURVE secret key (clipper keys generate NAME); its public key must be in the gateway's --worker-keys",
  },
  "exit-with-stdin": {
    kind: "flag",
    env: "CLIPPER_EXIT_WITH_STDIN",
    default: "false",
    help: "exit at once when standard input reaches its end: for a supervisor that keeps a pipe to it open, so the worker never outlives it",
  },
  "log-level": COMMON_OPTIONS["log-level"],
} as const satisfies Record<string, OptionSpec>;

/** The validated configuration of one worker process. */
export interface WorkerConfig {
  readonly model: string;
  readonly version: string;
  /** As given (any Clipper spelling); known to be valid. */
  readonly inputType: string;
  readonly gateway: string;
  readonly gatewayResolveMs: number;
  readonly module: string;
  readonly concurrency: number;
  readonly maxBatchSize: number;
  /** Model-call timeout in ms; 0 for none. */
  readonly modelTimeoutMs: number;
  readonly heartbeatMs: number;
  /** Port of the metrics HTTP server (0: a free one), or null for none. */
  readonly metricsPort: number | null;
  readonly metricsHost: string;
  /** The metrics port's TLS files, as given ("" for none); ServerTls.fromFlags checks them. */
  readonly tls: { readonly "tls-cert": string; readonly "tls-key": string; readonly "tls-client-ca": string };
  /** The CURVE flags as given (both or neither; WorkerCredentials.load reads them); null without CURVE. */
  readonly curve: { readonly secretKeyFile: string; readonly gatewayPublicKey: string } | null;
  readonly logLevel: string;
  /** --exit-with-stdin: exit when standard input closes (core/parent-watch.ts). */
  readonly exitWithStdin: boolean;
}

/** The config, the --help text, or an error to print before exiting 2. */
export type ParsedWorkerConfig = { kind: "ok"; config: WorkerConfig } | { kind: "help"; text: string } | { kind: "error"; error: string };

const HINT = "run clipper-worker --help for every option";

/**
 * Parses flags > env > defaults, then checks what a worker needs: name and
 * version present and free of Clipper's key separators, a known input type,
 * a list of `tcp://host:port` or `ipc:///path` gateways, a module path, sane
 * counts. Never throws.
 */
export function parseWorkerConfig(argv: readonly string[], env: NodeJS.ProcessEnv): ParsedWorkerConfig {
  const parsed = parseConfig("clipper-worker", WORKER_OPTIONS, argv, env);
  if (parsed.kind !== "ok") return parsed;
  const c = parsed.config;
  const error =
    checkName("model name", "--model", "CLIPPER_MODEL_NAME", c.model) ??
    checkName("model version", "--version", "CLIPPER_MODEL_VERSION", c.version) ??
    (parseInputType(c["input-type"]) === null ? `--input-type: ${unknownInputTypeMessage(c["input-type"])}` : null) ??
    checkGatewayUrl(c.gateway) ??
    (c["gateway-resolve-ms"] < 100 ? "--gateway-resolve-ms must be at least 100" : null) ??
    (c.module.trim() === "" ? "--module is required (or set CLIPPER_MODULE): the path of the model module" : null) ??
    (c.concurrency < 1 ? "--concurrency must be at least 1" : null) ??
    (c["heartbeat-ms"] < MIN_HEARTBEAT_MS ? `--heartbeat-ms must be at least ${MIN_HEARTBEAT_MS}` : null) ??
    checkMetricsPort(c["metrics-port"]) ??
    ((c["gateway-public-key"] === "") !== (c["curve-secret-key"] === "") ? "--gateway-public-key and --curve-secret-key go together: give both (CURVE) or neither" : null);
  if (error !== null) return { kind: "error", error: `${error}\n(${HINT})` };
  return {
    kind: "ok",
    config: Object.freeze({
      model: c.model,
      version: c.version,
      inputType: c["input-type"],
      gateway: c.gateway,
      gatewayResolveMs: c["gateway-resolve-ms"],
      module: c.module,
      concurrency: c.concurrency,
      maxBatchSize: c["max-batch-size"],
      modelTimeoutMs: c["model-timeout-ms"],
      heartbeatMs: c["heartbeat-ms"],
      metricsPort: c["metrics-port"] === "" ? null : Number(c["metrics-port"]),
      metricsHost: c["metrics-host"],
      tls: { "tls-cert": c["tls-cert"], "tls-key": c["tls-key"], "tls-client-ca": c["tls-client-ca"] },
      curve: c["curve-secret-key"] === "" ? null : { secretKeyFile: c["curve-secret-key"], gatewayPublicKey: c["gateway-public-key"] },
      logLevel: c["log-level"],
      exitWithStdin: c["exit-with-stdin"],
    }),
  };
}

function checkName(what: string, flag: string, env: string, value: string): string | null {
  if (value === "") return `${flag} is required (or set ${env})`;
  const problem = modelNameProblem(`the ${what}`, value);
  if (problem !== null) return `${flag}: ${problem}`;
  if (value.trim() !== value) return `${flag}: the ${what} '${value}' must not start or end with spaces`;
  return null;
}

function checkMetricsPort(text: string): string | null {
  if (text === "" || (/^\d+$/.test(text) && Number(text) <= 65535)) return null;
  return `--metrics-port: '${text}' is not a port (0-65535; 0 picks a free one; empty for no metrics server)`;
}

function checkGatewayUrl(list: string): string | null {
  const endpoints = parseWorkerEndpointList(list);
  return endpoints.ok ? null : `--gateway: ${endpoints.error}`;
}
