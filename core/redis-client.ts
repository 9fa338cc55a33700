import { readFile } from "node:fs/promises";
import { X509Certificate } from "node:crypto";
import { Redis, type RedisOptions } from "ioredis";
import type { Decoded } from "./decoded.js";
import { unavailable, ServingError } from "./errors.js";

/** Longest pause between reconnect attempts, in ms (Clipper retries every 1 s). */
const MAX_RECONNECT_DELAY_MS = 1_000;
/** First reconnect delay, in ms; doubles up to the maximum. */
const MIN_RECONNECT_DELAY_MS = 50;
/** TCP connect timeout, in ms: long enough for a loaded machine, short enough to report trouble. */
const CONNECT_TIMEOUT_MS = 2_000;

/** Parses and checks a `redis://host:port[/db]` URL given by flag or env. */
export function parseRedisUrl(text: string): { ok: true; url: string; host: string; port: number } | { ok: false; error: string } {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return { ok: false, error: `invalid Redis URL '${text}': expected redis://HOST:PORT` };
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:") {
    return { ok: false, error: `invalid Redis URL '${text}': the scheme must be redis:// or rediss://` };
  }
  const port = u.port === "" ? 6379 : Number(u.port);
  return { ok: true, url: text, host: u.hostname, port };
}

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
  const tls = new URL(url).protocol === "rediss:";
  if (caFile === "") return { ok: true, value: tls ? { ca: null } : null };
  if (!tls) return { ok: false, error: `--redis-tls-ca is for a rediss:// --redis-url; ${redactUrl(url)} is plaintext` };
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

/** A Redis URL without its password, for messages. */
function redactUrl(url: string): string {
  const u = new URL(url);
  u.password = "";
  u.username = "";
  return u.toString();
}

/**
 * Opens an ioredis connection that fails fast while Redis is down (no
 * offline queue, one retry per command) and reconnects by itself forever.
 * Failing fast is what lets callers answer UNAVAILABLE at once instead of
 * hanging until Redis returns.
 */
export function connectRedis(url: string, options: { name: string; db?: number; redisTls?: RedisTls | null } & Partial<RedisOptions>): Redis {
  const { name, redisTls, ...rest } = options;
  // Decided here from the parsed scheme: ioredis turns TLS on only for a
  // URL spelled exactly "rediss://", and a CA must reach tls.connect.
  const tls = new URL(url).protocol === "rediss:" ? (redisTls?.ca == null ? {} : { ca: redisTls.ca }) : undefined;
  return new Redis(url, {
    connectionName: name,
    ...(tls === undefined ? {} : { tls }),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: CONNECT_TIMEOUT_MS,
    retryStrategy: (times) => Math.min(MIN_RECONNECT_DELAY_MS * 2 ** Math.min(times, 10), MAX_RECONNECT_DELAY_MS),
    // Re-send nothing after a reconnect: callers already got UNAVAILABLE.
    autoResendUnfulfilledCommands: false,
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
