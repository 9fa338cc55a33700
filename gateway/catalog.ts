import { EventEmitter } from "node:events";
import type { Redis } from "ioredis";
import { APP_READ_REPLIES, decodeAppRead, decodeModelRead, queueAppRead, readApps, type AppEntry } from "../core/catalog-reads.js";
import type { Decoded } from "../core/decoded.js";
import {
  decodeModelPolicy,
  DEFAULT_MODEL_POLICY,
  DEPLOYMENT_DB,
  MODEL_POLICY_KEYS_PATTERN,
  MODEL_POLICY_KEYSPACE_PATTERN,
  policyModelKey,
  type ModelPolicy,
} from "../core/deployment-layout.js";
import type { InputType } from "../core/input-types.js";
import { ModelVersionMap } from "../core/model-version-map.js";
import { DbBatch } from "../core/redis-batch.js";
import {
  currentVersionKey,
  DB,
  encodeSelectionState,
  keyspacePattern,
  modelKey,
  NOTIFY_KEYSPACE_EVENTS,
  parseKeyspaceChannel,
  parseCurrentVersionKey,
  parseModelKey,
  stateKey,
  type ModelRecord,
} from "../core/redis-layout.js";
import type { Logger } from "../core/telemetry/logger.js";

/** An application as the gateway serves it. */
export interface CatalogApp {
  readonly name: string;
  readonly inputType: InputType;
  readonly defaultOutput: string;
  readonly latencySloMicros: number;
  readonly linkedModels: readonly string[];
}

/** A registered model version. */
export interface CatalogModel {
  readonly name: string;
  readonly version: string;
  readonly inputType: InputType;
  /** Fixed maximum batch size, or -1 (adaptive). */
  readonly batchSize: number;
  readonly valid: boolean;
}

/** What the catalog tells the rest of the gateway. */
export interface CatalogEvents {
  /**
   * A model version was marked invalid (Clipper's delete_versioned_model).
   * Listeners remove its replicas; then the catalog deletes its DB 4 key.
   */
  modelVersionRemoved: [name: string, version: string];
  /** The set of servable apps, or one's settings (its SLO), may have changed. */
  appsChanged: [];
}

/** Distinct problems remembered as logged; past it, they may be logged again. */
const MAX_REPORTED = 1_000;

/** DBs whose changes the gateway follows (3 is written by gateways themselves). */
const WATCHED_DBS = [DB.MODELS, DB.APPS, DB.CURRENT_VERSIONS, DB.LINKS] as const;

/**
 * The gateway's view of apps, links, current versions and models, loaded at
 * start and kept current from Redis keyspace notifications. Unlike Clipper
 * it also follows `del`, so deleted apps stop serving, and it reconciles in
 * full after every (re)connect. While Redis is down it keeps serving from
 * what it knows. Updates are applied one at a time, in arrival order, so a
 * reconcile never overwrites a newer event with an older snapshot.
 */
export class Catalog extends EventEmitter<CatalogEvents> {
  readonly #redis: Redis;
  readonly #sub: Redis;
  readonly #where: string;
  readonly #log: Logger;
  #apps = new Map<string, CatalogApp>();
  #models = new ModelVersionMap<CatalogModel>();
  #current = new Map<string, string>();
  /** Model versions' policies (DB 8), by DB 2 model key; absent means the default. */
  #policies = new Map<string, ModelPolicy>();
  /** Apps Redis holds that cannot be served, with why: their callers are told so, not "no such app". */
  #brokenApps = new Map<string, string>();
  /** What was already logged about entries in Redis: each problem once, not at every reconcile. */
  readonly #reported = new Set<string>();
  /** Serializes every update (events and reconciles). */
  #chain: Promise<void> = Promise.resolve();
  #loaded = false;

  constructor(redis: Redis, sub: Redis, where: string, log: Logger) {
    super();
    this.#redis = redis;
    this.#sub = sub;
    this.#where = where;
    this.#log = log;
  }

  /** True once a full load from Redis has succeeded. */
  get loaded(): boolean {
    return this.#loaded;
  }

  app(name: string): CatalogApp | undefined {
    return this.#apps.get(name);
  }

  model(name: string, version: string): CatalogModel | undefined {
    return this.#models.get(name, version);
  }

  /** Cache and coalescing of a model version: both on unless its DB 8 policy turns them off. */
  policy(name: string, version: string): ModelPolicy {
    return this.#policies.get(modelKey(name, version)) ?? DEFAULT_MODEL_POLICY;
  }

  /** Why app `name`, present in Redis, cannot be served; undefined when it can, or does not exist. */
  brokenApp(name: string): string | undefined {
    return this.#brokenApps.get(name);
  }

  /** The versions of `model` that can be served (not marked invalid), in no particular order. */
  versions(model: string): string[] {
    const out: string[] = [];
    for (const m of this.#models.versionsOf(model)) if (m.valid) out.push(m.version);
    return out;
  }

  currentVersion(model: string): string | undefined {
    return this.#current.get(model);
  }

  /** Every app, for listings. */
  apps(): IterableIterator<CatalogApp> {
    return this.#apps.values();
  }

  /**
   * Subscribes to keyspace events and loads everything. Each time the
   * subscriber (re)connects, notifications are re-enabled and a full
   * reconcile runs, since events sent while disconnected are lost.
   */
  async start(): Promise<void> {
    this.#sub.on("pmessage", (_pattern: string, channel: string, event: string) => this.#onEvent(channel, event));
    this.#sub.on("ready", () => this.#enqueue(() => this.#resync()));
    this.#redis.on("ready", () => this.#enqueue(() => this.#resync()));
    if (this.#sub.status === "ready") await this.#enqueue(() => this.#resync());
  }

  /** Waits for every update queued so far (tests use it to observe a change). */
  settled(): Promise<void> {
    return this.#chain;
  }

  #enqueue(step: () => Promise<void>): Promise<void> {
    this.#chain = this.#chain.then(step).catch((err: unknown) => {
      this.#log.warn({ err: (err as Error).message }, "catalog update failed; will reconcile on reconnect");
    });
    return this.#chain;
  }

  async #resync(): Promise<void> {
    if (this.#redis.status !== "ready" || this.#sub.status !== "ready") return;
    try {
      await this.#redis.config("SET", "notify-keyspace-events", NOTIFY_KEYSPACE_EVENTS);
    } catch (err) {
      // Managed Redis services often forbid CONFIG; the flags may be set there already.
      this.#log.warn(
        { err: (err as Error).message },
        `could not enable keyspace notifications; set notify-keyspace-events ${NOTIFY_KEYSPACE_EVENTS} on the Redis server, or changes will only be seen on reconnect`,
      );
    }
    await this.#sub.psubscribe(...WATCHED_DBS.map(keyspacePattern), MODEL_POLICY_KEYSPACE_PATTERN);
    await this.#reconcile();
  }

  #onEvent(channel: string, event: string): void {
    const parsed = parseKeyspaceChannel(channel);
    if (parsed === null) return;
    const { db, key } = parsed;
    this.#enqueue(async () => {
      switch (db) {
        case DB.APPS:
        case DB.LINKS:
          return this.#refreshApp(key);
        case DB.CURRENT_VERSIONS: {
          const model = parseCurrentVersionKey(key);
          if (model !== null) await this.#refreshCurrent(model);
          return;
        }
        case DB.MODELS:
          return this.#refreshModel(key, event);
        case DEPLOYMENT_DB:
          return this.#refreshPolicy(key);
      }
    });
  }

  /** Loads everything, replacing the whole view at once. */
  async #reconcile(): Promise<void> {
    const [appNames, modelKeys, currentKeys, policyKeys] = await this.#batch()
      .keys(DB.APPS, "*")
      .keys(DB.MODELS, "*")
      .keys(DB.CURRENT_VERSIONS, "*")
      .keys(DEPLOYMENT_DB, MODEL_POLICY_KEYS_PATTERN)
      .run() as [string[], string[], string[], string[]];
    const batch = this.#batch();
    for (const a of appNames) queueAppRead(batch, a);
    for (const k of modelKeys) batch.hgetall(DB.MODELS, k);
    for (const k of currentKeys) batch.get(DB.CURRENT_VERSIONS, k);
    for (const k of policyKeys) batch.hgetall(DEPLOYMENT_DB, k);
    const replies = await batch.run();

    const apps = new Map<string, CatalogApp>();
    const broken = new Map<string, string>();
    appNames.forEach((name, i) => {
      const app = this.#catalogApp(name, decodeAppRead(name, replies, APP_READ_REPLIES * i));
      if (typeof app === "string") broken.set(name, app);
      else if (app !== null) apps.set(name, app);
    });
    let at = APP_READ_REPLIES * appNames.length;
    const models = new ModelVersionMap<CatalogModel>();
    for (const k of modelKeys) {
      const parsed = parseModelKey(k);
      const model = this.#catalogModel(k, decodeModelRead(k, replies[at++]));
      if (model !== null && parsed !== null) models.set(parsed.name, parsed.version, model);
    }
    const current = new Map<string, string>();
    for (const k of currentKeys) {
      const name = parseCurrentVersionKey(k);
      const v = replies[at++];
      if (name !== null && typeof v === "string" && v !== "") current.set(name, v);
    }
    const policies = new Map<string, ModelPolicy>();
    for (const k of policyKeys) {
      const policy = this.#modelPolicy(k, replies[at++]);
      const mk = policyModelKey(k);
      if (policy !== null && mk !== null) policies.set(mk, policy);
    }
    // Only an explicit invalidation removes a version's replicas. A key that
    // is simply missing (e.g. Redis restarted empty) does not: a replica may
    // serve a model Redis does not list, as in Clipper.
    const gone = [...models.values()].filter((m) => !m.valid && this.#models.get(m.name, m.version)?.valid !== false);
    this.#apps = apps;
    this.#brokenApps = broken;
    this.#models = models;
    this.#current = current;
    this.#policies = policies;
    this.#loaded = true;
    this.emit("appsChanged");
    await this.#writeStates([...apps.values()]);
    for (const m of gone) this.#versionRemoved(m.name, m.version);
    this.#log.info({ apps: apps.size, models: models.size }, "catalog reconciled");
  }

  async #refreshApp(name: string): Promise<void> {
    const [read] = await readApps(this.#redis, this.#where, [name]);
    const app = this.#catalogApp(name, read!);
    const before = this.#apps.get(name);
    if (typeof app === "string") this.#brokenApps.set(name, app);
    else this.#brokenApps.delete(name);
    if (app === null || typeof app === "string") {
      if (before !== undefined) this.#log.info({ app: name }, "app removed");
      if (this.#apps.delete(name)) this.emit("appsChanged");
      return;
    }
    this.#apps.set(name, app);
    this.emit("appsChanged");
    if (before === undefined) {
      this.#log.info({ app: name, inputType: app.inputType, linkedModels: app.linkedModels }, "app seen");
      await this.#writeStates([app]);
    } else if (before.linkedModels.join() !== app.linkedModels.join()) {
      this.#log.info({ app: name, linkedModels: app.linkedModels }, "app links changed");
    }
  }

  async #refreshCurrent(model: string): Promise<void> {
    const [v] = await this.#batch().get(DB.CURRENT_VERSIONS, currentVersionKey(model)).run();
    if (typeof v === "string" && v !== "") {
      if (this.#current.get(model) !== v) this.#log.info({ model, version: v }, "current version changed");
      this.#current.set(model, v);
    } else {
      this.#current.delete(model);
    }
  }

  async #refreshModel(key: string, event: string): Promise<void> {
    const parsed = parseModelKey(key);
    if (parsed === null) return;
    const [hash] = await this.#batch().hgetall(DB.MODELS, key).run();
    const model = this.#catalogModel(key, decodeModelRead(key, hash));
    const before = this.#models.get(parsed.name, parsed.version);
    if (model === null) this.#models.delete(parsed.name, parsed.version);
    else this.#models.set(parsed.name, parsed.version, model);
    if (model !== null && before === undefined) this.#log.info({ model: parsed.name, version: parsed.version }, "model version seen");
    // Clipper marks a version for deletion by HDEL of `valid`; the frontend
    // then cleans up. A plain DEL of the key (Clipper's own clean-up, or a
    // flushed Redis) removes nothing.
    if (model !== null && !model.valid && before?.valid !== false) {
      this.#log.info({ model: parsed.name, version: parsed.version, event }, "model version removed");
      this.#versionRemoved(parsed.name, parsed.version);
    }
  }

  async #refreshPolicy(key: string): Promise<void> {
    const mk = policyModelKey(key);
    if (mk === null) return;
    const [hash] = await this.#batch().hgetall(DEPLOYMENT_DB, key).run();
    const policy = this.#modelPolicy(key, hash);
    const before = this.#policies.get(mk);
    if (policy === null) this.#policies.delete(mk);
    else this.#policies.set(mk, policy);
    const now = policy ?? DEFAULT_MODEL_POLICY;
    if ((before ?? DEFAULT_MODEL_POLICY).cache !== now.cache || (before ?? DEFAULT_MODEL_POLICY).coalesce !== now.coalesce) {
      this.#log.info({ model: mk, cache: now.cache, coalesce: now.coalesce }, "model policy changed");
    }
  }

  /** A policy hash read by `hgetall`; null when there is none (the default applies). */
  #modelPolicy(key: string, hash: unknown): ModelPolicy | null {
    const h = hash as Record<string, string>;
    if (Object.keys(h).length === 0) return null;
    const d = decodeModelPolicy(key, h);
    if (!d.ok) return null;
    if (d.warning !== undefined) this.#reportOnce("model policy in Redis not understood", { key, warning: d.warning });
    return d.value;
  }

  /** Clipper's cleanup of a version marked invalid: its replicas go (the listeners), then its key. */
  #versionRemoved(name: string, version: string): void {
    this.emit("modelVersionRemoved", name, version);
    // Not awaited: updates stay serialized without waiting on a slow Redis.
    // A key left behind stays marked invalid, so it serves nothing.
    this.#batch().del(DB.MODELS, modelKey(name, version)).run().catch((err: unknown) => {
      this.#log.warn({ model: name, version, err: (err as Error).message }, "could not delete the removed model version from Redis");
    });
  }

  /** Clipper's query frontend writes each app's DB 1 state when it learns of the app. */
  async #writeStates(apps: readonly CatalogApp[]): Promise<void> {
    if (apps.length === 0) return;
    const batch = this.#batch();
    for (const a of apps) batch.set(DB.STATE, stateKey(a.name), encodeSelectionState(a.defaultOutput));
    await batch.run();
  }

  /** The app as served; null when Redis does not hold it; why, when it holds it but it cannot be served. */
  #catalogApp(name: string, read: Decoded<AppEntry> | null): CatalogApp | string | null {
    if (read === null) return null;
    if (!read.ok) {
      this.#reportOnce("ignoring malformed app in Redis", { app: name, error: read.error });
      return read.error;
    }
    if (read.warning !== undefined) this.#reportOnce("app in Redis out of range; clamped", { app: name, warning: read.warning });
    const a = read.value;
    return { name, inputType: a.inputType, defaultOutput: a.defaultOutput, latencySloMicros: a.latencySloMicros, linkedModels: a.linkedModels };
  }

  #catalogModel(key: string, read: Decoded<ModelRecord> | null): CatalogModel | null {
    if (read === null) return null;
    if (!read.ok) {
      this.#reportOnce("ignoring malformed model in Redis", { key, error: read.error });
      return null;
    }
    if (read.warning !== undefined) this.#reportOnce("model in Redis out of range; clamped", { key, warning: read.warning });
    const m = read.value;
    return { name: m.name, version: m.version, inputType: m.inputType, batchSize: m.batchSize, valid: m.valid };
  }

  /** Logs a problem with an entry in Redis the first time it is seen (until many distinct ones were). */
  #reportOnce(message: string, fields: Record<string, string>): void {
    const id = `${message}\0${JSON.stringify(fields)}`;
    if (this.#reported.has(id)) return;
    // Someone writing ever new garbage must not grow this set without end.
    if (this.#reported.size >= MAX_REPORTED) this.#reported.clear();
    this.#reported.add(id);
    this.#log.warn(fields, message);
  }

  #batch(): DbBatch {
    return new DbBatch(this.#redis, this.#where);
  }
}
