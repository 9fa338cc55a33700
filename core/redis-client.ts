import { readFile } from "node:fs/promises";
import { X509Certificate } from "node:crypto";
import { Redis, type RedisOptions } from "ioredis";
import type { Decoded } from "./decoded.js";
import { unavailable, ServingError } from "./errors.js";
import { describeRedisTarget, parseRedisUrl, redactRedisUrl, redisUrlUsesTls, type RedisTarget } from "./redis-url.js";

/** Longest pause between reconnect attempts, in ms (Clipper retries every 1 s). */
const MAX_RECONNECT_DELAY_MS = 1_000;
/** First reconnect delay, in ms; doubles up to the maximum. */
const MIN_RECONNECT_DELAY_MS = 50;
/** TCP connect timeout, in ms: long enough for a loaded machine, short enough to report trouble. */
const CONNECT_TIMEOUT_MS = 2_000;

/** How to verify a rediss:// Redis: the CA bundle that signs its certificate, or null for the system's CAs. */
export interface RedisTls {
  readonly ca: Buffer | null;
}

/**
 * TLS to Redis from the URL and `--redis-tls-ca` (env CLIPPER_REDIS_TLS_CA;
 * "" for none): null for a redis:// URL. A CA given with a redis:// URL is
 * refused rather than ignored: whoever gave it expects TLS. The file must
 * hold a PEM certificate; the error names the flag.
 */
export async function loadRedisTls(url: string, caFile: string): Promise<Decoded<RedisTls | null>> {
  const tls = redisUrlUsesTls(url);
  if (caFile === "") return { ok: true, value: tls ? { ca: null } : null };
  if (!tls) return { ok: false, error: `--redis-tls-ca is for a rediss:// or rediss+sentinel:// --redis-url; ${redactRedisUrl(url)} is plaintext` };
  let ca: Buffer;
  try {
    ca = await readFile(caFile);
  } catch (err) {
    return { ok: false, error: `--redis-tls-ca: cannot read ${caFile}: ${(err as Error).message}` };
  }
  try {
    new X509Certificate(ca);
  } catch (err) {
    return { ok: false, error: `--redis-tls-ca: ${caFile} holds no PEM certificate (${(err as Error).message})` };
  }
  return { ok: true, value: { ca } };
}

/** The target of a URL the config already checked; throws on one it did not (a bug). */
function targetOf(url: string): RedisTarget {
  const parsed = parseRedisUrl(url);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.target;
}

/** Where a (checked) Redis URL points, for logs and messages: host:port, or the master group and its sentinels. */
export function redisWhere(url: string): string {
  return describeRedisTarget(targetOf(url));
}

/** A reply a demoted primary gives to writes: the connection is on the wrong server after a failover. */
const READONLY_REPLY = /^READONLY\b/;

/**
 * Opens an ioredis connection that fails fast while Redis is down (no
 * offline queue, one retry per command) and reconnects by itself forever.
 * Failing fast is what lets callers answer UNAVAILABLE at once instead of
 * hanging until Redis returns.
 *
 * With a redis+sentinel:// URL the connection asks the sentinels for the
 * master at every (re)connect, so after a failover it reconnects to the
 * promoted replica. A primary demoted while still up keeps its connections;
 * the first write there gets READONLY, which makes the connection
 * reconnect (through the sentinels) to the new primary. Everything that
 * happens on 'ready' (the catalog's CONFIG SET of keyspace notifications,
 * SUBSCRIBEs, reconciles, DB 3 rewrites) then runs on the new primary.
 */
export function connectRedis(url: string, options: { name: string; db?: number; redisTls?: RedisTls | null } & Partial<RedisOptions>): Redis {
  const { name, redisTls, ...rest } = options;
  const target = targetOf(url);
  // Decided here from the parsed scheme: ioredis turns TLS on only for a
  // URL spelled exactly "rediss://", and a CA must reach tls.connect.
  const tls = target.tls ? (redisTls?.ca == null ? {} : { ca: redisTls.ca }) : undefined;
  const common: RedisOptions = {
    connectionName: name,
    ...(tls === undefined ? {} : { tls }),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: CONNECT_TIMEOUT_MS,
    retryStrategy: (times) => Math.min(MIN_RECONNECT_DELAY_MS * 2 ** Math.min(times, 10), MAX_RECONNECT_DELAY_MS),
    // Re-send nothing after a reconnect: callers already got UNAVAILABLE.
    autoResendUnfulfilledCommands: false,
  };
  if (target.kind === "direct") return new Redis(url, { ...common, ...rest });
  return new Redis({
    ...common,
    sentinels: target.sentinels.map((s) => ({ host: s.host, port: s.port })),
    name: target.name,
    db: target.db,
    ...(target.username === "" ? {} : { username: target.username }),
    ...(target.password === "" ? {} : { password: target.password }),
    ...(target.sentinelUsername === "" ? {} : { sentinelUsername: target.sentinelUsername }),
    ...(target.sentinelPassword === "" ? {} : { sentinelPassword: target.sentinelPassword }),
    // rediss+sentinel://: TLS to the sentinels and to the Redis servers they name, verified alike.
    ...(tls === undefined ? {} : { enableTLSForSentinelMode: true, sentinelTLS: tls }),
    sentinelRetryStrategy: (times) => Math.min(MIN_RECONNECT_DELAY_MS * 2 ** Math.min(times, 10), MAX_RECONNECT_DELAY_MS),
    sentinelCommandTimeout: CONNECT_TIMEOUT_MS,
    // Not ioredis' failoverDetector: in ioredis 6.0 a +switch-master that
    // arrives while the connection is already reconnecting (the primary
    // died) aborts that attempt and leaves the connection ended for good.
    reconnectOnError: (err) => READONLY_REPLY.test(err.message),
    ...rest,
  });
}

/**
 * Turns a Redis failure into UNAVAILABLE with a message naming the server,
 * so callers know the store, not their request, is the problem.
 */
export function storeError(err: unknown, where: string): ServingError {
  if (err instanceof ServingError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return unavailable("STORE_UNAVAILABLE", `Redis at ${where} is unreachable (${detail}); try again once it is back`, err);
}
