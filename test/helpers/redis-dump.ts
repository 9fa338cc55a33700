import { Redis } from "ioredis";

/** Every key of Clipper's DBs 1-7 with its value, for exact comparisons. */
export type RedisDump = Record<string, unknown>;

/** Reads DBs 1..7 of `url` into `{ "<db>/<key>": value }` (hashes as objects, sets sorted). */
export async function dumpRedis(url: string): Promise<RedisDump> {
  const out: RedisDump = {};
  for (let db = 1; db <= 7; db++) {
    const r = await redisDb(url, db);
    try {
      for (const key of (await r.keys("*")).sort()) {
        const type = await r.type(key);
        out[`${db}/${key}`] =
          type === "hash" ? await r.hgetall(key)
          : type === "set" ? (await r.smembers(key)).sort()
          : type === "string" ? await r.get(key)
          : `<${type}>`;
      }
    } finally {
      r.disconnect();
    }
  }
  return out;
}

/** A connection to one DB of `url`, for arranging or inspecting state. */
export async function redisDb(url: string, db: number): Promise<Redis> {
  const r = new Redis(url, { db, lazyConnect: true, maxRetriesPerRequest: 1 });
  // Tests stop Redis on purpose; reconnect errors are expected then.
  r.on("error", () => {});
  await r.connect();
  return r;
}
