import type { ChainableCommander, Redis } from "ioredis";
import type { DEPLOYMENT_DB } from "./deployment-layout.js";
import type { DbNumber } from "./redis-layout.js";
import { storeError } from "./redis-client.js";

/** A database a batch may select: one of Clipper's, or clipper-ts's own. */
type BatchDb = DbNumber | typeof DEPLOYMENT_DB;

/**
 * Commands across Clipper's several databases, sent as one MULTI/EXEC on one
 * connection: each command is preceded by a SELECT when its DB differs, and
 * the connection is put back on its own DB at the end. Reads therefore see
 * one consistent snapshot across DBs, and writes land together.
 */
export class DbBatch {
  readonly #where: string;
  readonly #multi: ChainableCommander;
  readonly #home: number;
  #db: number;
  /** Reply positions (in EXEC's answer) of the commands the caller asked for. */
  readonly #positions: number[] = [];
  #count = 0;

  constructor(redis: Redis, where: string) {
    this.#where = where;
    this.#multi = redis.multi();
    this.#home = redis.options.db ?? 0;
    this.#db = this.#home;
  }

  hgetall(db: BatchDb, key: string): this {
    return this.#add(db, (m) => m.hgetall(key));
  }
  hmget(db: BatchDb, key: string, ...fields: string[]): this {
    return this.#add(db, (m) => m.hmget(key, ...fields));
  }
  incr(db: BatchDb, key: string): this {
    return this.#add(db, (m) => m.incr(key));
  }
  smembers(db: BatchDb, key: string): this {
    return this.#add(db, (m) => m.smembers(key));
  }
  keys(db: BatchDb, pattern: string): this {
    return this.#add(db, (m) => m.keys(pattern));
  }
  scan(db: BatchDb, cursor: string, pattern: string, count: number): this {
    return this.#add(db, (m) => m.scan(cursor, "MATCH", pattern, "COUNT", count));
  }
  get(db: BatchDb, key: string): this {
    return this.#add(db, (m) => m.get(key));
  }
  set(db: BatchDb, key: string, value: string): this {
    return this.#add(db, (m) => m.set(key, value));
  }
  del(db: BatchDb, ...keys: string[]): this {
    return this.#add(db, (m) => m.del(...keys));
  }
  hset(db: BatchDb, key: string, fields: Record<string, string>): this {
    return this.#add(db, (m) => m.hset(key, fields));
  }
  hdel(db: BatchDb, key: string, ...fields: string[]): this {
    return this.#add(db, (m) => m.hdel(key, ...fields));
  }
  srem(db: BatchDb, key: string, ...members: string[]): this {
    return this.#add(db, (m) => m.srem(key, ...members));
  }

  /** Sends the batch; resolves to one reply per command asked for, in order. */
  async run(): Promise<unknown[]> {
    if (this.#db !== this.#home) this.#multi.select(this.#home);
    let replies: [Error | null, unknown][] | null;
    try {
      replies = await this.#multi.exec();
    } catch (err) {
      throw storeError(err, this.#where);
    }
    if (replies === null) throw storeError(new Error("transaction aborted"), this.#where);
    return this.#positions.map((i) => {
      const [err, value] = replies[i]!;
      if (err !== null) throw storeError(err, this.#where);
      return value;
    });
  }

  #add(db: BatchDb, command: (m: ChainableCommander) => void): this {
    if (db !== this.#db) {
      this.#multi.select(db);
      this.#count++;
      this.#db = db;
    }
    command(this.#multi);
    this.#positions.push(this.#count++);
    return this;
  }
}
