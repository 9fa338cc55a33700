import type { Logger } from "../core/telemetry/logger.js";

/** Default shortest time between two log lines about one model version's errors, in ms. */
export const MODEL_ERROR_LOG_INTERVAL_MS = 10_000;

interface VersionErrors {
  readonly model: string;
  readonly version: string;
  /** Errors since the last line. */
  count: number;
  /** The latest error message, quoted in the next line. */
  lastMessage: string;
  /** Set while lines are held back; fires the summary of what was held. */
  timer: NodeJS.Timeout | null;
}

/**
 * Model errors that reach callers, logged per model version as a summary:
 * the first error at once, then at most one line per interval with how many
 * errors came since and the latest message. A model failing every call then
 * costs one line per interval, not one per call.
 */
export class ModelErrorLog {
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #versions = new Map<string, VersionErrors>();

  constructor(log: Logger, intervalMs = MODEL_ERROR_LOG_INTERVAL_MS) {
    this.#log = log;
    this.#intervalMs = intervalMs;
  }

  /** One caller got the model's error `message`. */
  report(model: string, version: string, message: string): void {
    const key = `${model}\u0000${version}`;
    let v = this.#versions.get(key);
    if (v === undefined) {
      v = { model, version, count: 0, lastMessage: "", timer: null };
      this.#versions.set(key, v);
    }
    v.count++;
    v.lastMessage = message;
    if (v.timer === null) this.#flush(key, v);
  }

  /** Logs what was held back for a version and holds the next lines for an interval; forgets a version with nothing to say. */
  #flush(key: string, v: VersionErrors): void {
    if (v.count === 0) {
      v.timer = null;
      this.#versions.delete(key);
      return;
    }
    this.#log.warn(
      { model: v.model, version: v.version, errors: v.count, intervalMs: this.#intervalMs, lastError: v.lastMessage },
      "model errors returned to callers",
    );
    v.count = 0;
    v.timer = setTimeout(() => this.#flush(key, v), this.#intervalMs);
    v.timer.unref();
  }

  /** Logs whatever is held back and stops the timers (the gateway is stopping). */
  close(): void {
    for (const [key, v] of this.#versions) {
      if (v.timer !== null) clearTimeout(v.timer);
      v.timer = null;
      if (v.count > 0) this.#flush(key, v);
      if (v.timer !== null) clearTimeout(v.timer);
    }
    this.#versions.clear();
  }
}
