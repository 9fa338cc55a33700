import { Redis, type RedisOptions } from "ioredis";
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

/**
 * Opens an ioredis connection that fails fast while Redis is down (no
 * offline queue, one retry per command) and reconnects by itself forever.
 * Failing fast is what lets callers answer UNAVAILABLE at once instead of
 * hanging until Redis returns.
 */
export function connectRedis(url: string, options: { name: string; db?: number } & Partial<RedisOptions>): Redis {
  const { name, ...rest } = options;
  return new Redis(url, {
    connectionName: name,
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
