/**
 * `clipper up`: the whole local stack in one command (design.md § Local
 * stack). Starts a private redis-server (unless --redis-url), the gateway,
 * management with its replica manager, and a demo (by default app `demo`,
 * doubles, linked to model `sum`; `--demo iris` a scikit-learn model on the
 * Python worker); prints the endpoints and example calls; shows a
 * live status line on a terminal; and on Ctrl-C / SIGTERM stops everything
 * it started, in order, leaving no process behind; killed outright (kill -9),
 * it still leaves none of its servers (local-processes.ts).
 */
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { credentials as grpcCredentials, status as Status, type ChannelCredentials } from "@grpc/grpc-js";
import { gatewayNodeFlags } from "../../core/gateway-heap.js";
import { GATEWAY_CLIPPER_V3_LINE, GATEWAY_PORTS_LINE, GATEWAY_RPC_IPC_ENDPOINTS, MANAGEMENT_PORTS_LINE, parseEndpointsLine } from "../../core/ports-line.js";
import { ipcPathProblem } from "../../core/worker-endpoint.js";
import { parseRedisUrl, redactRedisUrl, redisUrlUsesTls } from "../../core/redis-url.js";
import { createAdminClient, createHeartbeatClient, isServiceError, type AdminApi, type ClientOptions } from "../client.js";
import { CliError, EXIT, intOption, strOption, type Command, type CommandContext, type Output } from "./cli-kit.js";
import { scrape, summarize, type Scrape } from "./gateway-metrics.js";
import { freePort, killSession, LocalProcess, portProblem, SESSION_ENV } from "./local-processes.js";
import { findRedisServer, installRedisServer, ping, privateRedisPassword, REDIS_HINT, startRedis } from "./local-redis.js";
import { demoNamed, DEMOS, type Demo } from "./demos.js";
import { ensureStackKeys } from "./local-curve.js";
import { ensureLocalTls } from "./local-tls.js";
import { ensureStackToken } from "./local-token.js";

/**
 * The checkout (or installed package): the servers run there, as they would
 * from the sources. Compiled, this file sits one level deeper (dist/), and a
 * model path relative to the servers' cwd must not change meaning with it.
 */
const ROOT = packageRoot(fileURLToPath(new URL("../../", import.meta.url)));
/** Longest wait for one server to print its ports, in ms (a cold tsx start on a busy machine takes seconds). */
const START_TIMEOUT_MS = 60_000;
/** Longest wait for the demo worker to register, in ms. */
const DEMO_TIMEOUT_MS = 60_000;
/** Grace for management to drain its workers and stop (its own shutdown deadline is 10 s), in ms. */
const MANAGEMENT_GRACE_MS = 15_000;
/** Grace for the gateway and Redis to stop, in ms. */
const SERVER_GRACE_MS = 10_000;
/** Live status refresh, in ms. */
const STATUS_EVERY_MS = 1_000;

/**
 * The servers exit when their standard input, a pipe only this process
 * holds, closes: when `clipper up` dies, by any signal (local-processes.ts).
 * Management's workers stay, for the next management to adopt.
 */
const PARENT_WATCH = ["--exit-with-stdin"];

/** Port flags: flag → [env variable, default, what it is]. */
const PORTS = {
  "gateway-grpc-port": ["CLIPPER_GATEWAY_GRPC_PORT", 50051, "gateway gRPC"],
  "gateway-http-port": ["CLIPPER_GATEWAY_HTTP_PORT", 1337, "gateway HTTP"],
  "rpc-port": ["CLIPPER_RPC_PORT", 7000, "gateway worker RPC (CURVE)"],
  "clipper-v3-port": ["CLIPPER_V3_PORT", 7001, "gateway RPC for Clipper containers (loopback, no CURVE)"],
  "management-grpc-port": ["CLIPPER_MANAGEMENT_GRPC_PORT", 50052, "management gRPC"],
  "management-http-port": ["CLIPPER_MANAGEMENT_HTTP_PORT", 1338, "management HTTP"],
} as const;
type PortFlag = keyof typeof PORTS;

export const upCommand: Command = {
  name: "up",
  args: "",
  summary: "Starts the whole local stack (private Redis, gateway, management, demo model) and stops it all on Ctrl-C.",
  details: [
    "Ports default to Clipper's and design.md's; a busy port is an error (0 picks a free one).",
    "Data (Redis append-only file) and logs go to --data-dir; apps, models and replica counts survive a restart.",
  ].join("\n"),
  options: {
    host: { type: "string", value: "HOST", help: "address the servers listen on (env CLIPPER_HOST, default 127.0.0.1)" },
    insecure: { type: "boolean", help: "let the servers start on a non-loopback --host without TLS (they say so in their logs and /readyz)" },
    "redis-url": { type: "string", value: "URL", help: "use this Redis instead of starting one, rediss:// for TLS, redis+sentinel://HOST:PORT,…/MASTER for Redis Sentinel (env CLIPPER_REDIS_URL)" },
    "redis-tls-ca": { type: "string", value: "FILE", help: "PEM CA that signs the certificate of a rediss:// --redis-url (env CLIPPER_REDIS_TLS_CA; default: the system's CAs)" },
    "redis-port": { type: "string", value: "N", help: "port of the private redis-server (env CLIPPER_REDIS_PORT, default 0 = a free one)" },
    ...Object.fromEntries(
      Object.entries(PORTS).map(([flag, [env, def, what]]) => [flag, { type: "string", value: "N", help: `${what} port (env ${env}, default ${def})` }]),
    ),
    fresh: { type: "boolean", help: "delete the private Redis's data first" },
    gateways: { type: "string", value: "N", help: "gateway processes sharing the gateway's ports (clipper-gateway --processes; 0: one per core; default 1)" },
    tls: { type: "boolean", help: "serve TLS on every gRPC and HTTP port, with a private CA and certificate made in <data-dir>/tls/ (openssl)" },
    demo: { type: "string", value: "NAME", help: `the demo app and model to deploy: ${Object.keys(DEMOS).join(" or ")} (default sum)` },
    "no-demo": { type: "boolean", help: "do not deploy the demo app and model" },
    "no-status": { type: "boolean", help: "no live status line, even on a terminal" },
    "log-level": { type: "string", value: "LEVEL", help: "log level of every process (env CLIPPER_LOG_LEVEL, default info)" },
  },
  minArgs: 0,
  maxArgs: 0,
  run: (ctx) => up(ctx),
};

interface Settings {
  host: string;
  connectHost: string;
  ports: Record<PortFlag, number>;
  redisUrl: string;
  /** Absolute path of --redis-tls-ca, or "". */
  redisTlsCa: string;
  redisPort: number;
  dataDir: string;
  logLevel: string;
}

function settings(values: CommandContext["values"], env: NodeJS.ProcessEnv): Settings {
  const withEnv = (flag: string, envName: string): CommandContext["values"] => (values[flag] === undefined && (env[envName] ?? "") !== "" ? { ...values, [flag]: env[envName] } : values);
  const ports = {} as Record<PortFlag, number>;
  for (const [flag, [envName, def]] of Object.entries(PORTS) as [PortFlag, (typeof PORTS)[PortFlag]][]) {
    ports[flag] = intOption(withEnv(flag, envName), flag, def, 0);
    if (ports[flag] > 65535) throw new CliError(EXIT.USAGE, `--${flag}: ${ports[flag]} is not a port`);
  }
  const host = strOption(withEnv("host", "CLIPPER_HOST"), "host", "127.0.0.1");
  return {
    host,
    // Clients and workers reach a wildcard listener over loopback.
    connectHost: host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host,
    ports,
    redisUrl: redisUrl(strOption(withEnv("redis-url", "CLIPPER_REDIS_URL"), "redis-url")),
    redisTlsCa: redisTlsCa(strOption(withEnv("redis-url", "CLIPPER_REDIS_URL"), "redis-url"), strOption(withEnv("redis-tls-ca", "CLIPPER_REDIS_TLS_CA"), "redis-tls-ca")),
    redisPort: intOption(withEnv("redis-port", "CLIPPER_REDIS_PORT"), "redis-port", 0, 0),
    dataDir: resolve(strOption(withEnv("data-dir", "CLIPPER_DATA_DIR"), "data-dir", ".clipper")),
    logLevel: strOption(withEnv("log-level", "CLIPPER_LOG_LEVEL"), "log-level", "info"),
  };
}

async function up({ values, out }: CommandContext): Promise<number> {
  const s = settings(values, process.env);
  const demo = chosenDemo(values);
  const session = randomUUID();
  const started: LocalProcess[] = [];
  let stopping: Promise<void> | null = null;
  let statusTimer: NodeJS.Timeout | null = null;
  const say = (line: string): void => void out.stdout.write(`${line}\n`);

  const stopAll = (why: string): Promise<void> => {
    stopping ??= (async () => {
      if (statusTimer !== null) clearInterval(statusTimer);
      if (out.stdout.isTTY === true) out.stdout.write("\r\x1b[2K");
      if (started.length === 0) return;
      say(`clipper up: ${why}; stopping…`);
      // Reverse start order: management drains its workers while the gateway still takes their answers.
      for (const p of [...started].reverse()) {
        await p.stop(p.name === "management" ? MANAGEMENT_GRACE_MS : SERVER_GRACE_MS);
        say(`  stopped ${p.name} (${p.exit ?? "gone"})`);
      }
      const leftovers = killSession(session);
      if (leftovers > 0) say(`  killed ${leftovers} leftover process${leftovers === 1 ? "" : "es"}`);
      say("clipper up: everything stopped");
    })();
    return stopping;
  };
  let signals = 0;
  const onSignal = (signal: string): void => {
    if (++signals > 1) {
      for (const p of started) p.kill();
      killSession(session);
      process.exit(EXIT.FAILED);
    }
    void stopAll(`got ${signal}`).then(() => process.exit(EXIT.OK));
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGHUP", () => onSignal("SIGHUP"));
  // Last resort if clipper up itself dies of an error: take the children along.
  process.on("exit", () => {
    if (stopping === null) for (const p of started) p.kill();
  });

  try {
    const asked = intOption(values, "gateways", 1, 0);
    const gatewayProcesses = asked === 0 ? availableParallelism() : asked;
    await checkPorts(s, gatewayProcesses);
    const logs = join(s.dataDir, "logs");
    mkdirSync(logs, { recursive: true });
    // Every API needs this token; predict and read stay open to calls without
    // one, so the curl and buf curl lines below work as they are.
    const { token, tokensFile } = ensureStackToken(s.dataDir);
    const tls = values.tls === true ? ensureLocalTls(s.dataDir) : null;
    const auth = [
      "--auth-tokens", tokensFile, "--auth-anonymous", "predict,read",
      ...(values.insecure === true ? ["--insecure"] : []),
      ...(tls === null ? [] : ["--tls-cert", tls.cert, "--tls-key", tls.key]),
    ];
    const credentials = tls === null ? undefined : grpcCredentials.createSsl(readFileSync(tls.ca));
    // Workers prove who they are; Clipper containers, which cannot, get a loopback port of their own.
    const keys = await ensureStackKeys(s.dataDir);
    const env: NodeJS.ProcessEnv = { ...process.env, CLIPPER_LOG_LEVEL: s.logLevel, [SESSION_ENV]: session };
    const node = (bin: string, args: string[], nodeFlags: readonly string[] = []): [string, ...string[]] => [process.execPath, ...nodeFlags, join(ROOT, "bin", `${bin}.js`), ...args];

    let redisUrl = s.redisUrl;
    /** Where Redis is, for people: no password in it. */
    let redisShown = redactRedisUrl(redisUrl);
    if (redisUrl === "") {
      const binary = findRedisServer() ?? installRedisServer(say).path;
      if (binary === null) throw new CliError(EXIT.FAILED, `redis-server is not installed: ${REDIS_HINT}`);
      const dir = join(s.dataDir, "redis");
      if (values.fresh === true) rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      const port = s.redisPort === 0 ? await freePort("127.0.0.1") : s.redisPort;
      if (s.redisPort !== 0 && (await ping(port))) throw new CliError(EXIT.FAILED, `a Redis already answers on port ${port}; pick another --redis-port, or use it with --redis-url redis://127.0.0.1:${port}`);
      const password = privateRedisPassword(s.dataDir);
      started.push(await startRedis(binary, port, dir, join(logs, "redis.log"), env, password));
      redisUrl = `redis://:${encodeURIComponent(password)}@127.0.0.1:${port}`;
      redisShown = `redis://127.0.0.1:${port}`;
    }
    // The servers read the URL from their environment: a password on a command line is visible to every user (ps).
    // The CA is set (or cleared) for them too, so an inherited one never meets the private, plaintext Redis.
    const serverEnv: NodeJS.ProcessEnv = { ...env, CLIPPER_REDIS_URL: redisUrl, CLIPPER_REDIS_TLS_CA: s.redisTlsCa };

    // The workers it starts on this host reach the gateway over Unix domain
    // sockets (cheaper per call than TCP loopback); the TCP worker port stays
    // open for workers elsewhere.
    const ipcDir = join(s.dataDir, "ipc");
    const ipcProblem = ipcPathProblem(join(ipcDir, `rpc-${gatewayProcesses - 1}.sock`));
    if (ipcProblem !== null) say(`clipper up: workers connect over TCP: ${ipcProblem}`);
    const gateway = new LocalProcess(
      "gateway",
      node("clipper-gateway", [
        "--host", s.host,
        "--grpc-port", String(s.ports["gateway-grpc-port"]), "--http-port", String(s.ports["gateway-http-port"]), "--rpc-port", String(s.ports["rpc-port"]),
        ...(ipcProblem === null ? ["--rpc-ipc-dir", ipcDir] : []),
        "--processes", String(gatewayProcesses),
        "--curve-secret-key", keys.gatewaySecretKey, "--worker-keys", keys.workerKeys,
        "--clipper-v3-port", String(s.ports["clipper-v3-port"]), "--clipper-v3-host", "127.0.0.1",
        ...auth, ...PARENT_WATCH,
      ], gatewayNodeFlags(serverEnv)),
      { env: serverEnv, cwd: ROOT, logPath: join(logs, "gateway.log"), stdinPipe: true },
    );
    started.push(gateway);
    const g = GATEWAY_PORTS_LINE.read(await gateway.waitFor(GATEWAY_PORTS_LINE.pattern, START_TIMEOUT_MS));
    const [gatewayGrpc, gatewayHttp, rpc] = [g.grpc.port, g.http.port, g.rpc.port];
    const clipperV3 = GATEWAY_CLIPPER_V3_LINE.read(await gateway.waitFor(GATEWAY_CLIPPER_V3_LINE.pattern, START_TIMEOUT_MS)).rpc.port;
    // With several gateway processes, workers serve every one's worker port.
    const tcpEndpoints =
      gatewayProcesses === 1 ? `tcp://${s.connectHost}:${rpc}` : (await gateway.waitFor(/rpc-endpoints=(\S+)\r?\n/, START_TIMEOUT_MS))[1]!;
    let ipcEndpoints: string | null = null;
    if (ipcProblem === null) {
      await gateway.waitFor(/rpc-ipc-endpoints=\S+\r?\n/, START_TIMEOUT_MS);
      ipcEndpoints = parseEndpointsLine(GATEWAY_RPC_IPC_ENDPOINTS, gateway.output());
    }
    const workerEndpoints = ipcEndpoints ?? tcpEndpoints;

    const management = new LocalProcess(
      "management",
      node("clipper-management", [
        "--host", s.host,
        "--grpc-port", String(s.ports["management-grpc-port"]), "--http-port", String(s.ports["management-http-port"]),
        "--gateway-rpc", workerEndpoints,
        "--gateway-clipper-v3", `tcp://127.0.0.1:${clipperV3}`,
        "--worker-curve-secret-key", keys.workerSecretKey, "--gateway-public-key", keys.gatewayPublicKey,
        // `clipper models deploy … -- COMMAND` runs Clipper containers on this machine.
        "--allow-worker-commands",
        ...auth, ...PARENT_WATCH,
      ]),
      // Workers carry the session marker too, so a stop finds whatever this session started.
      { env: { ...serverEnv, CLIPPER_WORKER_INHERIT_ENV: [env.CLIPPER_WORKER_INHERIT_ENV ?? "", SESSION_ENV].filter((n) => n !== "").join(",") }, cwd: ROOT, logPath: join(logs, "management.log"), stdinPipe: true },
    );
    started.push(management);
    const m = MANAGEMENT_PORTS_LINE.read(await management.waitFor(MANAGEMENT_PORTS_LINE.pattern, START_TIMEOUT_MS));
    const [mgmtGrpc, mgmtHttp] = [m.grpc.port, m.http.port];

    const where = {
      gateway: `${s.connectHost}:${gatewayGrpc}`,
      gatewayHttp: `${s.connectHost}:${gatewayHttp}`,
      management: `${s.connectHost}:${mgmtGrpc}`,
    };
    if (demo !== null) await deployDemo(demo, where, { token, ...(credentials === undefined ? {} : { credentials }) }, say);

    for (const p of started) {
      void p.exited.then((exit) => {
        if (stopping !== null) return;
        out.stderr.write(`\nclipper up: ${p.name} stopped unexpectedly (${exit}); its log (${p.logPath}) ends with:\n${p.tail()}\n`);
        void stopAll(`${p.name} failed`).then(() => process.exit(EXIT.FAILED));
      });
    }
    printBanner(say, s, where, { rpc, ipc: ipcEndpoints, clipperV3, mgmtHttp, redisUrl: redisShown, demo, privateRedis: s.redisUrl === "", ca: tls?.ca ?? null });
    if (out.stdout.isTTY === true && values["no-status"] !== true) statusTimer = startStatusLine(out, where, credentials, tls === null ? undefined : readFileSync(tls.ca));
    // Runs until a signal: stopAll() ends the process.
    return await new Promise<number>(() => {});
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    await stopAll("could not start the stack");
    throw err instanceof CliError ? err : new CliError(EXIT.FAILED, message);
  }
}

/** Every fixed port is free; with `gatewayProcesses` > 1, so are the worker ports after --rpc-port (one per process). */
async function checkPorts(s: Settings, gatewayProcesses: number): Promise<void> {
  const wanted: [PortFlag, number, string][] = [];
  for (const [flag, [, , what]] of Object.entries(PORTS) as [PortFlag, (typeof PORTS)[PortFlag]][]) wanted.push([flag, s.ports[flag], what]);
  const rpc = s.ports["rpc-port"];
  for (let i = 1; i < gatewayProcesses && rpc !== 0; i++) wanted.push(["rpc-port", rpc + i, `worker RPC of gateway process ${i}`]);
  for (const [flag, port, what] of wanted) {
    if (port === 0) continue;
    const problem = await portProblem(s.host, port);
    if (problem === null) continue;
    const why = problem === "EADDRINUSE" ? "is already in use (another clipper up, or Clipper itself?)" : `cannot be used (${problem})`;
    throw new CliError(EXIT.FAILED, `port ${port} (${what}) on ${s.host} ${why}; stop whatever holds it, or pass --${flag} N (0 picks a free port)`);
  }
}

/** Creates the demo's app, deploys its model (unless the replica manager already runs it) and links them; waits for a live worker. */
async function deployDemo(demo: Demo, where: { gateway: string; management: string }, options: ClientOptions, say: (l: string) => void): Promise<void> {
  const admin = createAdminClient(where.management, options);
  const heartbeat = createHeartbeatClient(where.gateway, options);
  const tolerate = (code: Status) => (err: unknown) => {
    if (!(isServiceError(err) && err.code === code)) throw err;
  };
  try {
    await admin.createApp({ name: demo.app, inputType: demo.inputType, defaultOutput: demo.defaultOutput, latencySloMicros: 1_000_000 }).catch(tolerate(Status.ALREADY_EXISTS));
    const managed = await listDeploymentsWhenLoaded(admin);
    if (!managed.some((d) => d.modelName === demo.model)) {
      say(`clipper up: deploying ${demo.what}…`);
      await admin.deployModel({ name: demo.model, version: "1", inputType: demo.inputType, numReplicas: 1, worker: demo.worker(ROOT) });
    }
    await admin.linkModel({ app: demo.app, model: demo.model }).catch(tolerate(Status.ALREADY_EXISTS));
    const end = Date.now() + DEMO_TIMEOUT_MS;
    while (!(await heartbeat.listWorkers({ modelName: demo.model })).workers.some((w) => !w.draining)) {
      if (Date.now() > end) throw new Error(`the demo worker did not register within ${DEMO_TIMEOUT_MS / 1000} s; see the management log`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    admin.close();
    heartbeat.close();
  }
}

/** ListDeployments, retried while the replica manager is still loading its state. */
async function listDeploymentsWhenLoaded(admin: AdminApi): Promise<{ modelName: string }[]> {
  const end = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    try {
      return (await admin.listDeployments({})).deployments;
    } catch (err) {
      if (!(isServiceError(err) && err.code === Status.UNAVAILABLE) || Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

function printBanner(
  say: (l: string) => void,
  s: Settings,
  where: { gateway: string; gatewayHttp: string; management: string },
  x: { rpc: number; ipc: string | null; clipperV3: number; mgmtHttp: number; redisUrl: string; demo: Demo | null; privateRedis: boolean; ca: string | null },
): void {
  const rel = relative(process.cwd(), s.dataDir) || ".";
  const defaults = where.gateway === "127.0.0.1:50051" && where.management === "127.0.0.1:50052" && where.gatewayHttp === "127.0.0.1:1337";
  const ca = x.ca === null ? null : relative(process.cwd(), x.ca) || x.ca;
  const flags = `${defaults ? "" : ` --gateway ${where.gateway} --management ${where.management} --gateway-http ${where.gatewayHttp}`}${ca === null ? "" : ` --tls-ca ${ca}`}`;
  // With --tls every port speaks TLS, checked against the stack's own CA.
  const http = ca === null ? "http" : "https";
  const curl = ca === null ? "curl -s" : `curl -s --cacert ${ca}`;
  const buf = ca === null ? "npx buf curl --protocol grpc --http2-prior-knowledge" : `npx buf curl --protocol grpc --cacert ${ca}`;
  const lines = [
    "",
    "clipper up: the stack is running; Ctrl-C stops it.",
    "",
    `  gateway     gRPC ${where.gateway}   HTTP ${http}://${where.gatewayHttp}`,
    `  workers     tcp://${s.connectHost}:${x.rpc} (CURVE: keys in ${rel}/curve/)   Clipper containers tcp://127.0.0.1:${x.clipperV3}`,
    ...(x.ipc === null ? [] : [`              on this host: ${x.ipc} (the replica manager's workers use it)`]),
    `  management  gRPC ${where.management}   HTTP ${http}://${s.connectHost}:${x.mgmtHttp}`,
    `  redis       ${x.redisUrl}${x.privateRedis ? ` (data in ${rel}/redis, password in ${rel}/redis-password)` : ""}`,
    `  logs        ${rel}/logs/`,
    `  token       ${rel}/token: every API needs it, but predict and read (the clipper CLI reads it from there)`,
    ...(ca === null ? [] : [`  TLS         trust ${ca} (the stack's own CA; the CLI takes --tls-ca or CLIPPER_CLIENT_TLS_CA)`]),
  ];
  const d = x.demo;
  if (d !== null) {
    lines.push(
      "",
      `${d.blurb} From another terminal:`,
      `  ${curl} -X POST ${http}://${where.gatewayHttp}/v1/apps/${d.app}:predict -d '{"input":${d.input}}'`,
      `  ${buf} -d '{"app":"${d.app}","input":${d.input}}' ${http}://${where.gateway}/clipper.v1.Predict/Predict`,
      `  ${curl} -X POST ${http}://${where.gatewayHttp}/${d.app}/predict -d '{"input":${d.clipperInput}}'     # Clipper's REST API`,
      `  npx clipper predict ${d.app} --input '${d.input}'${flags}     # ${d.answer}`,
      `  npx clipper replicas set ${d.model} 3${flags}`,
      `  npx clipper status${flags}`,
    );
  }
  lines.push("");
  say(lines.join("\n"));
}

/** Redraws one status line every second: replicas, calls/s, p99, mean batch size. */
function startStatusLine(out: Output, where: { gateway: string; gatewayHttp: string }, credentials: ChannelCredentials | undefined, ca: Buffer | undefined): NodeJS.Timeout {
  const heartbeat = createHeartbeatClient(where.gateway, { deadlineMs: 2_000, ...(credentials === undefined ? {} : { credentials }) });
  const since = Date.now();
  let prev: Scrape | null = null;
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void (async () => {
      const [workers, cur] = await Promise.all([heartbeat.listWorkers({}).then((r) => r.workers, () => null), scrape(where.gatewayHttp, undefined, ca)]);
      const m = summarize(cur, prev);
      prev = cur ?? prev;
      const live = workers === null ? "gateway not answering" : `${workers.filter((w) => !w.draining && !w.quarantined).length} replica${workers.length === 1 ? "" : "s"} live`;
      const fmt = (v: number | null, unit: string, digits = 1): string => `${v === null ? "-" : v.toFixed(digits)}${unit}`;
      const upFor = Math.floor((Date.now() - since) / 1000);
      const clock = `${Math.floor(upFor / 3600)}:${String(Math.floor(upFor / 60) % 60).padStart(2, "0")}:${String(upFor % 60).padStart(2, "0")}`;
      out.stdout.write(`\r\x1b[2K● ${live} · ${fmt(m.callsPerSec, " calls/s")} · p99 ${fmt(m.p99Ms, " ms")} · mean batch ${fmt(m.meanBatchSize, "", 2)} · up ${clock}`);
    })().finally(() => (busy = false));
  }, STATUS_EVERY_MS);
  timer.unref();
  return timer;
}

/** --demo NAME (default sum), or null with --no-demo. */
function chosenDemo(values: CommandContext["values"]): Demo | null {
  const name = strOption(values, "demo", "sum");
  if (values["no-demo"] === true) {
    if (values.demo !== undefined) throw new CliError(EXIT.USAGE, "--demo and --no-demo exclude each other");
    return null;
  }
  const demo = demoNamed(name);
  if (demo === null) throw new CliError(EXIT.USAGE, `--demo: no demo '${name}'; choose ${Object.keys(DEMOS).join(" or ")}`);
  const missing = demo.missing();
  if (missing !== null) throw new CliError(EXIT.FAILED, missing);
  return demo;
}

function packageRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) return start;
  }
}

/** --redis-url checked here by the servers' own rule, so a typo is a usage error before anything starts. */
function redisUrl(url: string): string {
  if (url === "") return url;
  const parsed = parseRedisUrl(url);
  if (!parsed.ok) throw new CliError(EXIT.USAGE, `--redis-url: ${parsed.error}`);
  return url;
}

/**
 * --redis-tls-ca as an absolute path (the servers run elsewhere), checked
 * against the URL: a CA needs a rediss:// URL, and the private Redis is
 * plaintext on loopback. The servers check the file itself at start.
 */
function redisTlsCa(url: string, ca: string): string {
  if (ca === "") return "";
  if (url === "") throw new CliError(EXIT.USAGE, "--redis-tls-ca goes with --redis-url rediss://…: the private redis-server clipper up starts is plaintext on loopback");
  if (!redisUrlUsesTls(url)) throw new CliError(EXIT.USAGE, "--redis-tls-ca is for a rediss:// or rediss+sentinel:// --redis-url");
  return resolve(ca);
}
