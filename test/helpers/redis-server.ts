import { spawn, type ChildProcess } from "node:child_process";
import { awaitOutput } from "./child-output.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.js";

/** Every redis-server this process started and has not stopped yet. */
const live = new Set<ChildProcess>();
// A test file that fails or times out before its teardown must not leave
// redis-server running: kill whatever is left when the process exits.
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/** PEM files a TLS redis-server serves with. */
export interface RedisTlsFiles {
  readonly cert: string;
  readonly key: string;
}

/** Longest wait for redis-server to say it is ready, in ms. */
const READY_TIMEOUT_MS = 10_000;

/** A private redis-server for one test file: its own port and temp dir. */
export class TestRedis {
  readonly port: number;
  readonly dir: string;
  /** The password it requires (requirepass), or "" for none. */
  readonly password: string;
  /** Its certificate and key when it serves TLS only (rediss://), else null. */
  readonly tls: RedisTlsFiles | null;
  /** More redis-server arguments (e.g. --replicaof HOST PORT). */
  readonly args: readonly string[];
  #child: ChildProcess | null = null;

  private constructor(port: number, dir: string, password: string, tls: RedisTlsFiles | null, args: readonly string[]) {
    this.port = port;
    this.dir = dir;
    this.password = password;
    this.tls = tls;
    this.args = args;
  }

  get url(): string {
    const scheme = this.tls === null ? "redis" : "rediss";
    return this.password === "" ? `${scheme}://127.0.0.1:${this.port}` : `${scheme}://:${encodeURIComponent(this.password)}@127.0.0.1:${this.port}`;
  }

  /**
   * Starts a fresh server on a free port (retrying if the port was taken
   * meanwhile); with `password`, it requires it; with `tls`, it serves TLS
   * only (`--tls-port`, no plaintext port) and asks no client certificate;
   * `args` are passed on to redis-server.
   */
  static async start(options: { password?: string; tls?: RedisTlsFiles; args?: readonly string[] } = {}): Promise<TestRedis> {
    const dir = mkdtempSync(join(tmpdir(), "clipper-redis-"));
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const r = new TestRedis(await freePort(), dir, options.password ?? "", options.tls ?? null, options.args ?? []);
      try {
        await r.restart();
        return r;
      } catch (err) {
        lastError = err;
      }
    }
    rmSync(dir, { recursive: true, force: true });
    throw lastError;
  }

  /** (Re)starts the server on the same port; data does not survive a stop. */
  async restart(): Promise<void> {
    await this.stop();
    const child = spawn(
      "redis-server",
      [
        ...(this.tls === null
          ? ["--port", String(this.port)]
          : ["--port", "0", "--tls-port", String(this.port), "--tls-cert-file", this.tls.cert, "--tls-key-file", this.tls.key, "--tls-auth-clients", "no"]),
        "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", this.dir, "--logfile", "", ...(this.password === "" ? [] : ["--requirepass", this.password]), ...this.args],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.#child = child;
    live.add(child);
    child.once("exit", () => live.delete(child));
    await awaitOutput(child, "Ready to accept connections", "redis-server", READY_TIMEOUT_MS);
  }

  /** Stops the server (SIGKILL: tests want an abrupt outage, not a save). */
  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = null;
    if (child === null || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.kill("SIGKILL");
    });
  }

  /** Stops the server and removes its directory. */
  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
