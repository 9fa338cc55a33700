/**
 * The private redis-server of `clipper up`: found on PATH, installed with
 * apt-get where that is possible, or explained; started with its data in a
 * local folder (append-only file, so the stack's apps, models and desired
 * replicas survive a restart of `clipper up`).
 */
import { spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { Socket } from "node:net";
import { delimiter, join } from "node:path";
import { LocalProcess } from "./local-processes.js";

/** Longest wait for redis-server to answer PING, in ms. */
const READY_TIMEOUT_MS = 15_000;

/** The redis-server executable on PATH, or null. */
export function findRedisServer(env: NodeJS.ProcessEnv = process.env): string | null {
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, "redis-server");
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** How to get redis-server, for the error message. */
export const REDIS_HINT =
  "install it (Debian/Ubuntu: sudo apt-get install -y redis-server; macOS: brew install redis), or pass --redis-url redis://HOST:PORT to use a Redis you run";

/**
 * Installs redis-server with apt-get when running as root on a machine that
 * has apt-get; returns its path, or null with the reason.
 */
export function installRedisServer(log: (line: string) => void): { path: string | null; reason: string } {
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  const hasApt = spawnSync("sh", ["-c", "command -v apt-get"], { stdio: "ignore" }).status === 0;
  if (!hasApt) return { path: null, reason: "redis-server is not installed and there is no apt-get to install it" };
  if (!root) return { path: null, reason: "redis-server is not installed, and installing it needs root" };
  log("redis-server is missing: installing it with apt-get (about 15 s)…");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const update = spawnSync("apt-get", ["update", "-qq"], { stdio: "ignore", env });
  const install = update.status === 0 ? spawnSync("apt-get", ["install", "-y", "-qq", "redis-server"], { stdio: "ignore", env }) : update;
  const path = findRedisServer();
  return path === null ? { path: null, reason: `apt-get install redis-server failed (exit ${install.status})` } : { path, reason: "" };
}

/** Starts redis-server on 127.0.0.1:`port` with its data in `dir`, and waits until it answers PING. */
export async function startRedis(
  binary: string,
  port: number,
  dir: string,
  logPath: string,
  env: NodeJS.ProcessEnv,
): Promise<LocalProcess> {
  const proc = new LocalProcess(
    "redis-server",
    [binary, "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--appendonly", "yes", "--save", "", "--daemonize", "no", "--logfile", ""],
    { env, cwd: dir, logPath },
  );
  const end = Date.now() + READY_TIMEOUT_MS;
  while (!(await ping(port))) {
    if (proc.exit !== null) throw new Error(`redis-server ${proc.exit}; its log (${logPath}) ends with:\n${proc.tail()}`);
    if (Date.now() > end) {
      proc.kill();
      throw new Error(`redis-server did not answer on port ${port} within ${READY_TIMEOUT_MS / 1000} s; see ${logPath}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return proc;
}

/** True when a Redis on 127.0.0.1:`port` answers PING with PONG (and is not still loading its data). */
export function ping(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    let reply = "";
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1_000, () => done(false));
    s.once("error", () => done(false));
    s.on("data", (d: Buffer) => {
      reply += d.toString();
      if (reply.includes("\r\n")) done(reply.startsWith("+PONG"));
    });
    s.connect(port, host, () => s.write("PING\r\n"));
  });
}
