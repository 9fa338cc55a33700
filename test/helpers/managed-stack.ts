import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { createAdminClient, createHeartbeatClient, createPredictClient, type AdminApi, type HeartbeatApi, type PredictApi } from "../../clients/client.js";
import { MANAGEMENT_PORTS_LINE } from "../../core/ports-line.js";
import { eventually, spawnBin, startGatewayProcess, type Proc } from "./processes.js";
import { TestRedis } from "./redis-server.js";

/** Env variable that marks every process of one ManagedStack, so tests can prove none is left. */
const MARKER_ENV = "CLIPPER_TEST_MARKER";

/**
 * A local deployment whose management runs the replica manager: a private
 * redis-server, a gateway process and a management process started with
 * --gateway-rpc, plus the typed clients from clients/client.ts.
 */
export class ManagedStack {
  readonly marker = randomUUID();
  redis!: TestRedis;
  gateway!: { proc: Proc; grpc: number; http: number; rpc: number };
  management!: { proc: Proc; grpc: number; http: number };
  admin!: AdminApi;
  predict!: PredictApi;
  heartbeat!: HeartbeatApi;
  /** Whether startManagement passes --allow-worker-commands (a test may turn it off before a restart). */
  allowWorkerCommands = true;
  /** More flags startManagement passes. */
  managementArgs: string[] = [];
  /** More variables in the management process's environment. */
  managementEnv: Record<string, string> = {};

  /** `evictionMs` short so a killed worker leaves the gateway quickly. */
  static async start(
    options: { evictionMs?: number; allowWorkerCommands?: boolean; managementArgs?: string[]; managementEnv?: Record<string, string>; gatewayArgs?: string[] } = {},
  ): Promise<ManagedStack> {
    const s = new ManagedStack();
    s.managementEnv = options.managementEnv ?? {};
    s.allowWorkerCommands = options.allowWorkerCommands ?? true;
    s.managementArgs = options.managementArgs ?? [];
    s.redis = await TestRedis.start();
    s.gateway = await startGatewayProcess(s.redis.url, ["--eviction-ms", String(options.evictionMs ?? 600), ...(options.gatewayArgs ?? [])]);
    await s.startManagement();
    s.predict = createPredictClient(`127.0.0.1:${s.gateway.grpc}`);
    s.heartbeat = createHeartbeatClient(`127.0.0.1:${s.gateway.grpc}`);
    return s;
  }

  /** (Re)starts the management process; its replica manager resumes the state in Redis. */
  async startManagement(): Promise<void> {
    const proc = spawnBin(
      "clipper-management",
      [
        "--redis-url", this.redis.url, "--grpc-port", "0", "--http-port", "0", "--gateway-rpc", `tcp://127.0.0.1:${this.gateway.rpc}`,
        // Tests deploy commands; workers keep the marker so markedProcesses() finds them.
        ...(this.allowWorkerCommands ? ["--allow-worker-commands"] : []), "--worker-inherit-env", MARKER_ENV, ...this.managementArgs,
      ],
      { ...this.managementEnv, [MARKER_ENV]: this.marker, CLIPPER_LOG_LEVEL: "info" },
    );
    const ports = MANAGEMENT_PORTS_LINE.read(await proc.waitFor(MANAGEMENT_PORTS_LINE.pattern));
    this.management = { proc, grpc: ports.grpc.port, http: ports.http.port };
    this.admin?.close();
    this.admin = createAdminClient(`127.0.0.1:${this.management.grpc}`);
    // The replica manager loads its state from Redis just after start.
    await eventually(() => this.admin.listDeployments({}).then(() => true, () => false), 15_000);
  }

  /** Addresses as `clipper` CLI flags. */
  get cliFlags(): string[] {
    return ["--management", `127.0.0.1:${this.management.grpc}`, "--gateway", `127.0.0.1:${this.gateway.grpc}`, "--gateway-http", `127.0.0.1:${this.gateway.http}`];
  }

  /** Live (not draining) workers of a model version at the gateway. */
  async liveWorkers(model: string, version?: string): Promise<number> {
    const r = await this.heartbeat.listWorkers({ modelName: model });
    return r.workers.filter((w) => !w.draining && (version === undefined || w.modelVersion === version)).length;
  }

  /** Pids of processes (workers included) that carry this stack's marker. */
  markedProcesses(): number[] {
    return processesWithEnv(`${MARKER_ENV}=${this.marker}`);
  }

  async close(): Promise<void> {
    this.admin?.close();
    this.predict?.close();
    this.heartbeat?.close();
    await this.management?.proc.stop("SIGTERM", 20_000);
    await this.gateway?.proc.stop();
    await this.redis?.destroy();
    // A failed test may leave workers behind: never let them outlive the file.
    for (const pid of this.markedProcesses()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
}

/** Pids whose environment holds `entry` ("KEY=value"), from /proc (Linux). */
export function processesWithEnv(entry: string): number[] {
  const marker = Buffer.from(`\0${entry}\0`);
  const pids: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if (Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${e}/environ`)]).includes(marker)) pids.push(Number(e));
    } catch {
      // gone
    }
  }
  return pids;
}
