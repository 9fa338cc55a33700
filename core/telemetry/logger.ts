import { pino, type DestinationStream, type Logger } from "pino";
import { activeTraceIds } from "./tracing.js";

/**
 * The root logger of a process: structured JSON lines on stdout (or
 * `destination`), one per lifecycle event (never one per request by
 * default). A line written inside a span (a call, a batch) carries its
 * `trace_id` and `span_id`, so a log line leads to its trace.
 */
export function createLogger(service: string, level: string, destination?: DestinationStream): Logger {
  const options = { name: service, level, base: { service, pid: process.pid }, mixin: activeTraceIds };
  return destination === undefined ? pino(options) : pino(options, destination);
}

export type { Logger };
