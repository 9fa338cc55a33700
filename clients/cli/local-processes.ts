/**
 * Child processes of `clipper up`: each in its own process group (so a
 * terminal's Ctrl-C reaches only `clipper up`, which then stops them in
 * order), output appended to a log file, stopped with SIGTERM and then
 * SIGKILL to the whole group after a grace period. Every process started
 * carries a session marker in its environment, so anything left over (a
 * worker a killed management could not stop) is found and ended.
 *
 * None outlives `clipper up` even when it is killed outright (kill -9), when
 * no stop runs: our servers get a pipe as standard input that only this
 * process holds, and exit when it closes (--exit-with-stdin,
 * core/parent-watch.ts); a program we did not write (redis-server) is
 * started through util-linux `setpriv --pdeathsig KILL`, so the kernel kills
 * it when this process dies.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { signalGroup } from "../../core/process-group.js";

/** Env variable holding the session marker of one `clipper up`. */
export const SESSION_ENV = "CLIPPER_UP_SESSION";
/** How often a log file is read while waiting for a line, in ms. */
const LOG_POLL_MS = 50;

/** A started child process and its log. */
export class LocalProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logPath: string;
  readonly #logStart: number;
  /** Set once it has exited: "exit code 1" or "killed by SIGKILL". */
  exit: string | null = null;
  readonly exited: Promise<string>;

  /**
   * `stdinPipe`: give it a pipe as standard input, held open by this
   * process only (for a server started with --exit-with-stdin).
   */
  constructor(name: string, argv: readonly [string, ...string[]], options: { env: NodeJS.ProcessEnv; cwd: string; logPath: string; stdinPipe?: boolean }) {
    this.name = name;
    this.logPath = options.logPath;
    const fd = openSync(options.logPath, "a");
    this.#logStart = statSync(options.logPath).size;
    const [file, ...args] = argv;
    this.child = spawn(file, args, { cwd: options.cwd, env: options.env, detached: true, stdio: [options.stdinPipe === true ? "pipe" : "ignore", fd, fd] });
    closeSync(fd);
    if (this.child.stdin !== null) {
      // Never written: it only has to stay open while this process lives, without keeping it alive.
      this.child.stdin.on("error", () => {});
      (this.child.stdin as Socket).unref();
    }
    this.exited = new Promise((resolve) => {
      this.child.once("error", (err) => resolve((this.exit ??= `could not start: ${err.message}`)));
      this.child.once("exit", (code, signal) => resolve((this.exit ??= signal !== null ? `killed by ${signal}` : `exit code ${code ?? "?"}`)));
    });
  }

  /** What it wrote to its log since it started. */
  output(): string {
    try {
      return readFileSync(this.logPath).subarray(this.#logStart).toString("utf8");
    } catch {
      return "";
    }
  }

  /** The last lines of its log, for error messages. */
  tail(lines = 8): string {
    return this.output().trimEnd().split("\n").slice(-lines).join("\n");
  }

  /** Resolves with the first match of `pattern` in its log; rejects if it exits first or time runs out. */
  async waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = pattern.exec(this.output());
      if (m !== null) return m;
      if (this.exit !== null) throw new Error(`${this.name} ${this.exit} before it was ready; its log (${this.logPath}) ends with:\n${this.tail()}`);
      if (Date.now() > end) throw new Error(`${this.name} was not ready within ${timeoutMs / 1000} s; its log (${this.logPath}) ends with:\n${this.tail()}`);
      await new Promise((r) => setTimeout(r, LOG_POLL_MS));
    }
  }

  /** SIGTERM to its group, SIGKILL after `graceMs`; resolves once it has exited. */
  async stop(graceMs: number): Promise<void> {
    if (this.exit === null) {
      signalGroup(this.child.pid, "SIGTERM");
      const timer = setTimeout(() => signalGroup(this.child.pid, "SIGKILL"), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    // Anything it left in its group goes too.
    signalGroup(this.child.pid, "SIGKILL");
  }

  /** Immediate SIGKILL to its group (second Ctrl-C, or `clipper up` itself exiting). */
  kill(): void {
    signalGroup(this.child.pid, "SIGKILL");
  }
}

/** Path of util-linux `setpriv`, or null (not Linux, or not installed); looked up once. */
let setprivPath: string | null | undefined;

/**
 * `argv` run so that the kernel SIGKILLs it when this process dies
 * (Linux's parent-death signal, through `setpriv --pdeathsig KILL`, which
 * then execs the program: same pid). Where setpriv is missing, `argv` as it
 * is, and whether it was wrapped.
 */
export function diesWithParent(argv: readonly [string, ...string[]]): { argv: [string, ...string[]]; wrapped: boolean } {
  if (setprivPath === undefined) {
    const found = process.platform === "linux" ? spawnSync("sh", ["-c", "command -v setpriv"], { encoding: "utf8" }) : null;
    setprivPath = found !== null && found.status === 0 && found.stdout.trim() !== "" ? found.stdout.trim() : null;
  }
  return setprivPath === null ? { argv: [...argv], wrapped: false } : { argv: [setprivPath, "--pdeathsig", "KILL", ...argv], wrapped: true };
}

/**
 * Pids of live processes whose environment holds `SESSION_ENV=session`
 * (Linux /proc; elsewhere none are found). The caller's own pid is left out.
 */
function sessionProcesses(session: string): number[] {
  const marker = Buffer.from(`\0${SESSION_ENV}=${session}\0`);
  const found: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return found;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const env = Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${e}/environ`)]);
      if (env.includes(marker)) found.push(Number(e));
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

/** SIGKILLs every process of the session; resolves with how many there were. */
export function killSession(session: string): number {
  const pids = sessionProcesses(session);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  return pids.length;
}

/** Resolves with null when `port` can be bound on `host`, else with the error code (EADDRINUSE, EACCES…). */
export function portProblem(host: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(null)));
  });
}

/** A TCP port on `host` that was free a moment ago. */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const a = srv.address();
      const port = typeof a === "object" && a !== null ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
