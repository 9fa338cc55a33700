/**
 * The replica manager (design.md § Layout, issue 5): runs worker processes
 * of managed model versions on this machine and keeps their number at the
 * desired count, restarting those that die; scales up and down (draining
 * before stopping); and rolls out versions so that no call fails: the new
 * version's replicas are up and registered before the current version
 * moves, and the old ones drain only after the switch has settled.
 *
 * Desired state lives in Redis (management/deployment-store.ts, DB 8), so a
 * restarted management resumes it and adopts the workers it left running.
 */
import { hostname } from "node:os";
import { status as Status } from "@grpc/grpc-js";
import { backoffDelayMs } from "../core/backoff.js";
import type { CallContext } from "../core/call-context.js";
import { failedPrecondition, invalidArgument, notFound, ServingError, unavailable } from "../core/errors.js";
import { parseInputType, unknownInputTypeMessage } from "../core/input-types.js";
import type { DeploymentRecord, WorkerSpecRecord } from "../core/deployment-layout.js";
import { modelNameProblem } from "../core/names.js";
import { modelKey } from "../core/redis-layout.js";
import { parseTcpEndpoint } from "../core/tcp-endpoint.js";
import type { Logger } from "../core/telemetry/logger.js";
import type { AdminStore, ModelView } from "./admin-store.js";
import { DeploymentStore } from "./deployment-store.js";
import { WorkerProcess } from "./worker-process.js";
import { checkReplicas, checkWorker, workerCommand } from "./worker-spec.js";

/** How long a stopping worker may drain before its group is killed, in ms (under management's 10 s shutdown deadline). */
export const DEFAULT_STOP_GRACE_MS = 6_000;
/** Longest a rollout waits for new replicas to register, in ms: a worker loads its model and registers within seconds. */
export const DEFAULT_READY_TIMEOUT_MS = 60_000;
/**
 * Time the old version keeps its replicas after a switch, on top of the
 * longest SLO of the model's apps, in ms: gateways learn the switch from a
 * keyspace event within milliseconds; queries already queued for the old
 * version finish within their SLO.
 */
export const DEFAULT_SETTLE_MS = 2_000;
/** A process that lived at least this long, in ms, resets the crash-loop backoff. */
const HEALTHY_RUN_MS = 10_000;
/** A rollout gives up early once the new workers have died this often while it waits. */
const MAX_EXITS_DURING_ROLLOUT = 3;
/** Poll interval while waiting for replicas to register, in ms. */
const READY_POLL_MS = 100;
/** Longest pause between attempts to load state while Redis is down, in ms (the first retries come sooner: Redis is usually just connecting). */
const LOAD_RETRY_MAX_MS = 1_000;

export interface ReplicaManagerOptions {
  /** The gateway's worker RPC endpoint, tcp://host:port, handed to every worker. */
  readonly gatewayRpc: string;
  /** Log level given to clipper-worker processes (CLIPPER_LOG_LEVEL). */
  readonly workerLogLevel: string;
  readonly stopGraceMs?: number;
  readonly readyTimeoutMs?: number;
  readonly settleMs?: number;
}

/** A deployment as ListDeployments reports it. */
export interface DeploymentView extends DeploymentRecord {
  runningProcesses: number;
  registeredReplicas: number;
  restarts: number;
  lastExit: string;
  isCurrentVersion: boolean;
}

export interface DeployInput {
  name: string;
  version: string;
  inputType: string;
  labels: readonly string[];
  batchSize: number;
  replicas: number;
  worker: WorkerSpecRecord;
}

interface Managed {
  record: DeploymentRecord;
  readonly processes: Set<WorkerProcess>;
  restarts: number;
  /** Exits while a rollout waited for this version. */
  exitsSinceRollout: number;
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
export class ReplicaManager {
  readonly #store: AdminStore;
  readonly #state: DeploymentStore;
  readonly #log: Logger;
  readonly #o: Required<ReplicaManagerOptions>;
  readonly #gateway: { host: string; port: string };
  readonly #managed = new Map<string, Managed>();
  readonly #locks = new Map<string, Promise<void>>();
  #loaded = false;
  #closed = false;
  #loadTimer: NodeJS.Timeout | null = null;
  #loadAttempts = 0;

  constructor(store: AdminStore, state: DeploymentStore, log: Logger, options: ReplicaManagerOptions) {
    this.#store = store;
    this.#state = state;
    this.#log = log;
    this.#o = {
      stopGraceMs: DEFAULT_STOP_GRACE_MS,
      readyTimeoutMs: DEFAULT_READY_TIMEOUT_MS,
      settleMs: DEFAULT_SETTLE_MS,
      ...options,
    };
    const gateway = parseTcpEndpoint(options.gatewayRpc);
    if (!gateway.ok) throw new TypeError(`gateway RPC endpoint ${gateway.error}`);
    this.#gateway = { host: gateway.value.host, port: String(gateway.value.port) };
  }

  /** This machine's name in process records (see DeploymentStore). */
  static host(): string {
    return hostname();
  }

  /** Loads desired state and adopts running workers, retrying in the background while Redis is down. */
  start(): void {
    void this.#load();
  }

  // ------------------------------------------------------------ operations

  /** Admin.DeployModel: see admin.proto. */
  async deploy(input: DeployInput, ctx: CallContext): Promise<{ model: ModelView; replicas: number; previousVersion: string }> {
    this.#requireLoaded();
    const inputType = parseInputType(input.inputType);
    if (inputType === null) throw invalidArgument("UNKNOWN_INPUT_TYPE", unknownInputTypeMessage(input.inputType));
    const nameProblem = modelNameProblem("model name", input.name) ?? modelNameProblem("model version", input.version);
    if (nameProblem !== null) throw invalidArgument("INVALID_NAME", nameProblem);
    checkReplicas(input.replicas, 1);
    await checkWorker(input.worker);
    return this.#withLock(input.name, async () => {
      const existing = await this.#store.getModel(input.name, input.version);
      if (existing !== null && existing.inputType !== inputType) {
        throw failedPrecondition("INPUT_TYPE_MISMATCH", `version '${input.version}' of model '${input.name}' is registered with input type '${existing.inputType}', not '${inputType}'`);
      }
      if (existing !== null && !existing.valid) throw failedPrecondition("MODEL_INVALID", `version '${input.version}' of model '${input.name}' was deleted`);
      for (const app of await this.#store.listApps()) {
        if (app.linkedModels.includes(input.name) && app.inputType !== inputType) {
          throw failedPrecondition("INPUT_TYPE_MISMATCH", `model '${input.name}' is linked to app '${app.name}', whose input type is '${app.inputType}', not '${inputType}'`);
        }
      }
      const key = modelKey(input.name, input.version);
      const before = this.#managed.get(key);
      if (before !== undefined && before.record.replicas > 0 && JSON.stringify(before.record.worker) !== JSON.stringify(input.worker)) {
        throw failedPrecondition(
          "INVALID_REQUEST",
          `version '${input.version}' of model '${input.name}' already runs with another worker; deploy a new version to roll out new code, or delete this one first`,
        );
      }
      const previous = await this.#currentVersion(input.name);
      const restore = before === undefined ? null : { ...before.record };
      await this.#apply({ name: input.name, version: input.version, inputType, replicas: input.replicas, worker: input.worker });
      await this.#awaitRegistered(input.name, input.version, input.replicas, ctx, restore);
      let model: ModelView;
      try {
        model = existing !== null
          ? await this.#store.setModelVersion(input.name, input.version)
          : await this.#store.registerModel({ ...input, inputType, containerName: "", modelDataPath: "", labels: input.labels });
      } catch (err) {
        await this.#revert(input.name, input.version, restore);
        throw err;
      }
      if (previous !== null && previous !== input.version) await this.#retire(input.name, previous);
      this.#log.info({ model: input.name, version: input.version, replicas: input.replicas, previous }, "model deployed");
      return { model, replicas: input.replicas, previousVersion: previous !== null && previous !== input.version ? previous : "" };
    });
  }

  /**
   * Admin.SetModelVersion when the manager runs the target version: brings
   * it up to the current version's replica count, switches, then retires
   * the old one. Versions it does not run switch at once, as in Clipper.
   */
  async setVersion(name: string, version: string, ctx: CallContext): Promise<ModelView> {
    this.#requireLoaded();
    return this.#withLock(name, async () => {
      const target = this.#managed.get(modelKey(name, version));
      const previous = await this.#currentVersion(name);
      if (target === undefined || previous === version) return this.#store.setModelVersion(name, version);
      const want = Math.max(target.record.replicas, previous === null ? 0 : (this.#managed.get(modelKey(name, previous))?.record.replicas ?? 0), 1);
      const restore = { ...target.record };
      await this.#apply({ ...target.record, replicas: want });
      await this.#awaitRegistered(name, version, want, ctx, restore);
      let model: ModelView;
      try {
        model = await this.#store.setModelVersion(name, version);
      } catch (err) {
        await this.#revert(name, version, restore);
        throw err;
      }
      if (previous !== null) await this.#retire(name, previous);
      this.#log.info({ model: name, version, replicas: want, previous }, "model version switched");
      return model;
    });
  }

  /** Admin.SetNumReplicas: an empty version means the current one. Returns the desired count. */
  async setReplicas(name: string, version: string, replicas: number): Promise<number> {
    this.#requireLoaded();
    checkReplicas(replicas, 0);
    return this.#withLock(name, async () => {
      const v = version !== "" ? version : await this.#currentVersion(name);
      if (v === null) throw notFound("MODEL_NOT_FOUND", `model '${name}' has no current version`);
      const m = this.#managed.get(modelKey(name, v));
      if (m === undefined) {
        throw failedPrecondition("NOT_MANAGED", `version '${v}' of model '${name}' is not run by the replica manager; deploy it first (clipper models deploy ${name} --version ${v} …)`);
      }
      m.keepUntil = 0;
      if (m.settleTimer !== null) clearTimeout(m.settleTimer);
      m.settleTimer = null;
      await this.#apply({ ...m.record, replicas });
      this.#log.info({ model: name, version: v, replicas }, "replicas set");
      return replicas;
    });
  }

  /** A model version was deleted: stop running it and forget it. */
  async forget(name: string, version: string): Promise<void> {
    const key = modelKey(name, version);
    const m = this.#managed.get(key);
    if (m === undefined) return;
    await this.#state.remove(name, version);
    this.#managed.delete(key);
    clearTimers(m);
    await Promise.all([...m.processes].map((p) => this.#stop(p)));
  }

  /** Admin.ListDeployments. */
  async list(name: string): Promise<DeploymentView[]> {
    this.#requireLoaded();
    const [replicas, models] = await Promise.all([this.#store.listReplicas({ modelName: name }), this.#store.listModels(name)]);
    return [...this.#managed.values()]
      .filter((m) => name === "" || m.record.name === name)
      .map((m) => ({
        ...m.record,
        runningProcesses: [...m.processes].filter((p) => p.alive).length,
        registeredReplicas: replicas.filter((r) => r.name === m.record.name && r.version === m.record.version).length,
        restarts: m.restarts,
        lastExit: m.lastExit,
        isCurrentVersion: models.some((x) => x.name === m.record.name && x.version === m.record.version && x.isCurrentVersion),
      }))
      .sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version, undefined, { numeric: true }));
  }

  /** Stops every worker (draining) and forgets their process records; the desired state stays in Redis. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#loadTimer !== null) clearTimeout(this.#loadTimer);
    const all: WorkerProcess[] = [];
    for (const m of this.#managed.values()) {
      clearTimers(m);
      all.push(...m.processes);
    }
    await Promise.all(all.map((p) => this.#stop(p)));
  }

  // ------------------------------------------------------------ desired state

  /** Saves a deployment's desired state and reconciles its processes. */
  async #apply(record: DeploymentRecord): Promise<void> {
    await this.#state.save(record);
    const key = modelKey(record.name, record.version);
    let m = this.#managed.get(key);
    if (m === undefined) {
      m = newManaged(record);
      this.#managed.set(key, m);
    }
    m.record = record;
    this.#reconcile(m);
  }

  /** Puts a deployment back as it was before a failed rollout (or removes it). */
  async #revert(name: string, version: string, restore: DeploymentRecord | null): Promise<void> {
    if (restore !== null) {
      await this.#apply(restore);
      return;
    }
    await this.forget(name, version);
  }

  /** After a switch: the old version keeps its replicas until the switch has settled, then drains. */
  async #retire(name: string, version: string): Promise<void> {
    const m = this.#managed.get(modelKey(name, version));
    if (m === undefined || m.record.replicas === 0) return;
    const sloMs = Math.max(0, ...(await this.#store.listApps()).filter((a) => a.linkedModels.includes(name)).map((a) => a.latencySloMicros / 1000));
    m.keepUntil = Date.now() + this.#o.settleMs + sloMs;
    // Persisted at once: a management restarted during the settle must not bring them back.
    await this.#apply({ ...m.record, replicas: 0 });
  }

  /**
   * Waits until `n` processes of the version run and `n` replicas of it are
   * registered with the gateway (its Redis DB 3 entries, which gateways
   * write on registration and delete on removal). DB 3 is the one signal
   * every worker kind gives, Clipper containers included; its one blind
   * spot is a gateway killed without cleanup, whose stale entries Clipper's
   * layout keeps until the same replica id registers again.
   */
  async #awaitRegistered(name: string, version: string, n: number, ctx: CallContext, restore: DeploymentRecord | null): Promise<void> {
    const m = this.#managed.get(modelKey(name, version))!;
    m.exitsSinceRollout = 0;
    const end = Math.min(ctx.deadline, Date.now() + this.#o.readyTimeoutMs);
    let registered = 0;
    while (Date.now() < end && !ctx.signal.aborted && !this.#closed && m.exitsSinceRollout < MAX_EXITS_DURING_ROLLOUT) {
      registered = (await this.#store.listReplicas({ modelName: name, modelVersion: version })).length;
      const live = [...m.processes].filter((p) => p.alive && !p.stopping).length;
      if (registered >= n && live >= n) return;
      await new Promise((r) => setTimeout(r, READY_POLL_MS).unref());
    }
    await this.#revert(name, version, restore);
    const why = m.exitsSinceRollout >= MAX_EXITS_DURING_ROLLOUT ? `its workers keep exiting (last: ${m.lastExit})` : `${registered} of ${n} registered in time${m.lastExit === "" ? "" : ` (last worker exit: ${m.lastExit})`}`;
    throw new ServingError(
      Status.DEADLINE_EXCEEDED,
      "REPLICAS_NOT_READY",
      `version '${version}' of model '${name}' did not come up: ${why}; nothing was switched. See management's log for the workers' output`,
    );
  }

  // ------------------------------------------------------------ processes

  #reconcile(m: Managed): void {
    if (this.#closed || this.#managed.get(modelKey(m.record.name, m.record.version)) !== m) return;
    const live = [...m.processes].filter((p) => p.alive && !p.stopping);
    const want = m.record.replicas;
    if (live.length < want && m.retryTimer === null) {
      for (let i = live.length; i < want; i++) this.#spawn(m);
    } else if (live.length > want) {
      const wait = m.keepUntil - Date.now();
      if (wait > 0) {
        if (m.settleTimer === null) {
          m.settleTimer = setTimeout(() => {
            m.settleTimer = null;
            this.#reconcile(m);
          }, wait);
          m.settleTimer.unref();
        }
        return;
      }
      // Newest first: the oldest replicas have warmed-up latency models at the gateway.
      for (const p of live.sort((a, b) => b.startedAt - a.startedAt).slice(0, live.length - want)) void this.#stop(p);
    }
  }

  #spawn(m: Managed): void {
    const { name, version } = m.record;
    const p = WorkerProcess.spawn(name, version, workerCommand(m.record, this.#o.gatewayRpc, this.#gateway, this.#o.workerLogLevel), this.#log);
    m.processes.add(p);
    this.#log.info({ model: name, version, pid: p.pid }, "worker started");
    if (p.pid > 0) {
      this.#state.recordProcess({ pid: p.pid, name, version, startTime: p.startTime }).catch((err: Error) =>
        this.#log.warn({ err: err.message, pid: p.pid }, "could not record worker process in Redis"),
      );
    }
    this.#watch(m, p);
  }

  #watch(m: Managed, p: WorkerProcess): void {
    void p.exited.then((exit) => {
      m.processes.delete(p);
      if (p.pid > 0) this.#state.forgetProcess(p.pid).catch(() => {});
      if (exit.requested || this.#closed) return;
      m.restarts++;
      m.exitsSinceRollout++;
      m.lastExit = exit.description;
      m.failures = Date.now() - p.startedAt >= HEALTHY_RUN_MS ? 0 : m.failures + 1;
      const delay = m.failures === 0 ? 0 : backoffDelayMs(m.failures - 1);
      this.#log.warn({ model: m.record.name, version: m.record.version, pid: p.pid, exit: exit.description, restartInMs: delay }, "worker exited, restarting");
      if (delay === 0 || m.retryTimer !== null) {
        this.#reconcile(m);
        return;
      }
      m.retryTimer = setTimeout(() => {
        m.retryTimer = null;
        this.#reconcile(m);
      }, delay);
      m.retryTimer.unref();
    });
  }

  async #stop(p: WorkerProcess): Promise<void> {
    const exit = await p.stop(this.#o.stopGraceMs);
    this.#log.info({ model: p.name, version: p.version, pid: p.pid, exit: exit.description }, "worker stopped");
  }

  // ------------------------------------------------------------ loading

  async #load(): Promise<void> {
    if (this.#closed) return;
    try {
      const [{ deployments, malformed }, records] = await Promise.all([this.#state.list(), this.#state.processes()]);
      for (const error of malformed) this.#log.warn({ error }, "skipping malformed deployment in Redis");
      for (const d of deployments) {
        this.#managed.set(modelKey(d.name, d.version), newManaged(d));
      }
      let adopted = 0;
      for (const r of records) {
        const p = WorkerProcess.adopt(r, this.#log);
        const m = this.#managed.get(modelKey(r.name, r.version));
        if (p === null) {
          await this.#state.forgetProcess(r.pid).catch(() => {});
        } else if (m === undefined) {
          void this.#stop(p).then(() => this.#state.forgetProcess(p.pid).catch(() => {}));
        } else {
          m.processes.add(p);
          this.#watch(m, p);
          adopted++;
        }
      }
      this.#loaded = true;
      this.#log.info({ deployments: deployments.length, adopted }, "replica manager loaded its state");
      for (const m of this.#managed.values()) this.#reconcile(m);
    } catch (err) {
      const delay = Math.min(LOAD_RETRY_MAX_MS, 20 * 2 ** this.#loadAttempts++);
      if (delay === LOAD_RETRY_MAX_MS) this.#log.warn({ err: (err as Error).message }, "replica manager cannot load its state yet; retrying");
      this.#loadTimer = setTimeout(() => void this.#load(), delay);
      this.#loadTimer.unref();
    }
  }

  #requireLoaded(): void {
    if (!this.#loaded) throw unavailable("STORE_UNAVAILABLE", "the replica manager has not loaded its state from Redis yet; try again in a moment");
  }

  async #currentVersion(name: string): Promise<string | null> {
    return (await this.#store.listModels(name)).find((m) => m.isCurrentVersion)?.version ?? null;
  }

  /** Runs `fn` after every earlier operation on the same model has finished. */
  async #withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#locks.get(name) ?? Promise.resolve();
    let release: () => void = () => {};
    const mine = new Promise<void>((r) => (release = r));
    const tail = before.then(() => mine);
    this.#locks.set(name, tail);
    await before;
    try {
      return await fn();
    } finally {
      release();
      if (this.#locks.get(name) === tail) this.#locks.delete(name);
    }
  }
}

function newManaged(record: DeploymentRecord): Managed {
  return { record, processes: new Set(), restarts: 0, exitsSinceRollout: 0, failures: 0, lastExit: "", keepUntil: 0, retryTimer: null, settleTimer: null };
}

function clearTimers(m: Managed): void {
  if (m.retryTimer !== null) clearTimeout(m.retryTimer);
  if (m.settleTimer !== null) clearTimeout(m.settleTimer);
  m.retryTimer = m.settleTimer = null;
}
