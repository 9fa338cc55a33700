/**
 * The gateway's door under event-loop pressure (--shed-loop-delay-ms):
 * samples the loop (core/loop-pressure.ts), builds each server's check
 * (core/servers/shed-while-behind.ts) counted by transport, and says when
 * the loop fell behind, at most once per 10 s with how many times.
 *
 * By default ("auto") the threshold is half the smallest SLO among the
 * apps the catalog serves, and follows the catalog as apps come and go:
 * a call that waited that long in a socket has spent half its budget
 * before anything looked at it, and measured runs kept their tail and
 * avoided the closed-loop collapse at half the SLO or less, not at twice
 * it (bench/README.md round two §11). A floor keeps an app with a tiny
 * SLO from turning every scheduling hiccup of a busy host into refusals.
 */
import { wholeNumber } from "../core/config.js";
import { LoopPressure } from "../core/loop-pressure.js";
import { shedWhileBehind, type DoorCheck } from "../core/servers/shed-while-behind.js";
import type { Logger } from "../core/telemetry/logger.js";
import type { GatewayMetrics } from "./metrics.js";

/** Spells can come many a second under overload: one line per this long says how many. */
const WARN_EVERY_MS = 10_000;

/** The lowest threshold "auto" picks, ms: two of the sampler's 10 ms periods, above the descheduling a busy host gives a process. */
export const AUTO_FLOOR_MS = 20;

/** Clipper's default SLO (100 ms), used by "auto" while the catalog has no app. */
const NO_APP_SLO_MICROS = 100_000;

/** What --shed-loop-delay-ms asks for. */
export type DoorSetting = { readonly kind: "off" } | { readonly kind: "fixed"; readonly ms: number } | { readonly kind: "auto" };

/** Reads the flag's text: `auto`, `0` (never refuse) or a whole number of ms. */
export function parseDoorSetting(raw: string): { ok: true; setting: DoorSetting } | { ok: false; error: string } {
  const text = raw.trim().toLowerCase();
  if (text === "auto") return { ok: true, setting: { kind: "auto" } };
  const ms = wholeNumber(text);
  if (ms === null) return { ok: false, error: `--shed-loop-delay-ms: '${raw}' is not 'auto' or a whole number of ms (0 never refuses)` };
  return { ok: true, setting: ms === 0 ? { kind: "off" } : { kind: "fixed", ms } };
}

/** The threshold "auto" picks for apps with these SLOs, µs: half the smallest, at least {@link AUTO_FLOOR_MS}. */
export function autoThresholdMs(sloMicros: Iterable<number>): number {
  let smallest = Number.POSITIVE_INFINITY;
  for (const slo of sloMicros) if (slo > 0 && slo < smallest) smallest = slo;
  if (smallest === Number.POSITIVE_INFINITY) smallest = NO_APP_SLO_MICROS;
  return Math.max(AUTO_FLOOR_MS, Math.round(smallest / 2_000));
}

export interface LoopDoor {
  /** The check for one server's calls, counted under `transport`. */
  check(transport: "grpc" | "http"): DoorCheck;
  /** The catalog's apps changed: an "auto" door refits its threshold to their SLOs; a fixed one ignores it. */
  fit(sloMicros: Iterable<number>): void;
  /** The lateness that currently counts as behind, ms. */
  readonly thresholdMs: number;
  stop(): void;
}

/** Starts sampling and returns the door; null when the setting is off (never refuse). */
export function startLoopDoor(setting: DoorSetting, metrics: GatewayMetrics, log: Logger): LoopDoor | null {
  if (setting.kind === "off") return null;
  let spells = 0;
  let warnedAt = Number.NEGATIVE_INFINITY;
  const pressure = new LoopPressure({
    thresholdMs: setting.kind === "fixed" ? setting.ms : autoThresholdMs([]),
    onChange: (state, lateMs) => {
      if (state !== "behind") return;
      spells++;
      const now = performance.now();
      if (now - warnedAt < WARN_EVERY_MS) return;
      log.warn(
        { lateMs: Math.round(lateMs), spells, thresholdMs: pressure.thresholdMs },
        "event loop behind: Predict and ModelInfer calls are refused at the door while it is (clipper_behind_refusals_total)",
      );
      warnedAt = now;
      spells = 0;
    },
  });
  pressure.start();
  return {
    check: (transport) => shedWhileBehind(pressure, () => metrics.refusedBehind(transport)),
    fit: (sloMicros) => {
      if (setting.kind !== "auto") return;
      const ms = autoThresholdMs(sloMicros);
      if (ms === pressure.thresholdMs) return;
      pressure.thresholdMs = ms;
      log.info({ thresholdMs: ms }, "loop door threshold set to half the smallest SLO served (--shed-loop-delay-ms auto)");
    },
    get thresholdMs() {
      return pressure.thresholdMs;
    },
    stop: () => pressure.stop(),
  };
}
