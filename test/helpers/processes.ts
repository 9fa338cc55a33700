import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { GATEWAY_PORTS_LINE } from "../../core/ports-line.js";
import { freePort } from "./ports.js";

/** The checkout's root, for spawning bin/ scripts. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Longest wait for a spawned process to print its ports, in ms. */
const START_TIMEOUT_MS = 30_000;

/** Every process spawned here that has not exited yet. */
const live = new Set<ChildProcess>();
// Whatever a failed or timed-out test file leaves running is killed when its process exits.
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/** A spawned clipper-ts process and what it printed. */
export class Proc {
  readonly child: ChildProcess;
  output = "";

  constructor(child: ChildProcess) {
    this.child = child;
    live.add(child);
    child.once("exit", () => live.delete(child));
    child.stdout!.on("data", (d: Buffer) => (this.output += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (this.output += d.toString()));
  }

  /** Waits until `pattern` appears in the output; rejects if the process exits or time runs out. */
  waitFor(pattern: RegExp, timeoutMs = START_TIMEOUT_MS): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const m = pattern.exec(this.output);
        if (m !== null) {
          cleanup();
          resolve(m);
          return true;
        }
        return false;
      };
      const onData = (): void => void check();
      const onExit = (code: number | null): void => {
        cleanup();
        reject(new Error(`process exited (${code}) before printing ${pattern}:\n${this.output}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${pattern}:\n${this.output}`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.child.stdout!.off("data", onData);
        this.child.stderr!.off("data", onData);
        this.child.off("exit", onExit);
      };
      this.child.stdout!.on("data", onData);
      this.child.stderr!.on("data", onData);
      this.child.once("exit", onExit);
      if (!check() && this.child.exitCode !== null) onExit(this.child.exitCode);
    });
  }

  /** Waits for the process to exit by itself; resolves with its exit code, or "timeout". */
  waitExit(timeoutMs: number): Promise<number | null | "timeout"> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve(this.child.exitCode);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve("timeout"), timeoutMs);
      this.child.once("exit", (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  }

  /** Sends a signal and waits for exit; resolves with the exit code (null if killed). */
  stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 15_000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve(this.child.exitCode);
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
      this.child.once("exit", (code) => {
        clearTimeout(timer);
        resolve(code);
      });
      this.child.kill(signal);
    });
  }
}

/** Spawns `node bin/<name>.js args…` from the checkout root. */
export function spawnBin(name: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Proc {
  return new Proc(
    spawn(process.execPath, [`bin/${name}.js`, ...args], {
      cwd: ROOT,
      env: { ...process.env, CLIPPER_LOG_LEVEL: "warn", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
}

/** A gateway process and its bound ports; `env` is added to the process environment (e.g. OTEL_*). */
export async function startGatewayProcess(
  redisUrl: string,
  extra: readonly string[] = [],
  env: NodeJS.ProcessEnv = {},
): Promise<{ proc: Proc; grpc: number; http: number; rpc: number }> {
  const proc = spawnBin("clipper-gateway", ["--redis-url", redisUrl, "--grpc-port", "0", "--http-port", "0", "--rpc-port", "0", ...extra], env);
  const ports = GATEWAY_PORTS_LINE.read(await proc.waitFor(GATEWAY_PORTS_LINE.pattern));
  return { proc, grpc: ports.grpc.port, http: ports.http.port, rpc: ports.rpc.port };
}

/**
 * Port flags for a gateway that a test will kill and start again on the same
 * ports: claimed ports, which nothing else on the host takes meanwhile (a
 * port the kernel picked for `0` may become an outgoing connection's).
 */
export async function reusablePortFlags(): Promise<string[]> {
  return ["--grpc-port", String(await freePort()), "--http-port", String(await freePort()), "--rpc-port", String(await freePort())];
}

/** What a worker serves and where: the flags both runtimes (clipper-worker and the Python worker) take alike. */
export interface WorkerTarget {
  readonly model: string;
  readonly version: string;
  readonly inputType: string;
  /** Gateway endpoints, tcp://HOST:PORT or ipc:///path, comma-separated. */
  readonly gateway: string;
  readonly module: string;
}

/** The command-line flags of a worker serving `t`, then `extra`. */
export function workerArgs(t: WorkerTarget, extra: readonly string[] = []): string[] {
  return ["--model", t.model, "--version", t.version, "--input-type", t.inputType, "--gateway", t.gateway, "--module", t.module, ...extra];
}

/** A worker process serving `module` for a model version. */
export async function startWorkerProcess(
  rpcPort: number,
  model: string,
  version: string,
  inputType: string,
  module: string,
  extra: readonly string[] = [],
  env: NodeJS.ProcessEnv = {},
): Promise<Proc> {
  const proc = spawnBin("clipper-worker", workerArgs({ model, version, inputType, gateway: `tcp://127.0.0.1:${rpcPort}`, module }, extra), { CLIPPER_LOG_LEVEL: "info", ...env });
  await proc.waitFor(/worker registered/);
  return proc;
}

/** Polls `check` until it returns true or the bounded wait ends. */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 15_000, everyMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return false;
}

/**
 * Waits until a server's /readyz answers 200 (for management: its Redis
 * connection is up), as a deployment's readiness probe would before sending
 * it work; throws after `timeoutMs`. A server starts before Redis answers,
 * and calls made meanwhile get 503 by design.
 */
export async function untilReady(httpPort: number, timeoutMs = 30_000): Promise<void> {
  const ready = await eventually(async () => {
    try {
      return (await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status === 200;
    } catch {
      return false;
    }
  }, timeoutMs);
  if (!ready) throw new Error(`127.0.0.1:${httpPort}/readyz did not answer 200 within ${timeoutMs} ms`);
}
