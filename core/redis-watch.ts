import type { Redis } from "ioredis";
import type { Counter } from "prom-client";
import type { Logger } from "./telemetry/logger.js";

/** What {@link watchRedis} needs besides the connection. */
export interface RedisWatchOptions {
  /** Which connection of the process this is, e.g. "commands" or "events" (log field and metric label). */
  readonly connection: string;
  /** host:port, for log lines. */
  readonly where: string;
  readonly log: Logger;
  /** clipper_redis_reconnects_total, counted each time the connection is ready again. */
  readonly reconnects?: Counter<"connection">;
}

/**
 * Lifecycle log lines of one ioredis connection: "redis connected" the
 * first time it is ready, "redis connection lost" when a ready connection
 * closes, "redis reconnected" when it is ready again (also counted). While
 * it is down, each distinct error message is logged once, not once per
 * retry. Also keeps Node from crashing on ioredis's 'error' events.
 */
export function watchRedis(conn: Redis, options: RedisWatchOptions): void {
  const { connection, where, log } = options;
  let everReady = false;
  let up = false;
  let lastError = "";
  conn.on("error", (err: Error) => {
    if (err.message !== lastError) log.warn({ err: err.message, redis: where, connection }, "redis error");
    lastError = err.message;
  });
  conn.on("ready", () => {
    lastError = "";
    up = true;
    if (everReady) {
      options.reconnects?.inc({ connection });
      log.info({ redis: where, connection }, "redis reconnected");
    } else {
      log.info({ redis: where, connection }, "redis connected");
    }
    everReady = true;
  });
  conn.on("close", () => {
    if (!up) return;
    up = false;
    log.warn({ redis: where, connection }, "redis connection lost");
  });
}
