/**
 * The replica manager (design.md § Layout, issue 5): runs worker processes
 * of managed model versions on this machine and keeps their number at the
 * desired count (worker-supervisor.ts), and rolls out versions so that no
 * call fails (rollout.ts). Desired state lives in Redis (DB 8), so a
 * restarted management resumes it and adopts the workers it left running
 * (saved-state.ts). Operations on one model run one at a time.
 */
import { hostname } from "node:os";
import type { GatewayAccess } from "./gateway-access.js";
import type { CallContext } from "../core/call-context.js";
import type { DeploymentRecord, ModelPolicy, WorkerSpecRecord } from "../core/deployment-layout.js";
import { failedPrecondition, notFound, unavailable } from "../core/errors.js";
import type { Logger } from "../core/telemetry/logger.js";
import { validateModelInput } from "./admin-input.js";
import { countWorkers, type AdminStore, type ModelView } from "./admin-store.js";
import type { DeploymentStore } from "./deployment-store.js";
import { KeyedLock } from "./keyed-lock.js";
import { Rollout } from "./rollout.js";
import { loadSavedState } from "./saved-state.js";
import { workerEnvironment } from "./worker-env.js";
import { checkWorkerPolicy, DEFAULT_WORKER_POLICY, workerPolicyRefusal, type WorkerPolicy } from "./worker-policy.js";
import { checkReplicas, checkWorker } from "./worker-spec.js";
import { WorkerSupervisor } from "./worker-supervisor.js";

/** How long a stopping worker may drain before its group is killed, in ms (under management's 10 s shutdown deadline). */
const DEFAULT_STOP_GRACE_MS = 6_000;
/** Longest a rollout waits for new replicas to register, in ms: a worker loads its model and registers within seconds. */
const DEFAULT_READY_TIMEOUT_MS = 60_000;
/**
 * Time the old version keeps its replicas after a switch, on top of the
 * longest SLO of the model's apps, in ms: gateways learn the switch from a
 * keyspace event within milliseconds; queries already queued for the old
 * version finish within their SLO.
 */
const DEFAULT_SETTLE_MS = 2_000;
/** Longest pause between attempts to load state while Redis is down, in ms (the first retries come sooner: Redis is usually just connecting). */
const LOAD_RETRY_MAX_MS = 1_000;
/** First pause between load attempts, in ms; doubles up to the maximum. */
const LOAD_RETRY_FIRST_MS = 20;

/** How the manager reaches the gateway and how long it waits. */
export interface ReplicaManagerOptions {
  /** How every worker reaches the gateway. */
  readonly gateway: GatewayAccess;
  /** Log level given to clipper-worker processes (CLIPPER_LOG_LEVEL). */
  readonly workerLogLevel: string;
  /** What deployments may run; default: modules anywhere, no commands. */
  readonly workerPolicy?: WorkerPolicy;
  /** Names of more variables of management's environment its workers get (--worker-inherit-env). */
  readonly workerInheritEnv?: readonly string[];
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

/** What Admin.DeployModel asks for, as received. */
export interface DeployInput {
  name: string;
  version: string;
  inputType: string;
  labels: readonly string[];
  batchSize: number;
  policy: ModelPolicy;
  replicas: number;
  worker: WorkerSpecRecord;
}

/**
 * Loading retries until Redis answers; operations are refused until it
 * has loaded; closing is final.
 */
type Lifecycle =
  | { readonly kind: "loading"; readonly attempts: number; readonly timer: NodeJS.Timeout | null }
  | { readonly kind: "loaded" }
  | { readonly kind: "closed" };

/** Runs and supervises worker processes; see the module comment. */
export class ReplicaManager {
  readonly #store: AdminStore;
  readonly #state: DeploymentStore;
  readonly #log: Logger;
  readonly #supervisor: WorkerSupervisor;
  readonly #rollout: Rollout;
  readonly #lock = new KeyedLock();
  readonly #policy: WorkerPolicy;
  #lifecycle: Lifecycle = { kind: "loading", attempts: 0, timer: null };

  constructor(store: AdminStore, state: DeploymentStore, log: Logger, options: ReplicaManagerOptions) {
    this.#store = store;
    this.#state = state;
    this.#log = log;
    this.#policy = options.workerPolicy ?? DEFAULT_WORKER_POLICY;
    this.#supervisor = new WorkerSupervisor(state, log, {
      gateway: options.gateway,
      workerLogLevel: options.workerLogLevel,
      stopGraceMs: options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS,
      // Read once: management's environment does not change while it runs.
      baseEnv: workerEnvironment(process.env, options.workerInheritEnv),
    });
    this.#rollout = new Rollout(store, this.#supervisor, log, {
      readyTimeoutMs: options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
      settleMs: options.settleMs ?? DEFAULT_SETTLE_MS,
    });
  }

  /** This machine's name in process records (see DeploymentStore). */
  static host(): string {
    return hostname();
  }

  /** Loads desired state and adopts running workers, retrying in the background while Redis is down. */
  start(): void {
    void this.#load();
  }

  /** Admin.DeployModel: see admin.proto. */
  async deploy(input: DeployInput, ctx: CallContext): Promise<{ model: ModelView; replicas: number; previousVersion: string }> {
    this.#requireLoaded();
    const model = validateModelInput({ ...input, containerName: "", modelDataPath: "" });
    checkReplicas(input.replicas, 1);
    await checkWorkerPolicy(input.worker, this.#policy);
    await checkWorker(input.worker);
    return this.#lock.run(input.name, async () => {
      const out = await this.#rollout.deploy({ model, replicas: input.replicas, worker: input.worker }, ctx);
      return { ...out, replicas: input.replicas };
    });
  }

  /**
   * Admin.SetModelVersion: a version the manager runs is brought up before
   * the switch (rollout.ts); others switch at once, as in Clipper.
   */
  async setVersion(name: string, version: string, ctx: CallContext): Promise<ModelView> {
    this.#requireLoaded();
    return this.#lock.run(name, () => this.#rollout.switchVersion(name, version, ctx));
  }

  /** Admin.SetNumReplicas: an empty version means the current one. Returns the desired count. */
  async setReplicas(name: string, version: string, replicas: number): Promise<number> {
    this.#requireLoaded();
    checkReplicas(replicas, 0);
    return this.#lock.run(name, async () => {
      const v = version !== "" ? version : await this.#store.currentVersion(name);
      if (v === null) throw notFound("MODEL_NOT_FOUND", `model '${name}' has no current version`);
      if (this.#supervisor.get(name, v) === undefined) {
        throw failedPrecondition("NOT_MANAGED", `version '${v}' of model '${name}' is not run by the replica manager; deploy it first (clipper models deploy ${name} --version ${v} …)`);
      }
      await this.#supervisor.scale(name, v, replicas);
      this.#log.info({ model: name, version: v, replicas }, "replicas set");
      return replicas;
    });
  }

  /** A model version was deleted: stop running it and forget it. */
  async forget(name: string, version: string): Promise<void> {
    await this.#supervisor.forget(name, version);
  }

  /** Admin.ListDeployments. */
  async list(name: string): Promise<DeploymentView[]> {
    this.#requireLoaded();
    const [replicas, models] = await Promise.all([this.#store.listReplicas({ modelName: name }), this.#store.listModels(name)]);
    return this.#supervisor
      .all()
      .filter((d) => name === "" || d.record.name === name)
      .map((d) => ({
        ...d.record,
        runningProcesses: d.running,
        registeredReplicas: countWorkers(replicas.filter((r) => r.name === d.record.name && r.version === d.record.version)),
        restarts: d.restarts,
        lastExit: d.lastExit,
        isCurrentVersion: models.some((x) => x.name === d.record.name && x.version === d.record.version && x.isCurrentVersion),
      }))
      .sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version, undefined, { numeric: true }));
  }

  /** Stops every worker (draining) and forgets their process records; the desired state stays in Redis. */
  async close(): Promise<void> {
    if (this.#lifecycle.kind === "loading" && this.#lifecycle.timer !== null) clearTimeout(this.#lifecycle.timer);
    this.#lifecycle = { kind: "closed" };
    await this.#supervisor.close();
  }

  async #load(): Promise<void> {
    if (this.#lifecycle.kind !== "loading") return;
    const attempts = this.#lifecycle.attempts;
    try {
      const saved = await loadSavedState(this.#state, this.#log, (p) => this.#supervisor.stop(p), (d) => workerPolicyRefusal(d.worker, this.#policy));
      // close() may have come while Redis answered.
      if (this.#lifecycle.kind !== "loading") return;
      this.#lifecycle = { kind: "loaded" };
      this.#log.info({ deployments: saved.deployments.length, adopted: saved.workers.length }, "replica manager loaded its state");
      this.#supervisor.resume(saved);
    } catch (err) {
      if (this.#lifecycle.kind !== "loading") return;
      const delay = Math.min(LOAD_RETRY_MAX_MS, LOAD_RETRY_FIRST_MS * 2 ** attempts);
      if (delay === LOAD_RETRY_MAX_MS) this.#log.warn({ err: (err as Error).message }, "replica manager cannot load its state yet; retrying");
      const timer = setTimeout(() => void this.#load(), delay);
      timer.unref();
      this.#lifecycle = { kind: "loading", attempts: attempts + 1, timer };
    }
  }

  #requireLoaded(): void {
    if (this.#lifecycle.kind !== "loaded") throw unavailable("STORE_UNAVAILABLE", "the replica manager has not loaded its state from Redis yet; try again in a moment");
  }
}
