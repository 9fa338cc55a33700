import { status as Status } from "@grpc/grpc-js";
import type { Redis } from "ioredis";
import {
  alreadyExists,
  failedPrecondition,
  invalidArgument,
  notFound,
  ServingError,
} from "../core/errors.js";
import { decodeModelRead, readApps, type AppEntry } from "../core/catalog-reads.js";
import type { Decoded } from "../core/decoded.js";
import type { InputType } from "../core/input-types.js";
import { ModelVersionMap } from "../core/model-version-map.js";
import {
  appKey,
  containerKey,
  containerKeysPattern,
  currentVersionKey,
  DB,
  decodeContainer,
  decodeSelectionState,
  encodeApp,
  encodeModel,
  encodeSelectionState,
  linksKey,
  MODEL_VALID_FIELD,
  modelKey,
  modelVersionsPattern,
  parseContainerKey,
  parseModelKey,
  stateKey,
  type ContainerRecord,
  type ModelRecord,
} from "../core/redis-layout.js";
import { storeError } from "../core/redis-client.js";
import { decodeModelPolicy, DEFAULT_MODEL_POLICY, DEPLOYMENT_DB, encodeModelPolicy, modelPolicyKey, type ModelPolicy } from "../core/deployment-layout.js";
import { DbBatch } from "../core/redis-batch.js";
import { scanKeys } from "../core/redis-scan.js";
import { containerWorker } from "../core/deployment-layout.js";
import { readReplicaEntries } from "../core/replica-entries.js";
import { validateAppInput, validateModelInput, type CreateAppInput, type RegisterModelInput, type ValidModelInput } from "./admin-input.js";

/** An application with its links, as the Admin API reports it. */
export type AppView = AppEntry;

/** A DB 3 entry that counts, with its owner. */
export interface ReplicaView extends ContainerRecord {
  /** The gateway that wrote it; "" for entries without an owner (Clipper's, older gateways'). */
  gatewayId: string;
  /** The worker's instance id; "" when it sent none. */
  workerId: string;
  /** What it counts as (deployment-layout.ts containerWorker): one worker connected to several gateways counts once. */
  worker: string;
}

/** Distinct workers among replica entries: what "replicas" means wherever they are counted. */
export function countWorkers(replicas: readonly Pick<ReplicaView, "worker">[]): number {
  return new Set(replicas.map((r) => r.worker)).size;
}

/** A model version with its "current" flag and its policy (DB 8). */
export interface ModelView extends ModelRecord {
  isCurrentVersion: boolean;
  policy: ModelPolicy;
}

// Atomic check-and-write steps. Each SELECTs its own DBs; SELECT inside a
// script does not change the connection's database.
const CREATE_APP = `
redis.call('SELECT', ${DB.APPS})
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HMSET', KEYS[1], unpack(ARGV, 2))
redis.call('SELECT', ${DB.STATE})
redis.call('SET', KEYS[2], ARGV[1])
return 1`;
const DELETE_APP = `
redis.call('SELECT', ${DB.APPS})
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('SELECT', ${DB.LINKS})
redis.call('DEL', KEYS[2])
redis.call('SELECT', ${DB.STATE})
redis.call('DEL', KEYS[3])
return 1`;
// The policy is written before the model hash, so a gateway learns it
// (keyspace events arrive in order) before it can route to the version.
const ADD_MODEL = `
redis.call('SELECT', ${DB.MODELS})
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SELECT', ${DEPLOYMENT_DB})
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'cache', ARGV[2], 'coalesce', ARGV[3])
redis.call('SELECT', ${DB.MODELS})
redis.call('HMSET', KEYS[1], unpack(ARGV, 4))
redis.call('SELECT', ${DB.CURRENT_VERSIONS})
redis.call('SET', KEYS[2], ARGV[1])
return 1`;
const LINK_MODEL = `
redis.call('SELECT', ${DB.APPS})
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
redis.call('SELECT', ${DB.LINKS})
local members = redis.call('SMEMBERS', KEYS[2])
if #members > 0 then return {2, members[1]} end
redis.call('SADD', KEYS[2], ARGV[1])
return {1, ''}`;
const INVALIDATE_MODEL = `
redis.call('SELECT', ${DB.MODELS})
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HDEL', KEYS[1], '${MODEL_VALID_FIELD}') == 0 then return 2 end
return 1`;

/**
 * The Admin operations over Clipper's Redis layout. Checks and messages
 * follow Clipper's management frontend (clipper.md §2.3), with its faults
 * fixed: apps get their DB 1 state on creation, deleting an app removes its
 * links and state, and bad input is refused with a clear error.
 */
export class AdminStore {
  readonly #redis: Redis;
  readonly #where: string;

  /** `redis` must not be used with SELECT elsewhere; `where` names it in errors. */
  constructor(redis: Redis, where: string) {
    this.#redis = redis;
    this.#where = where;
  }

  // ------------------------------------------------------------ applications

  async createApp(request: CreateAppInput): Promise<AppView> {
    const input = validateAppInput(request);
    const inputType = input.inputType;
    const fields = encodeApp({ inputType, defaultOutput: input.defaultOutput, latencySloMicros: input.latencySloMicros });
    const created = await this.#eval(CREATE_APP, [appKey(input.name), stateKey(input.name)], [
      encodeSelectionState(input.defaultOutput),
      ...Object.entries(fields).flat(),
    ]);
    if (created === 0) throw alreadyExists("APP_EXISTS", `application '${input.name}' already exists`);
    return { name: input.name, inputType, policy: fields.policy!, defaultOutput: input.defaultOutput, latencySloMicros: input.latencySloMicros, linkedModels: [] };
  }

  /** The app with its links, or null when it does not exist. */
  async getApp(name: string): Promise<AppView | null> {
    const [app] = await readApps(this.#redis, this.#where, [name]);
    return app === null ? null : must(app!);
  }

  async requireApp(name: string): Promise<AppView> {
    const app = await this.getApp(name);
    if (app === null) throw notFound("APP_NOT_FOUND", `No application with name '${name}' exists.`);
    return app;
  }

  /** Every app, sorted by name. */
  async listApps(): Promise<AppView[]> {
    const [names] = await this.#batch().keys(DB.APPS, "*").run();
    const reads = await readApps(this.#redis, this.#where, (names as string[]).sort());
    // Null: deleted between the two round trips. A malformed entry written
    // by another tool must not hide the others.
    return reads.flatMap((app) => (app?.ok === true ? [app.value] : []));
  }

  async deleteApp(name: string): Promise<void> {
    const deleted = await this.#eval(DELETE_APP, [appKey(name), linksKey(name), stateKey(name)], []);
    if (deleted === 0) throw notFound("APP_NOT_FOUND", `Application '${name}' does not exist`);
  }

  /** The app's selection state (DB 1), or null when the app has none. */
  async getSelectionState(app: string): Promise<{ state: string; defaultOutput: string } | null> {
    const [text] = await this.#batch().get(DB.STATE, stateKey(app)).run();
    if (text === null) return null;
    const decoded = decodeSelectionState(text as string);
    return { state: text as string, defaultOutput: decoded.ok ? decoded.value.defaultOutput : "" };
  }

  // ------------------------------------------------------------ links

  /** Clipper's add_model_links: exactly one model, compatible input type, no other link. */
  async linkModels(app: string, models: readonly string[]): Promise<AppView> {
    const current = await this.getApp(app);
    if (current === null) throw notFound("APP_NOT_FOUND", `No app with name '${app}' exists.`);
    for (const m of models) {
      const model = await this.#currentModel(m);
      if (model === null) throw notFound("MODEL_NOT_FOUND", `No model with name '${m}' exists.`);
      if (model.inputType !== current.inputType) {
        throw failedPrecondition(
          "INPUT_TYPE_MISMATCH",
          `Model with name '${m}' has incompatible input_type '${model.inputType}'. Requested app to link to has input_type '${current.inputType}'.`,
        );
      }
    }
    if (models.length === 0) {
      throw invalidArgument("INVALID_REQUEST", `Please provide the name of the model that you want to link to the application '${app}'`);
    }
    if (models.length > 1) {
      throw invalidArgument("INVALID_REQUEST", `Applications must be linked with at most one model. Attempted to add links to ${models.length} models.`);
    }
    const model = models[0]!;
    const reply = (await this.#eval(LINK_MODEL, [appKey(app), linksKey(app)], [model])) as [number, string];
    if (reply[0] === 0) throw notFound("APP_NOT_FOUND", `No app with name '${app}' exists.`);
    if (reply[0] === 2) {
      if (reply[1] === model) throw alreadyExists("LINK_EXISTS", `The model with name '${model}' is already linked to '${app}'`);
      throw failedPrecondition("LINK_EXISTS", `A model with name ${reply[1]} is already linked to '${app}'.`);
    }
    return { ...current, linkedModels: [model] };
  }

  /** Clipper's delete_model_links: every named link must exist. */
  async unlinkModels(app: string, models: readonly string[]): Promise<AppView> {
    const current = await this.getApp(app);
    if (current === null) throw notFound("APP_NOT_FOUND", `No app with name ${app} exists.`);
    for (const m of models) {
      if (!current.linkedModels.includes(m)) {
        throw notFound("LINK_NOT_FOUND", `Cannot remove nonexistent link between app ${app} and model ${m}`);
      }
    }
    if (models.length > 0) await this.#batch().srem(DB.LINKS, linksKey(app), ...models).run();
    return { ...current, linkedModels: current.linkedModels.filter((m) => !models.includes(m)) };
  }

  // ------------------------------------------------------------ models

  async registerModel(request: RegisterModelInput): Promise<ModelView> {
    return this.registerValidModel(validateModelInput(request));
  }

  /** Registers a model version that already passed validateModelInput (admin-input.ts). */
  async registerValidModel(input: ValidModelInput): Promise<ModelView> {
    if ((await this.getModel(input.name, input.version)) !== null) {
      throw alreadyExists("MODEL_EXISTS", `model with name '${input.name}' and version '${input.version}' already exists`);
    }
    await this.checkLinkedAppsAccept(input.name, input.inputType);
    const { name, version, inputType, labels, containerName, modelDataPath, batchSize, policy } = input;
    const record = { name, version, inputType, labels: [...labels], containerName, modelDataPath, batchSize };
    const p = encodeModelPolicy(policy);
    const added = await this.#eval(ADD_MODEL, [modelKey(name, version), currentVersionKey(name), modelPolicyKey(name, version)], [
      version,
      p.cache!,
      p.coalesce!,
      ...Object.entries(encodeModel(record)).flat(),
    ]);
    if (added === 0) {
      throw alreadyExists("MODEL_EXISTS", `model with name '${input.name}' and version '${input.version}' already exists`);
    }
    return { ...record, valid: true, isCurrentVersion: true, policy };
  }

  /** One model version, or null when it does not exist. */
  async getModel(name: string, version: string): Promise<ModelView | null> {
    const key = modelKey(name, version);
    const [hash, current, policy] = await this.#batch()
      .hgetall(DB.MODELS, key)
      .get(DB.CURRENT_VERSIONS, currentVersionKey(name))
      .hgetall(DEPLOYMENT_DB, modelPolicyKey(name, version))
      .run();
    const model = decodeModelRead(key, hash);
    return model === null ? null : { ...must(model), isCurrentVersion: current === version, policy: readPolicy(name, version, policy) };
  }

  async requireModel(name: string, version: string): Promise<ModelView> {
    const model = await this.getModel(name, version);
    if (model === null) throw notFound("MODEL_NOT_FOUND", `model with name '${name}' and version '${version}' does not exist`);
    return model;
  }

  /** Model versions (of one model when `name` is given), sorted by name then version. */
  async listModels(name = ""): Promise<ModelView[]> {
    const [keys] = await this.#batch().keys(DB.MODELS, name === "" ? "*" : modelVersionsPattern(name)).run();
    const sorted = (keys as string[]).filter((k) => parseModelKey(k) !== null).sort(compareModelKeys);
    if (sorted.length === 0) return [];
    const batch = this.#batch();
    for (const k of sorted) {
      const { name: n, version: v } = parseModelKey(k)!;
      batch.hgetall(DB.MODELS, k).get(DB.CURRENT_VERSIONS, currentVersionKey(n)).hgetall(DEPLOYMENT_DB, modelPolicyKey(n, v));
    }
    const replies = await batch.run();
    const models: ModelView[] = [];
    sorted.forEach((k, i) => {
      const decoded = decodeModelRead(k, replies[3 * i]);
      // A malformed entry written by another tool must not hide the others.
      if (decoded?.ok === true) {
        const { name: n, version: v } = decoded.value;
        models.push({ ...decoded.value, isCurrentVersion: replies[3 * i + 1] === v, policy: readPolicy(n, v, replies[3 * i + 2]) });
      }
    });
    return models;
  }

  /** The current version of a model, when that version is registered; else null. */
  async currentVersion(name: string): Promise<string | null> {
    return (await this.listModels(name)).find((m) => m.isCurrentVersion)?.version ?? null;
  }

  /** Rollback or roll-forward: make an existing, valid version current. */
  async setModelVersion(name: string, version: string): Promise<ModelView> {
    const versions = await this.listModels(name);
    if (versions.length === 0) throw notFound("MODEL_NOT_FOUND", `Cannot set version for nonexistent model '${name}'`);
    const target = versions.find((m) => m.version === version);
    if (target === undefined) {
      throw notFound("MODEL_NOT_FOUND", `Cannot set non-existent version '${version}' for model with name '${name}'`);
    }
    if (!target.valid) {
      throw failedPrecondition("MODEL_INVALID", `Cannot set version '${version}' for model with name '${name}': it was deleted (marked invalid)`);
    }
    await this.checkLinkedAppsAccept(name, target.inputType);
    await this.#batch().set(DB.CURRENT_VERSIONS, currentVersionKey(name), version).run();
    return { ...target, isCurrentVersion: true };
  }

  /** Clipper's delete_versioned_model: HDEL `valid`; the gateway then cleans up. */
  async deleteModelVersion(name: string, version: string): Promise<void> {
    const outcome = await this.#eval(INVALIDATE_MODEL, [modelKey(name, version)], []);
    if (outcome === 0) throw notFound("MODEL_NOT_FOUND", `model with name '${name}' and version '${version}' does not exist`);
    if (outcome === 2) {
      throw failedPrecondition("MODEL_INVALID", `model with name '${name}' and version '${version}' is already marked as 'invalid'`);
    }
    // The policy goes with the version (a version registered again later brings its own).
    await this.#batch().del(DEPLOYMENT_DB, modelPolicyKey(name, version)).run();
  }

  /** Names of the models linked to an app; NOT_FOUND for an unknown app. */
  async linkedModels(app: string): Promise<string[]> {
    return (await this.requireApp(app)).linkedModels;
  }

  // ------------------------------------------------------------ replicas

  /**
   * Registered replicas (DB 3), sorted by model, version and replica id,
   * without the stale entries of a gateway that stopped renewing its
   * liveness key (core/deployment-layout.ts containerEntryIsLive; the
   * gateways sweep them soon). Found by SCAN, not KEYS: rollouts poll this
   * while they wait. Count them with {@link countWorkers}.
   */
  async listReplicas(filter: { modelName?: string; modelVersion?: string } = {}): Promise<ReplicaView[]> {
    const name = filter.modelName ?? "";
    const version = filter.modelVersion ?? "";
    const keys = await scanKeys(this.#redis, this.#where, DB.CONTAINERS, containerKeysPattern(name, version));
    const wanted = keys.filter((k) => {
      const c = parseContainerKey(k);
      return c !== null && (name === "" || c.name === name) && (version === "" || c.version === version);
    });
    const replicas = (await readReplicaEntries(this.#redis, this.#where, wanted)).flatMap((e) =>
      e.live && e.record !== null ? [{ ...e.record, gatewayId: e.owner?.gatewayId ?? "", workerId: e.owner?.workerId ?? "", worker: containerWorker(e.key, e.owner) }] : [],
    );
    return replicas.sort(
      (a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version, undefined, { numeric: true }) || a.replicaId - b.replicaId,
    );
  }

  /** One replica, or null (also for a stale entry, as in {@link listReplicas}). */
  async getReplica(name: string, version: string, replicaId: number): Promise<ReplicaView | null> {
    const key = containerKey(name, version, replicaId);
    const [entry] = await readReplicaEntries(this.#redis, this.#where, [key]);
    if (entry === undefined || !entry.live) return null;
    // A malformed entry is reported with what is wrong in it.
    const record = entry.record ?? must(decodeContainer(key, (await this.#batch().hgetall(DB.CONTAINERS, key).run())[0] as Record<string, string>));
    return { ...record, gatewayId: entry.owner?.gatewayId ?? "", workerId: entry.owner?.workerId ?? "", worker: containerWorker(key, entry.owner) };
  }

  /**
   * Per app: the live workers of its linked model's current version, as
   * gateways record them in DB 3 (0 without a link or a current version).
   * An app is ready when this is above 0. A few round trips for any number
   * of apps. Entries of a gateway killed without cleanup stop counting once
   * its liveness key expires (containerEntryIsLive); a worker connected to
   * several gateways counts once (countWorkers).
   */
  async liveReplicas(apps: readonly AppView[]): Promise<Map<string, number>> {
    const models = [...new Set(apps.flatMap((a) => a.linkedModels))];
    const out = new Map(apps.map((a) => [a.name, 0]));
    if (models.length === 0) return out;
    const batch = this.#batch();
    for (const m of models) batch.get(DB.CURRENT_VERSIONS, currentVersionKey(m));
    const [versions, keys] = await Promise.all([batch.run(), scanKeys(this.#redis, this.#where, DB.CONTAINERS, containerKeysPattern("", ""))]);
    const wanted = keys.filter((k) => {
      const c = parseContainerKey(k);
      return c !== null && models.includes(c.name);
    });
    const workers = new ModelVersionMap<Set<string>>();
    for (const e of await readReplicaEntries(this.#redis, this.#where, wanted)) {
      const c = parseContainerKey(e.key)!;
      if (!e.live) continue;
      const set = workers.get(c.name, c.version) ?? new Set<string>();
      set.add(containerWorker(e.key, e.owner));
      workers.set(c.name, c.version, set);
    }
    const current = new Map(models.map((m, i) => [m, versions[i]]));
    for (const a of apps) {
      const model = a.linkedModels[0];
      const version = model === undefined ? undefined : current.get(model);
      if (model !== undefined && typeof version === "string") out.set(a.name, workers.get(model, version)?.size ?? 0);
    }
    return out;
  }

  // ------------------------------------------------------------ internals

  /** The current version of a model, or null when it has none. */
  async #currentModel(name: string): Promise<ModelView | null> {
    const [version] = await this.#batch().get(DB.CURRENT_VERSIONS, currentVersionKey(name)).run();
    if (typeof version !== "string" || version === "") return null;
    return this.getModel(name, version);
  }

  /** Clipper's rule: every app linked to the model must take the new input type (FAILED_PRECONDITION otherwise). */
  async checkLinkedAppsAccept(model: string, inputType: InputType): Promise<void> {
    for (const app of await this.listApps()) {
      if (app.linkedModels.includes(model) && app.inputType !== inputType) {
        throw failedPrecondition(
          "INPUT_TYPE_MISMATCH",
          `Model with name '${model}' is already linked to app '${app.name}' using input type '${app.inputType}'. The input type you provided for a new version of the model, '${inputType}', is not compatible.`,
        );
      }
    }
  }

  #batch(): DbBatch {
    return new DbBatch(this.#redis, this.#where);
  }

  async #eval(script: string, keys: string[], args: string[]): Promise<unknown> {
    try {
      return await this.#redis.eval(script, keys.length, ...keys, ...args);
    } catch (err) {
      throw storeError(err, this.#where);
    }
  }
}

function must<T>(decoded: Decoded<T>): T {
  if (!decoded.ok) throw new ServingError(Status.DATA_LOSS, "INTERNAL", `malformed entry in Redis: ${decoded.error}`);
  return decoded.value;
}

function compareModelKeys(a: string, b: string): number {
  const pa = parseModelKey(a)!;
  const pb = parseModelKey(b)!;
  return pa.name.localeCompare(pb.name) || pa.version.localeCompare(pb.version, undefined, { numeric: true });
}

/** A version's policy from its DB 8 hash: the default when there is none (registered by Clipper, or before policies). */
function readPolicy(name: string, version: string, hash: unknown): ModelPolicy {
  const h = (hash ?? {}) as Record<string, string>;
  if (Object.keys(h).length === 0) return DEFAULT_MODEL_POLICY;
  const d = decodeModelPolicy(modelPolicyKey(name, version), h);
  return d.ok ? d.value : DEFAULT_MODEL_POLICY;
}
