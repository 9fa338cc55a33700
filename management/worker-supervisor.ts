/**
 * Keeps the worker processes of each deployment at its desired count on
 * this machine: spawns the missing ones, restarts those that die (with a
 * crash-loop backoff), and drains the extra ones, newest first. Desired
 * state is saved to Redis DB 8 before it is acted on, so a restarted
 * management resumes it (management/saved-state.ts).
 */
import { backoffDelayMs } from "../core/backoff.js";
import type { DeploymentRecord } from "../core/deployment-layout.js";
import { ModelVersionMap } from "../core/model-version-map.js";
import type { GatewayAccess } from "./gateway-access.js";
import type { Logger } from "../core/telemetry/logger.js";
import type { DeploymentStore } from "./deployment-store.js";
import type { SavedState } from "./saved-state.js";
import { WorkerProcess } from "./worker-process.js";
import { workerCommand } from "./worker-spec.js";

/** A process that lived at least this long, in ms, resets the crash-loop backoff. */
const HEALTHY_RUN_MS = 10_000;

/** What the supervisor needs to start and stop workers. */
export interface WorkerSupervisorOptions {
  /** How every worker reaches the gateway. */
  readonly gateway: GatewayAccess;
  /** Log level given to clipper-worker processes (CLIPPER_LOG_LEVEL). */
  readonly workerLogLevel: string;
  /** How long a stopping worker may drain before its group is killed, in ms. */
  readonly stopGraceMs: number;
  /** The environment every worker starts from (worker-env.ts), before its spec's variables. */
  readonly baseEnv: NodeJS.ProcessEnv;
}

/** A supervised deployment as callers see it. */
export interface SupervisedDeployment {
  readonly record: DeploymentRecord;
  /** Processes alive now, draining ones included. */
  readonly running: number;
  /** Processes alive and not draining. */
  readonly serving: number;
  readonly restarts: number;
  /** Exits since the last {@link WorkerSupervisor.resetExits}, for a rollout waiting on this version. */
  readonly exitsSinceReset: number;
  /** How the last unrequested exit went, or "". */
  readonly lastExit: string;
}

interface Supervised {
  record: DeploymentRecord;
  readonly processes: Set<WorkerProcess>;
  restarts: number;
  exitsSinceReset: number;
  /** Consecutive short-lived runs, for the crash-loop backoff. */
  failures: number;
  lastExit: string;
  /** Extra processes are not stopped before this time (ms since epoch): the settle after a switch. */
  keepUntil: number;
  /** Pending restart after a crash (backoff); no process is spawned while it is set. */
  retryTimer: NodeJS.Timeout | null;
  /** Pending reconcile at the end of the settle. */
  settleTimer: NodeJS.Timeout | null;
}

/** Runs and supervises worker processes; see the module comment. */
export class WorkerSupervisor {
  readonly #state: DeploymentStore;
  readonly #log: Logger;
  readonly #o: WorkerSupervisorOptions;
  readonly #deployments = new ModelVersionMap<Supervised>();
  #closed = false;

  constructor(state: DeploymentStore, log: Logger, options: WorkerSupervisorOptions) {
    this.#state = state;
    this.#log = log;
    this.#o = options;
  }

  /** True once close() was called: nothing is spawned or restarted any more. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Takes over a saved state (once, at start), then brings every deployment to its count. */
  resume(saved: SavedState): void {
    for (const d of saved.deployments) this.#deployments.set(d.name, d.version, newSupervised(d));
    for (const p of saved.workers) {
      const s = this.#deployments.get(p.name, p.version);
      if (s === undefined) continue;
      s.processes.add(p);
      this.#watch(s, p);
    }
    for (const s of this.#deployments.values()) this.#reconcile(s);
  }

  /** One deployment, or undefined when it is not supervised. */
  get(name: string, version: string): SupervisedDeployment | undefined {
    const s = this.#deployments.get(name, version);
    return s === undefined ? undefined : view(s);
  }

  /** Every supervised deployment. */
  all(): SupervisedDeployment[] {
    return [...this.#deployments.values()].map(view);
  }

  /** Saves a deployment's desired state and reconciles its processes. */
  async apply(record: DeploymentRecord): Promise<void> {
    await this.#state.save(record);
    let s = this.#deployments.get(record.name, record.version);
    if (s === undefined) {
      s = newSupervised(record);
      this.#deployments.set(record.name, record.version, s);
    }
    s.record = record;
    this.#reconcile(s);
  }

  /** Sets the count at once, ending any settle that kept extra processes. */
  async scale(name: string, version: string, replicas: number): Promise<void> {
    const s = this.#deployments.get(name, version);
    if (s === undefined) return;
    s.keepUntil = 0;
    if (s.settleTimer !== null) clearTimeout(s.settleTimer);
    s.settleTimer = null;
    await this.apply({ ...s.record, replicas });
  }

  /**
   * Brings the count to 0, but keeps the running processes for `holdMs`
   * first. The 0 is saved at once: a management restarted during the hold
   * must not bring them back.
   */
  async retire(name: string, version: string, holdMs: number): Promise<void> {
    const s = this.#deployments.get(name, version);
    if (s === undefined || s.record.replicas === 0) return;
    s.keepUntil = Date.now() + holdMs;
    await this.apply({ ...s.record, replicas: 0 });
  }

  /** Starts counting exits afresh (a rollout begins waiting on this version). */
  resetExits(name: string, version: string): void {
    const s = this.#deployments.get(name, version);
    if (s !== undefined) s.exitsSinceReset = 0;
  }

  /** Stops running a deployment and forgets it, in Redis too. */
  async forget(name: string, version: string): Promise<void> {
    const s = this.#deployments.get(name, version);
    if (s === undefined) return;
    await this.#state.remove(name, version);
    this.#deployments.delete(name, version);
    clearTimers(s);
    await Promise.all([...s.processes].map((p) => this.stop(p)));
  }

  /** Stops one process, draining it within the grace period. */
  async stop(p: WorkerProcess): Promise<void> {
    const exit = await p.stop(this.#o.stopGraceMs);
    this.#log.info({ model: p.name, version: p.version, pid: p.pid, exit: exit.description }, "worker stopped");
  }

  /** Stops every worker (draining); the desired state stays in Redis. */
  async close(): Promise<void> {
    this.#closed = true;
    const all: WorkerProcess[] = [];
    for (const s of this.#deployments.values()) {
      clearTimers(s);
      all.push(...s.processes);
    }
    await Promise.all(all.map((p) => this.stop(p)));
  }

  #reconcile(s: Supervised): void {
    if (this.#closed || this.#deployments.get(s.record.name, s.record.version) !== s) return;
    const live = [...s.processes].filter((p) => p.alive && !p.stopping);
    const want = s.record.replicas;
    if (live.length < want && s.retryTimer === null) {
      for (let i = live.length; i < want; i++) this.#spawn(s);
    } else if (live.length > want) {
      const wait = s.keepUntil - Date.now();
      if (wait > 0) {
        if (s.settleTimer === null) {
          s.settleTimer = setTimeout(() => {
            s.settleTimer = null;
            this.#reconcile(s);
          }, wait);
          s.settleTimer.unref();
        }
        return;
      }
      // Newest first: the oldest replicas have warmed-up latency models at the gateway.
      for (const p of live.sort((a, b) => b.startedAt - a.startedAt).slice(0, live.length - want)) void this.stop(p);
    }
  }

  #spawn(s: Supervised): void {
    const { name, version } = s.record;
    const p = WorkerProcess.spawn(name, version, workerCommand(s.record, this.#o.gateway, this.#o.workerLogLevel, this.#o.baseEnv), this.#log);
    s.processes.add(p);
    this.#log.info({ model: name, version, pid: p.pid }, "worker started");
    if (p.pid > 0) {
      this.#state.recordProcess({ pid: p.pid, name, version, startTime: p.startTime }).catch((err: Error) =>
        this.#log.warn({ err: err.message, pid: p.pid }, "could not record worker process in Redis"),
      );
    }
    this.#watch(s, p);
  }

  #watch(s: Supervised, p: WorkerProcess): void {
    void p.exited.then((exit) => {
      s.processes.delete(p);
      if (p.pid > 0) this.#state.forgetProcess(p.pid).catch(() => {});
      if (exit.requested || this.#closed) return;
      s.restarts++;
      s.exitsSinceReset++;
      s.lastExit = exit.description;
      s.failures = Date.now() - p.startedAt >= HEALTHY_RUN_MS ? 0 : s.failures + 1;
      const delay = s.failures === 0 ? 0 : backoffDelayMs(s.failures - 1);
      this.#log.warn({ model: s.record.name, version: s.record.version, pid: p.pid, exit: exit.description, restartInMs: delay }, "worker exited, restarting");
      if (delay === 0 || s.retryTimer !== null) {
        this.#reconcile(s);
        return;
      }
      s.retryTimer = setTimeout(() => {
        s.retryTimer = null;
        this.#reconcile(s);
      }, delay);
      s.retryTimer.unref();
    });
  }
}

function newSupervised(record: DeploymentRecord): Supervised {
  return { record, processes: new Set(), restarts: 0, exitsSinceReset: 0, failures: 0, lastExit: "", keepUntil: 0, retryTimer: null, settleTimer: null };
}

function view(s: Supervised): SupervisedDeployment {
  const alive = [...s.processes].filter((p) => p.alive);
  return {
    record: s.record,
    running: alive.length,
    serving: alive.filter((p) => !p.stopping).length,
    restarts: s.restarts,
    exitsSinceReset: s.exitsSinceReset,
    lastExit: s.lastExit,
  };
}

function clearTimers(s: Supervised): void {
  if (s.retryTimer !== null) clearTimeout(s.retryTimer);
  if (s.settleTimer !== null) clearTimeout(s.settleTimer);
  s.retryTimer = s.settleTimer = null;
}
