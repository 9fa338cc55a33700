/**
 * Reading apps (DB 5 hash + DB 7 links) and model versions (DB 2) from
 * Clipper's layout, for the gateway's catalog and management's Admin
 * store alike. Reads are queued on a {@link DbBatch}, so a caller can put
 * several of them (and other commands) in one consistent snapshot.
 * Absent entries come back as null and malformed ones as errors: whether
 * to skip, log or refuse is the caller's choice.
 */
import type { Redis } from "ioredis";
import type { Decoded } from "./decoded.js";
import { DbBatch } from "./redis-batch.js";
import { appKey, DB, decodeApp, decodeModel, linksKey, type AppRecord, type ModelRecord } from "./redis-layout.js";

/** An application with the models linked to it, sorted by name. */
export interface AppEntry extends AppRecord {
  linkedModels: string[];
}

/** Replies {@link queueAppRead} adds to a batch: the hash, then the links. */
export const APP_READ_REPLIES = 2;

/** Queues the reads of one app on `batch`. */
export function queueAppRead(batch: DbBatch, name: string): DbBatch {
  return batch.hgetall(DB.APPS, appKey(name)).smembers(DB.LINKS, linksKey(name));
}

/** The app from the replies of {@link queueAppRead} at `replies[at]`; null when it does not exist. */
export function decodeAppRead(name: string, replies: readonly unknown[], at: number): Decoded<AppEntry> | null {
  const hash = replies[at] as Record<string, string>;
  if (Object.keys(hash).length === 0) return null;
  const d = decodeApp(name, hash);
  return d.ok ? { ...d, value: { ...d.value, linkedModels: [...(replies[at + 1] as string[])].sort() } } : d;
}

/** Several apps in one snapshot, in the order of `names`; absent ones are null. */
export async function readApps(redis: Redis, where: string, names: readonly string[]): Promise<(Decoded<AppEntry> | null)[]> {
  if (names.length === 0) return [];
  const batch = new DbBatch(redis, where);
  for (const n of names) queueAppRead(batch, n);
  const replies = await batch.run();
  return names.map((n, i) => decodeAppRead(n, replies, APP_READ_REPLIES * i));
}

/** The model version of a DB 2 hash read by `hgetall`; null when it does not exist. */
export function decodeModelRead(key: string, hash: unknown): Decoded<ModelRecord> | null {
  const h = hash as Record<string, string>;
  return Object.keys(h).length === 0 ? null : decodeModel(key, h);
}
