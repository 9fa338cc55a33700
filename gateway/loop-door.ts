/**
 * The gateway's door under event-loop pressure (--shed-loop-delay-ms):
 * samples the loop (core/loop-pressure.ts), builds each server's check
 * (core/servers/shed-while-behind.ts) counted by transport, and says when
 * the loop fell behind, at most once per 10 s with how many times.
 */
import { LoopPressure } from "../core/loop-pressure.js";
import { shedWhileBehind, type DoorCheck } from "../core/servers/shed-while-behind.js";
import type { Logger } from "../core/telemetry/logger.js";
import type { GatewayMetrics } from "./metrics.js";

/** Spells can come many a second under overload: one line per this long says how many. */
const WARN_EVERY_MS = 10_000;

export interface LoopDoor {
  /** The check for one server's calls, counted under `transport`. */
  check(transport: "grpc" | "http"): DoorCheck;
  stop(): void;
}

/** Starts sampling and returns the door; null when `thresholdMs` is 0 (never refuse). */
export function startLoopDoor(thresholdMs: number, metrics: GatewayMetrics, log: Logger): LoopDoor | null {
  if (!(thresholdMs > 0)) return null;
  let spells = 0;
  let warnedAt = Number.NEGATIVE_INFINITY;
  const pressure = new LoopPressure({
    thresholdMs,
    onChange: (state, lateMs) => {
      if (state !== "behind") return;
      spells++;
      const now = performance.now();
      if (now - warnedAt < WARN_EVERY_MS) return;
      log.warn({ lateMs: Math.round(lateMs), spells, thresholdMs }, "event loop behind: Predict and ModelInfer calls are refused at the door while it is (clipper_behind_refusals_total)");
      warnedAt = now;
      spells = 0;
    },
  });
  pressure.start();
  return {
    check: (transport) => shedWhileBehind(pressure, () => metrics.refusedBehind(transport)),
    stop: () => pressure.stop(),
  };
}
