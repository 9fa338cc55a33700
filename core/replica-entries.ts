import type { Redis } from "ioredis";
import {
  CONTAINER_OWNER_FIELDS,
  containerEntryIsLive,
  decodeContainerOwner,
  DEPLOYMENT_DB,
  gatewayLivenessKey,
  type ContainerOwner,
} from "./deployment-layout.js";
import { DbBatch } from "./redis-batch.js";
import { storeError } from "./redis-client.js";
import { DB, decodeContainer, type ContainerRecord } from "./redis-layout.js";

/** One DB 3 entry with its owner and whether it counts (deployment-layout.ts containerEntryIsLive). */
export interface ReplicaEntry {
  readonly key: string;
  /** Its Clipper fields, or null when they do not decode (or the hash is gone). */
  readonly record: ContainerRecord | null;
  readonly owner: ContainerOwner | null;
  readonly live: boolean;
}

/**
 * Reads DB 3 entries and the liveness keys of their owners: two round
 * trips for any number of keys. A key deleted meanwhile is left out.
 */
export async function readReplicaEntries(redis: Redis, where: string, keys: readonly string[]): Promise<ReplicaEntry[]> {
  if (keys.length === 0) return [];
  const batch = new DbBatch(redis, where);
  for (const k of keys) batch.hgetall(DB.CONTAINERS, k);
  const hashes = (await batch.run()) as Record<string, string>[];
  const found = keys.flatMap((key, i) => {
    const h = hashes[i]!;
    if (Object.keys(h).length === 0) return [];
    const owner = decodeContainerOwner([h[CONTAINER_OWNER_FIELDS.gateway], h[CONTAINER_OWNER_FIELDS.run], h[CONTAINER_OWNER_FIELDS.worker]]);
    const decoded = decodeContainer(key, h);
    return [{ key, record: decoded.ok ? decoded.value : null, owner }];
  });
  const owners = [...new Set(found.flatMap((e) => (e.owner === null ? [] : [e.owner.gatewayId])))];
  const liveRuns = new Map<string, string | null>();
  if (owners.length > 0) {
    const runs = new DbBatch(redis, where);
    for (const g of owners) runs.get(DEPLOYMENT_DB, gatewayLivenessKey(g));
    const replies = await runs.run();
    owners.forEach((g, i) => liveRuns.set(g, typeof replies[i] === "string" ? (replies[i] as string) : null));
  }
  return found.map((e) => ({ ...e, live: containerEntryIsLive(e.owner, e.owner === null ? null : (liveRuns.get(e.owner.gatewayId) ?? null)) }));
}

/**
 * Deletes a DB 3 entry if, at that instant, it is still stale by
 * containerEntryIsLive's rule (checked again inside Redis, atomically, so
 * an entry its gateway rewrote after renewing its liveness key is kept).
 * SELECT inside a script does not change the connection's database.
 */
const DELETE_IF_STALE = `
redis.call('SELECT', ${DB.CONTAINERS})
local owner = redis.call('HMGET', KEYS[1], '${CONTAINER_OWNER_FIELDS.gateway}', '${CONTAINER_OWNER_FIELDS.run}')
if not owner[1] or owner[1] == '' then return 0 end
redis.call('SELECT', ${DEPLOYMENT_DB})
local live = redis.call('GET', ARGV[1] .. owner[1])
if live and live == (owner[2] or '') then return 0 end
redis.call('SELECT', ${DB.CONTAINERS})
return redis.call('DEL', KEYS[1])`;

/** Deletes the entry `key` if it is still stale; true when it did. */
export async function deleteIfStale(redis: Redis, where: string, key: string): Promise<boolean> {
  try {
    return (await redis.eval(DELETE_IF_STALE, 1, key, gatewayLivenessKey(""))) === 1;
  } catch (err) {
    throw storeError(err, where);
  }
}
