/**
 * One worker process run by the replica manager: spawned in its own process
 * group (so a terminal's Ctrl-C reaches management, which then drains its
 * workers in order), or adopted after a management restart. Stopping sends
 * SIGTERM (clipper-worker drains: it tells the gateway, finishes the batches
 * it holds, then exits), and SIGKILL to the whole group after a grace period.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import type { Logger } from "../core/telemetry/logger.js";
import { processExists, signalGroup } from "../core/process-group.js";

/** How often an adopted process (not our child, so no exit event) is checked, in ms. */
const ADOPTED_POLL_MS = 500;

/** How a process ended. `requested` is true when stop() asked for it. */
export interface ProcessExit {
  readonly code: number | null;
  readonly signal: string | null;
  readonly requested: boolean;
  /** For people: "exit code 1", "killed by SIGKILL", "could not start: …". */
  readonly description: string;
}

/** What to run. */
export interface ProcessCommand {
  readonly argv: readonly [string, ...string[]];
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
}

/** Running until stop() is called or it exits on its own; stopping until it exits; exited is final. */
type ProcessState = { readonly kind: "running" } | { readonly kind: "stopping" } | { readonly kind: "exited"; readonly exit: ProcessExit };

/** A spawned or adopted worker process of one model version. */
export class WorkerProcess {
  readonly name: string;
  readonly version: string;
  readonly pid: number;
  /** ms since epoch when it was spawned (or adopted). */
  readonly startedAt: number;
  /** Start time from /proc (Linux), recorded so a restarted manager can tell this process from a reused pid. */
  readonly startTime: string;
  /** Resolves once the process has exited. */
  readonly exited: Promise<ProcessExit>;
  #state: ProcessState = { kind: "running" };
  #resolveExit: (e: ProcessExit) => void = () => {};
  readonly #log: Logger;

  private constructor(name: string, version: string, pid: number, startTime: string, log: Logger) {
    this.name = name;
    this.version = version;
    this.pid = pid;
    this.startedAt = Date.now();
    this.startTime = startTime;
    this.#log = log;
    this.exited = new Promise((resolve) => {
      this.#resolveExit = resolve;
    });
  }

  /** True until the process has exited. */
  get alive(): boolean {
    return this.#state.kind !== "exited";
  }

  /** True once stop() was called while it ran (it may still be draining). */
  get stopping(): boolean {
    return this.#state.kind === "stopping";
  }

  /**
   * Spawns `command` in a new process group. A command that cannot be
   * started (ENOENT, EACCES) gives a process that has already exited, with
   * the reason in its description; nothing is thrown.
   */
  static spawn(name: string, version: string, command: ProcessCommand, log: Logger): WorkerProcess {
    const [file, ...args] = command.argv;
    let child: ChildProcess;
    try {
      child = spawn(file, args, { cwd: command.cwd, env: command.env, detached: true, stdio: ["ignore", "inherit", "inherit"] });
    } catch (err) {
      const p = new WorkerProcess(name, version, 0, "", log);
      p.#finish({ code: null, signal: null, description: `could not start: ${(err as Error).message}` });
      return p;
    }
    const p = new WorkerProcess(name, version, child.pid ?? 0, child.pid === undefined ? "" : readStartTime(child.pid) ?? "", log);
    child.once("error", (err) => p.#finish({ code: null, signal: null, description: `could not start: ${err.message}` }));
    child.once("exit", (code, signal) =>
      p.#finish({ code, signal, description: signal !== null ? `killed by ${signal}` : `exit code ${code ?? "?"}` }),
    );
    return p;
  }

  /**
   * Takes over a process a previous manager started, if it still runs and
   * is the same process (its /proc start time matches); null otherwise.
   */
  static adopt(record: { pid: number; name: string; version: string; startTime: string }, log: Logger): WorkerProcess | null {
    const now = readStartTime(record.pid);
    if (now === null || now !== record.startTime || !processExists(record.pid)) return null;
    const p = new WorkerProcess(record.name, record.version, record.pid, record.startTime, log);
    const timer = setInterval(() => {
      if (!processExists(p.pid) || readStartTime(p.pid) !== p.startTime) {
        clearInterval(timer);
        p.#finish({ code: null, signal: null, description: "adopted process ended" });
      }
    }, ADOPTED_POLL_MS);
    timer.unref();
    void p.exited.then(() => clearInterval(timer));
    return p;
  }

  /**
   * SIGTERM to the process group (a clipper-worker drains), then SIGKILL to
   * the group once `graceMs` has passed. Resolves when the process is gone.
   */
  async stop(graceMs: number): Promise<ProcessExit> {
    if (this.#state.kind === "exited") return this.#state.exit;
    this.#state = { kind: "stopping" };
    signalGroup(this.pid, "SIGTERM");
    const timer = setTimeout(() => {
      this.#log.warn({ pid: this.pid, model: this.name, version: this.version, graceMs }, "worker did not stop in time, killing it");
      signalGroup(this.pid, "SIGKILL");
    }, graceMs);
    timer.unref();
    const exit = await this.exited;
    clearTimeout(timer);
    // Whatever the worker started itself dies with it.
    signalGroup(this.pid, "SIGKILL");
    return exit;
  }

  #finish(e: { code: number | null; signal: string | null; description: string }): void {
    if (this.#state.kind === "exited") return;
    const exit = { ...e, requested: this.#state.kind === "stopping" };
    this.#state = { kind: "exited", exit };
    this.#resolveExit(exit);
  }
}


/** Field 22 (starttime) of /proc/<pid>/stat, or null (no such process, or not Linux). */
function readStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) is in parentheses and may hold spaces.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // rest[0] is field 3, so field 22 is rest[19]. A zombie has exited already.
    return rest[0] === "Z" ? null : (rest[19] ?? null);
  } catch {
    return null;
  }
}
