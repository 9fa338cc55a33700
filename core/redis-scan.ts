import type { Redis } from "ioredis";
import { DbBatch } from "./redis-batch.js";
import type { DbNumber } from "./redis-layout.js";

/**
 * Keys asked for per SCAN step: large enough that a few thousand replicas
 * take a handful of round trips, small enough that each step is short for
 * Redis (KEYS would block it for the whole DB at once).
 */
const SCAN_COUNT = 1_000;

/**
 * Every key of `db` matching `pattern`, by SCAN. Unlike KEYS it never blocks
 * Redis for long, at the price of no snapshot: a key added or removed while
 * the scan runs may or may not be listed, and one may be listed twice (the
 * result is deduplicated). Each step is its own MULTI, so it cannot
 * interleave with another caller's SELECT on the shared connection.
 */
export async function scanKeys(redis: Redis, where: string, db: DbNumber, pattern: string): Promise<string[]> {
  const keys = new Set<string>();
  let cursor = "0";
  do {
    const [reply] = await new DbBatch(redis, where).scan(db, cursor, pattern, SCAN_COUNT).run();
    const [next, page] = reply as [string, string[]];
    for (const k of page) keys.add(k);
    cursor = next;
  } while (cursor !== "0");
  return [...keys];
}
