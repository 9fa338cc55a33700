import { pino, type Logger } from "pino";

/**
 * The root logger of a process: structured JSON lines on stdout, one per
 * lifecycle event (never one per request by default).
 */
export function createLogger(service: string, level: string): Logger {
  return pino({ name: service, level, base: { service, pid: process.pid } });
}

export type { Logger };
