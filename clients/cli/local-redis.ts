/**
 * The private redis-server of `clipper up`: found on PATH, installed with
 * apt-get where that is possible, or explained; started with its data in a
 * local folder (append-only file, so the stack's apps, models and desired
 * replicas survive a restart of `clipper up`).
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, chmodSync, constants, existsSync, readFileSync, writeFileSync } from "node:fs";
import { Socket } from "node:net";
import { delimiter, join } from "node:path";
import { diesWithParent, LocalProcess } from "./local-processes.js";

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
  password: string,
): Promise<LocalProcess> {
  // The password goes in a config file only its owner reads, never on the command line (ps shows those).
  const config = join(dir, "redis.conf");
  writeFileSync(config, `requirepass ${password}\n`, { mode: 0o600 });
  chmodSync(config, 0o600);
  // Killed with `clipper up` (kill -9 included): a leftover would hold the port and the data directory.
  // SIGKILL loses nothing acknowledged: Redis writes the append-only file before it answers.
  const { argv } = diesWithParent([binary, config, "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--appendonly", "yes", "--save", "", "--daemonize", "no", "--logfile", ""]);
  const proc = new LocalProcess("redis-server", argv, { env, cwd: dir, logPath });
  const end = Date.now() + READY_TIMEOUT_MS;
  while (!(await ping(port, "127.0.0.1", password))) {
    if (proc.exit !== null) throw new Error(`redis-server ${proc.exit}; its log (${logPath}) ends with:\n${proc.tail()}`);
    if (Date.now() > end) {
      proc.kill();
      throw new Error(`redis-server did not answer on port ${port} within ${READY_TIMEOUT_MS / 1000} s; see ${logPath}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return proc;
}

/** The private Redis's password, kept in `<dataDir>/redis-password` (mode 0600) across restarts. */
export function privateRedisPassword(dataDir: string): string {
  const path = join(dataDir, "redis-password");
  const saved = existsSync(path) ? readFileSync(path, "utf8").trim() : "";
  if (saved.length >= 16) return saved;
  const password = randomBytes(24).toString("base64url");
  writeFileSync(path, `${password}\n`, { mode: 0o600 });
  return password;
}

/**
 * True when a Redis on 127.0.0.1:`port` answers and is not still loading
 * its data: PING gets PONG (after AUTH with `password`), or, asked without
 * a password, a Redis that wants one says so (NOAUTH: somebody is there).
 */
export function ping(port: number, host = "127.0.0.1", password?: string): Promise<boolean> {
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
      const lines = reply.split("\r\n");
      if (password === undefined && lines.length > 1) done(lines[0]!.startsWith("+PONG") || lines[0]!.startsWith("-NOAUTH"));
      if (password !== undefined && lines.length > 2) done(lines[0]!.startsWith("+OK") && lines[1]!.startsWith("+PONG"));
    });
    // AUTH as a RESP array, so a password with spaces or quotes stays one argument.
    const auth = password === undefined ? "" : `*2\r\n$4\r\nAUTH\r\n$${Buffer.byteLength(password)}\r\n${password}\r\n`;
    s.connect(port, host, () => s.write(`${auth}PING\r\n`));
  });
}
