import { EventEmitter } from "node:events";
import type { Redis } from "ioredis";
import type { InputType } from "../core/input-types.js";
import { DbBatch } from "../core/redis-batch.js";
import {
  appKey,
  currentVersionKey,
  DB,
  decodeApp,
  decodeModel,
  encodeSelectionState,
  keyspacePattern,
  linksKey,
  modelKey,
  NOTIFY_KEYSPACE_EVENTS,
  parseKeyspaceChannel,
  parseCurrentVersionKey,
  parseModelKey,
  stateKey,
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
}

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
  #models = new Map<string, CatalogModel>();
  #current = new Map<string, string>();
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
    return this.#models.get(modelKey(name, version));
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
    await this.#sub.psubscribe(...WATCHED_DBS.map(keyspacePattern));
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
      }
    });
  }

  /** Loads everything, replacing the whole view at once. */
  async #reconcile(): Promise<void> {
    const [appNames, modelKeys, currentKeys] = await this.#batch()
      .keys(DB.APPS, "*")
      .keys(DB.MODELS, "*")
      .keys(DB.CURRENT_VERSIONS, "*")
      .run() as [string[], string[], string[]];
    const batch = this.#batch();
    for (const a of appNames) batch.hgetall(DB.APPS, appKey(a)).smembers(DB.LINKS, linksKey(a));
    for (const k of modelKeys) batch.hgetall(DB.MODELS, k);
    for (const k of currentKeys) batch.get(DB.CURRENT_VERSIONS, k);
    const replies = await batch.run();

    const apps = new Map<string, CatalogApp>();
    appNames.forEach((name, i) => {
      const app = this.#decodeApp(name, replies[2 * i] as Record<string, string>, replies[2 * i + 1] as string[]);
      if (app !== null) apps.set(name, app);
    });
    let at = 2 * appNames.length;
    const models = new Map<string, CatalogModel>();
    for (const k of modelKeys) {
      const model = this.#decodeModel(k, replies[at++] as Record<string, string>);
      if (model !== null) models.set(k, model);
    }
    const current = new Map<string, string>();
    for (const k of currentKeys) {
      const name = parseCurrentVersionKey(k);
      const v = replies[at++];
      if (name !== null && typeof v === "string" && v !== "") current.set(name, v);
    }
    // Only an explicit invalidation removes a version's replicas. A key that
    // is simply missing (e.g. Redis restarted empty) does not: a replica may
    // serve a model Redis does not list, as in Clipper.
    const gone = [...models.values()].filter((m) => !m.valid && this.#models.get(modelKey(m.name, m.version))?.valid !== false);
    this.#apps = apps;
    this.#models = models;
    this.#current = current;
    this.#loaded = true;
    await this.#writeStates([...apps.values()]);
    for (const m of gone) this.#versionRemoved(m.name, m.version);
    this.#log.info({ apps: apps.size, models: models.size }, "catalog reconciled");
  }

  async #refreshApp(name: string): Promise<void> {
    const [hash, links] = await this.#batch().hgetall(DB.APPS, appKey(name)).smembers(DB.LINKS, linksKey(name)).run();
    const app = this.#decodeApp(name, hash as Record<string, string>, links as string[]);
    const before = this.#apps.get(name);
    if (app === null) {
      if (before !== undefined) this.#log.info({ app: name }, "app removed");
      this.#apps.delete(name);
      return;
    }
    this.#apps.set(name, app);
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
    const model = this.#decodeModel(key, hash as Record<string, string>);
    const before = this.#models.get(key);
    if (model === null) this.#models.delete(key);
    else this.#models.set(key, model);
    if (model !== null && before === undefined) this.#log.info({ model: parsed.name, version: parsed.version }, "model version seen");
    // Clipper marks a version for deletion by HDEL of `valid`; the frontend
    // then cleans up. A plain DEL of the key (Clipper's own clean-up, or a
    // flushed Redis) removes nothing.
    if (model !== null && !model.valid && before?.valid !== false) {
      this.#log.info({ model: parsed.name, version: parsed.version, event }, "model version removed");
      this.#versionRemoved(parsed.name, parsed.version);
    }
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

  #decodeApp(name: string, hash: Record<string, string>, links: string[]): CatalogApp | null {
    if (Object.keys(hash).length === 0) return null;
    const d = decodeApp(name, hash);
    if (!d.ok) {
      this.#log.warn({ app: name, error: d.error }, "ignoring malformed app in Redis");
      return null;
    }
    return { name, inputType: d.value.inputType, defaultOutput: d.value.defaultOutput, latencySloMicros: d.value.latencySloMicros, linkedModels: [...links].sort() };
  }

  #decodeModel(key: string, hash: Record<string, string>): CatalogModel | null {
    if (Object.keys(hash).length === 0) return null;
    const d = decodeModel(key, hash);
    if (!d.ok) {
      this.#log.warn({ key, error: d.error }, "ignoring malformed model in Redis");
      return null;
    }
    return { name: d.value.name, version: d.value.version, inputType: d.value.inputType, batchSize: d.value.batchSize, valid: d.value.valid };
  }

  #batch(): DbBatch {
    return new DbBatch(this.#redis, this.#where);
  }
}
