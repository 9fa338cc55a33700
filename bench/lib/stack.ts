/**
 * The processes one benchmark run needs, all on 127.0.0.1: a private
 * redis-server, management (in this process), a gateway process (cache off),
 * counted model workers, and the bare ceiling servers. Workers reach the
 * gateway over its Unix domain socket (--rpc-ipc-dir, in a temporary
 * directory of its own), as workers on a gateway's host do, unless the
 * stack is asked for TCP. Everything is stopped by close(), also after a
 * failure.
 */
import { pino } from "pino";
import { distIsFresh } from "../../bin/launch.js";
import { gatewayNodeFlags } from "../../core/gateway-heap.js";
import { GATEWAY_PORTS_LINE, GATEWAY_RPC_ENDPOINTS, GATEWAY_RPC_IPC_ENDPOINTS, parseEndpointsLine } from "../../core/ports-line.js";
import { startManagement, type Management } from "../../management/management.js";
import { Proc, ROOT, workerArgs } from "../../test/helpers/processes.js";
import { TestRedis } from "../../test/helpers/redis-server.js";
import { COUNTER_LINE } from "./counter.js";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Longest wait for a spawned process to say it is ready, in ms (from the sources, tsx compiles on first start). */
const START_TIMEOUT_MS = 30_000;

/** A process whose handled calls can be counted (a worker's model, or a bare server). */
export interface CountedProc {
  readonly proc: Proc;
  readonly pid: number;
  /** Port of its counter endpoint. */
  readonly counterPort: number;
}

/** Options of {@link BenchStack.start}. */
export interface StackOptions {
  /**
   * When set, the gateway and workers run with `node --cpu-prof` and write
   * their .cpuprofile files here when they exit.
   */
  readonly profileDir: string | null;
  /** Sampling interval of the CPU profiler, in µs. */
  readonly profileIntervalUs: number;
  /** Extra gateway flags (auth, TLS). */
  readonly gatewayArgs?: readonly string[];
  /** How workers reach the gateway: its Unix domain socket (default) or its TCP worker port. */
  readonly workerTransport?: WorkerTransport;
}

/** How workers reach the gateway: `ipc` (--rpc-ipc-dir, a Unix domain socket) or `tcp` (127.0.0.1). */
export type WorkerTransport = "ipc" | "tcp";

/** `--worker-transport` of the bench scripts: the transport, or null when the text names none. */
export function parseWorkerTransport(text: string): WorkerTransport | null {
  return text === "ipc" || text === "tcp" ? text : null;
}

/**
 * Node flags that profile a process (--cpu-prof is not allowed in
 * NODE_OPTIONS, so they go on the command line). Each process writes into
 * its own folder `<profileDir>/<name>/`, one file per thread (tsx's module
 * loader runs on a thread of its own), named CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile;
 * the main thread is thread 0.
 */
function profileArgs(o: StackOptions, name: string): string[] {
  if (o.profileDir === null) return [];
  return ["--cpu-prof", `--cpu-prof-dir=${join(o.profileDir, name)}`, `--cpu-prof-interval=${o.profileIntervalUs}`];
}

/**
 * Environment of a profiled process: run from the sources, because
 * profile-summary.ts maps frames back to .ts lines through tsx's cache
 * (lib/source-lines.ts), which compiled dist/ frames are not in.
 */
function profileEnv(o: StackOptions): Record<string, string> {
  return o.profileDir === null ? {} : { CLIPPER_FROM_SOURCE: "1" };
}

/** Spawns `node [nodeArgs] bin/<name>.js args…` from the checkout root, as test/helpers spawnBin does. */
function spawnBinWith(name: string, nodeArgs: readonly string[], args: readonly string[], env: Record<string, string>): Proc {
  return new Proc(
    spawn(process.execPath, [...nodeArgs, `bin/${name}.js`, ...args], {
      cwd: ROOT,
      env: { ...process.env, CLIPPER_LOG_LEVEL: "warn", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
}

let built = false;

/**
 * Rebuilds dist/ if a source changed (scripts/build.mjs --if-stale, a few ms
 * when fresh), once per run: the gateway, workers and ceilings should all be
 * measured compiled, as deployed. A failed build is not fatal; the bins then
 * run the sources.
 */
function buildIfStale(): void {
  if (built) return;
  built = true;
  try {
    execFileSync(process.execPath, ["scripts/build.mjs", "--if-stale"], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
  } catch {
    process.stderr.write("bench: build failed; processes run from the TypeScript sources (tsx)\n");
  }
}

/** A gateway process and its bound ports. */
export interface GatewayProc {
  readonly proc: Proc;
  readonly pid: number;
  readonly grpc: number;
  readonly http: number;
  readonly rpc: number;
  /** Every worker endpoint (several with --processes) of the stack's transport, as clipper-worker --gateway takes them. */
  readonly rpcEndpoints: readonly string[];
  /** Its --rpc-ipc-dir with the ipc transport (a restart on the same ports reuses it), else null. */
  readonly ipcDir: string | null;
}

/**
 * Starts a gateway (cache off, heap flags, optional profiling) on the given
 * ports (0: any) and, with the ipc transport, socket directory (null: a new
 * one), and waits for its ports line.
 */
async function spawnGateway(redisUrl: string, options: StackOptions, ports: { grpc: number; http: number; rpc: number; ipcDir: string | null }): Promise<GatewayProc> {
  const ipc = (options.workerTransport ?? "ipc") === "ipc";
  // mkdtemp makes it 0700, as the gateway requires.
  const ipcDir = ipc ? (ports.ipcDir ?? mkdtempSync(join(tmpdir(), "clipper-bench-ipc-"))) : null;
  // The heap flags on the command line: on Node 20 the launcher cannot apply the semi-space size itself (core/gateway-heap.ts).
  const nodeArgs = profileArgs(options, "gateway");
  const proc = spawnBinWith(
    "clipper-gateway",
    [...gatewayNodeFlags(process.env, nodeArgs), ...nodeArgs],
    [
      "--redis-url", redisUrl, "--host", "127.0.0.1", "--grpc-port", String(ports.grpc), "--http-port", String(ports.http), "--rpc-port", String(ports.rpc),
      "--cache-bytes", "0", ...(ipcDir === null ? [] : ["--rpc-ipc-dir", ipcDir]), ...(options.gatewayArgs ?? []),
    ],
    profileEnv(options),
  );
  const started = async (): Promise<{ bound: ReturnType<typeof GATEWAY_PORTS_LINE.read>; rpcEndpoints: string[] }> => {
    const bound = GATEWAY_PORTS_LINE.read(await proc.waitFor(GATEWAY_PORTS_LINE.pattern, START_TIMEOUT_MS));
    // The sockets line comes last, for one process or several.
    if (ipcDir !== null) {
      await proc.waitFor(/rpc-ipc-endpoints=\S+\n/, START_TIMEOUT_MS);
      return { bound, rpcEndpoints: (parseEndpointsLine(GATEWAY_RPC_IPC_ENDPOINTS, proc.output) ?? "").split(",") };
    }
    const args = options.gatewayArgs ?? [];
    const processes = args.includes("--processes") ? Number(args[args.indexOf("--processes") + 1]) : 1;
    // One process prints no endpoints line (its worker port is the ports line's).
    if (processes === 1) return { bound, rpcEndpoints: [`tcp://127.0.0.1:${bound.rpc.port}`] };
    await proc.waitFor(/rpc-endpoints=\S+\n/, START_TIMEOUT_MS);
    return { bound, rpcEndpoints: (parseEndpointsLine(GATEWAY_RPC_ENDPOINTS, proc.output) ?? "").split(",") };
  };
  const { bound, rpcEndpoints } = await started().catch(async (err: unknown) => {
    await proc.stop("SIGKILL");
    if (ipcDir !== null && ports.ipcDir === null) rmSync(ipcDir, { recursive: true, force: true });
    throw err;
  });
  return { proc, pid: proc.child.pid!, grpc: bound.grpc.port, http: bound.http.port, rpc: bound.rpc.port, rpcEndpoints, ipcDir };
}

export class BenchStack {
  readonly workers: CountedProc[] = [];
  /** Gateways added with {@link addGateway}, on the same Redis. */
  readonly extraGateways: GatewayProc[] = [];
  readonly redis: TestRedis;
  readonly management: Management;
  #gateway: GatewayProc;
  readonly #options: StackOptions;

  private constructor(redis: TestRedis, management: Management, gateway: GatewayProc, options: StackOptions) {
    this.redis = redis;
    this.management = management;
    this.#gateway = gateway;
    this.#options = options;
  }

  /** Starts redis, management and a gateway with the prediction cache off (`--cache-bytes 0`). */
  static async start(options: StackOptions): Promise<BenchStack> {
    buildIfStale();
    const redis = await TestRedis.start();
    let management: Management | null = null;
    try {
      management = await startManagement({ redisUrl: redis.url, host: "127.0.0.1", grpcPort: 0, httpPort: 0 }, pino({ level: "silent" }));
      return new BenchStack(redis, management, await spawnGateway(redis.url, options, { grpc: 0, http: 0, rpc: 0, ipcDir: null }), options);
    } catch (err) {
      await management?.close(0);
      await redis.destroy();
      throw err;
    }
  }

  /** The gateway process now running and its ports. */
  get gateway(): GatewayProc {
    return this.#gateway;
  }

  /**
   * Kills the gateway with SIGKILL (no cleanup of any kind) and starts a new
   * one on the same three ports and socket directory (where it finds the
   * dead one's socket and replaces it), as a supervisor would; resolves once
   * the new one has printed its ports.
   */
  async killAndRestartGateway(hooks: { killed(): void | Promise<void> }): Promise<void> {
    const old = this.#gateway;
    await old.proc.stop("SIGKILL");
    await hooks.killed();
    this.#gateway = await spawnGateway(this.redis.url, this.#options, { grpc: old.grpc, http: old.http, rpc: old.rpc, ipcDir: old.ipcDir });
  }

  /** Starts one more gateway on the same Redis (its own ports and socket directory), stopped by {@link close}. */
  async addGateway(): Promise<GatewayProc> {
    const g = await spawnGateway(this.redis.url, this.#options, { grpc: 0, http: 0, rpc: 0, ipcDir: null });
    this.extraGateways.push(g);
    return g;
  }

  /** Adds an app linked to a new model version, as clipper_admin would. */
  async deploy(app: string, model: string, options: { sloMicros: number }): Promise<void> {
    const admin = async (endpoint: string, body: unknown): Promise<void> => {
      const res = await fetch(`http://127.0.0.1:${this.management.httpPort}/admin/${endpoint}`, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });
      if (res.status !== 200) throw new Error(`admin ${endpoint}: ${res.status} ${await res.text()}`);
    };
    await admin("add_app", { name: app, input_type: "doubles", default_output: "-1.0", latency_slo_micros: options.sloMicros });
    await admin("add_model", {
      model_name: model, model_version: "1", labels: [], input_type: "doubles", container_name: "", model_data_path: "", batch_size: -1,
    });
    await admin("add_model_links", { app_name: app, model_names: [model] });
  }

  /**
   * Starts a worker for `model` version 1 serving the counted model module
   * at `modulePath` (absolute); `extra` flags are added. It serves `gateways`
   * (worker endpoints), by default every endpoint of the stack's gateway.
   */
  async worker(model: string, modulePath: string, extra: readonly string[] = [], gateways: readonly string[] = this.gateway.rpcEndpoints): Promise<CountedProc> {
    const proc = spawnBinWith(
      "clipper-worker",
      profileArgs(this.#options, `worker-${model}`),
      workerArgs({ model, version: "1", inputType: "doubles", gateway: gateways.join(","), module: modulePath }, extra),
      { CLIPPER_LOG_LEVEL: "info", ...profileEnv(this.#options) },
    );
    const w = { proc, pid: proc.child.pid!, counterPort: 0 };
    this.workers.push(w);
    const m = await proc.waitFor(COUNTER_LINE, START_TIMEOUT_MS);
    await proc.waitFor(/worker registered/, START_TIMEOUT_MS);
    w.counterPort = Number(m[1]);
    return w;
  }

  /** Stops a worker (SIGTERM, it drains) and starts a fresh one for the same model and module. */
  async restartWorker(old: CountedProc, model: string, modulePath: string): Promise<CountedProc> {
    await old.proc.stop("SIGTERM", 5_000);
    this.workers.splice(this.workers.indexOf(old), 1);
    return this.worker(model, modulePath);
  }

  /**
   * Stops everything. Processes get SIGTERM (a graceful exit, which is
   * when --cpu-prof writes its profile), then SIGKILL if they linger.
   */
  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.proc.stop("SIGTERM", 5_000)));
    const gateways = [this.gateway, ...this.extraGateways];
    await Promise.all(gateways.map((g) => g.proc.stop("SIGTERM", 15_000)));
    for (const g of gateways) if (g.ipcDir !== null) rmSync(g.ipcDir, { recursive: true, force: true });
    await this.management.close(0);
    await this.redis.destroy();
  }
}

/** What the compiled ceilings in dist/bench/servers/ are built from (tsconfig.build.json). */
const BARE_SERVER_INPUTS = ["bench/servers", "bench/lib", "gen", "tsconfig.json", "tsconfig.build.json"];

/**
 * Starts a bare ceiling server (bench/servers/<name>.ts) and waits for its
 * ports. It runs as the gateway does, so that their RSS compare: compiled
 * when dist/ is fresh (tsx's loader thread alone adds ~35 MiB) and with the
 * gateway's heap flags.
 */
export async function startBareServer(name: "bare-grpc" | "bare-http"): Promise<CountedProc & { port: number }> {
  buildIfStale();
  const entry = distIsFresh(ROOT, BARE_SERVER_INPUTS) ? [`dist/bench/servers/${name}.js`] : ["--import", "tsx", `bench/servers/${name}.ts`];
  const proc = new Proc(spawn(process.execPath, [...gatewayNodeFlags(process.env, []), ...entry], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] }));
  try {
    const port = await proc.waitFor(new RegExp(`${name}: port=(\\d+)`), START_TIMEOUT_MS);
    const counter = await proc.waitFor(COUNTER_LINE, START_TIMEOUT_MS);
    return { proc, pid: proc.child.pid!, counterPort: Number(counter[1]), port: Number(port[1]) };
  } catch (err) {
    await proc.stop("SIGKILL");
    throw err;
  }
}
