/**
 * Rolling a model to a version so that no call fails: the new version's
 * replicas are up and registered with the gateway before the current
 * version moves, and the old ones drain only after the switch has settled.
 * A rollout that cannot bring its replicas up puts everything back as it
 * was and switches nothing. Callers hold the model's lock.
 */
import { status as Status } from "@grpc/grpc-js";
import type { CallContext } from "../core/call-context.js";
import type { DeploymentRecord, WorkerSpecRecord } from "../core/deployment-layout.js";
import { failedPrecondition, ServingError } from "../core/errors.js";
import type { Logger } from "../core/telemetry/logger.js";
import type { ValidModelInput } from "./admin-input.js";
import { countWorkers, type AdminStore, type ModelView } from "./admin-store.js";
import type { WorkerSupervisor } from "./worker-supervisor.js";

/** A rollout gives up early once the new workers have died this often while it waits. */
const MAX_EXITS_DURING_ROLLOUT = 3;
/** Poll interval while waiting for replicas to register, in ms. */
const READY_POLL_MS = 100;

/** The waits of a rollout. */
export interface RolloutOptions {
  /** Longest wait for new replicas to register, in ms. */
  readonly readyTimeoutMs: number;
  /** Time the old version keeps its replicas after a switch, on top of the longest SLO of the model's apps, in ms. */
  readonly settleMs: number;
}

/** What Admin.DeployModel asks for, already validated. */
export interface DeployRequest {
  readonly model: ValidModelInput;
  readonly replicas: number;
  readonly worker: WorkerSpecRecord;
}

/** Switches models between versions; see the module comment. */
export class Rollout {
  readonly #store: AdminStore;
  readonly #supervisor: WorkerSupervisor;
  readonly #log: Logger;
  readonly #o: RolloutOptions;

  constructor(store: AdminStore, supervisor: WorkerSupervisor, log: Logger, options: RolloutOptions) {
    this.#store = store;
    this.#supervisor = supervisor;
    this.#log = log;
    this.#o = options;
  }

  /** Admin.DeployModel: runs the version, registers it if new, makes it current, retires the previous one. */
  async deploy(request: DeployRequest, ctx: CallContext): Promise<{ model: ModelView; previousVersion: string }> {
    const { model: input, replicas, worker } = request;
    const { name, version, inputType } = input;
    const existing = await this.#store.getModel(name, version);
    if (existing !== null && existing.inputType !== inputType) {
      throw failedPrecondition("INPUT_TYPE_MISMATCH", `version '${version}' of model '${name}' is registered with input type '${existing.inputType}', not '${inputType}'`);
    }
    if (existing !== null && !existing.valid) throw failedPrecondition("MODEL_INVALID", `version '${version}' of model '${name}' was deleted`);
    if (existing !== null && (existing.policy.cache !== input.policy.cache || existing.policy.coalesce !== input.policy.coalesce)) {
      const said = (p: { cache: boolean; coalesce: boolean }) => `cache ${p.cache ? "on" : "off"}, coalescing ${p.coalesce ? "on" : "off"}`;
      throw failedPrecondition(
        "INVALID_REQUEST",
        `version '${version}' of model '${name}' is registered with ${said(existing.policy)}, not ${said(input.policy)}; a version keeps the policy it was registered with: deploy a new version`,
      );
    }
    await this.#store.checkLinkedAppsAccept(name, inputType);
    const before = this.#supervisor.get(name, version);
    if (before !== undefined && before.record.replicas > 0 && JSON.stringify(before.record.worker) !== JSON.stringify(worker)) {
      throw failedPrecondition(
        "INVALID_REQUEST",
        `version '${version}' of model '${name}' already runs with another worker; deploy a new version to roll out new code, or delete this one first`,
      );
    }
    const previous = await this.#store.currentVersion(name);
    const restore = before === undefined ? null : { ...before.record };
    await this.#supervisor.apply({ name, version, inputType, replicas, worker });
    await this.#awaitRegistered(name, version, replicas, ctx, restore);
    let model: ModelView;
    try {
      model = existing !== null ? await this.#store.setModelVersion(name, version) : await this.#store.registerValidModel(input);
    } catch (err) {
      await this.#revert(name, version, restore);
      throw err;
    }
    if (previous !== null && previous !== version) await this.#retire(name, previous);
    this.#log.info({ model: name, version, replicas, previous }, "model deployed");
    return { model, previousVersion: previous !== null && previous !== version ? previous : "" };
  }

  /**
   * Admin.SetModelVersion when the supervisor runs the target version:
   * brings it up to the current version's replica count, switches, then
   * retires the old one. Versions it does not run switch at once, as in
   * Clipper.
   */
  async switchVersion(name: string, version: string, ctx: CallContext): Promise<ModelView> {
    const target = this.#supervisor.get(name, version);
    const previous = await this.#store.currentVersion(name);
    if (target === undefined || previous === version) return this.#store.setModelVersion(name, version);
    const currentReplicas = previous === null ? 0 : (this.#supervisor.get(name, previous)?.record.replicas ?? 0);
    const want = Math.max(target.record.replicas, currentReplicas, 1);
    const restore = { ...target.record };
    await this.#supervisor.apply({ ...target.record, replicas: want });
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
  }

  /** Puts a deployment back as it was before a failed rollout (or removes it). */
  async #revert(name: string, version: string, restore: DeploymentRecord | null): Promise<void> {
    if (restore !== null) await this.#supervisor.apply(restore);
    else await this.#supervisor.forget(name, version);
  }

  /** After a switch: the old version keeps its replicas until queries queued for it have finished within their SLO. */
  async #retire(name: string, version: string): Promise<void> {
    const sloMs = Math.max(0, ...(await this.#store.listApps()).filter((a) => a.linkedModels.includes(name)).map((a) => a.latencySloMicros / 1000));
    await this.#supervisor.retire(name, version, this.#o.settleMs + sloMs);
  }

  /**
   * Waits until `n` processes of the version run and `n` replicas of it are
   * registered with the gateways (their Redis DB 3 entries, which gateways
   * write on registration and delete on removal), counted as workers. DB 3
   * is the one signal every worker kind gives, Clipper containers included;
   * entries of a gateway killed without cleanup stop counting once its
   * liveness key expires (admin-store.ts listReplicas). On failure,
   * reverts and throws DEADLINE_EXCEEDED.
   */
  async #awaitRegistered(name: string, version: string, n: number, ctx: CallContext, restore: DeploymentRecord | null): Promise<void> {
    this.#supervisor.resetExits(name, version);
    const end = Math.min(ctx.deadline, Date.now() + this.#o.readyTimeoutMs);
    let registered = 0;
    let d = this.#supervisor.get(name, version)!;
    while (Date.now() < end && !ctx.signal.aborted && !this.#supervisor.closed && d.exitsSinceReset < MAX_EXITS_DURING_ROLLOUT) {
      registered = countWorkers(await this.#store.listReplicas({ modelName: name, modelVersion: version }));
      d = this.#supervisor.get(name, version) ?? d;
      if (registered >= n && d.serving >= n) return;
      await new Promise((r) => setTimeout(r, READY_POLL_MS).unref());
      d = this.#supervisor.get(name, version) ?? d;
    }
    await this.#revert(name, version, restore);
    const why = d.exitsSinceReset >= MAX_EXITS_DURING_ROLLOUT ? `its workers keep exiting (last: ${d.lastExit})` : `${registered} of ${n} registered in time${d.lastExit === "" ? "" : ` (last worker exit: ${d.lastExit})`}`;
    throw new ServingError(
      Status.DEADLINE_EXCEEDED,
      "REPLICAS_NOT_READY",
      `version '${version}' of model '${name}' did not come up: ${why}; nothing was switched. See management's log for the workers' output`,
    );
  }
}
