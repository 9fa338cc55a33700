/**
 * The gateway's door under event-loop pressure (--shed-loop-delay-ms):
 * samples the loop (core/loop-pressure.ts), builds each server's check
 * (core/servers/shed-while-behind.ts) counted by transport, and says when
 * the loop fell behind, at most once per 10 s with how many times.
 *
 * By default ("auto") each call is judged by its own app: it is refused
 * while the loop runs behind by half that app's SLO. A call that waited
 * that long in a socket has spent half its budget before anything looked
 * at it, and measured runs kept their tail and avoided the closed-loop
 * collapse at half the SLO or less, not at twice it (bench/README.md round
 * two §11). Judging every call by the smallest SLO served instead refused
 * a 10 s app's calls whenever a 50 ms app's would suffer (round two §17).
 * A call whose app is not known (not in the catalog, or not named before
 * the body is read) gets the smallest threshold. A floor keeps an app with
 * a tiny SLO from turning every scheduling hiccup of a busy host into
 * refusals. The thresholds follow the catalog as apps come and go.
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

/** The threshold "auto" gives an app's calls, ms: half its SLO (µs), at least {@link AUTO_FLOOR_MS}. */
export function appThresholdMs(sloMicros: number): number {
  return Math.max(AUTO_FLOOR_MS, Math.round(sloMicros / 2_000));
}

/** The threshold "auto" gives calls whose app is not known, for apps with these SLOs, ms: the smallest app's, or half Clipper's default SLO while no app is served. */
export function autoThresholdMs(sloMicros: Iterable<number>): number {
  let smallest = Number.POSITIVE_INFINITY;
  for (const slo of sloMicros) if (slo > 0 && slo < smallest) smallest = slo;
  return appThresholdMs(smallest === Number.POSITIVE_INFINITY ? NO_APP_SLO_MICROS : smallest);
}

/**
 * The app a decoded gRPC request names: `app` in Predict and PredictBatch,
 * `model_name` in ModelInfer (an Open Inference model is an app here).
 */
export function appOfRequest(request: unknown): string | undefined {
  if (typeof request !== "object" || request === null) return undefined;
  const r = request as { app?: unknown; modelName?: unknown };
  if (typeof r.app === "string") return r.app;
  return typeof r.modelName === "string" ? r.modelName : undefined;
}

/** What the door needs of the catalog: each app's SLO, µs. */
export interface SloSource {
  /** The SLO of the app named, µs; undefined when no such app is served. */
  sloOf(app: string): number | undefined;
  /** Every app's SLO, µs. */
  slos(): Iterable<number>;
}

export interface LoopDoor {
  /** The check for one server's calls, counted under `transport`. */
  check(transport: "grpc" | "http"): DoorCheck;
  /** The catalog's apps changed: an "auto" door tracks their thresholds; a fixed one ignores it. */
  fit(): void;
  /** The smallest lateness that counts as behind for any call, ms (that of calls whose app is not known). */
  readonly thresholdMs: number;
  stop(): void;
}

/** Starts sampling and returns the door; null when the setting is off (never refuse). */
export function startLoopDoor(setting: DoorSetting, apps: SloSource, metrics: GatewayMetrics, log: Logger): LoopDoor | null {
  if (setting.kind === "off") return null;
  let spells = 0;
  let warnedAt = Number.NEGATIVE_INFINITY;
  /** The threshold of calls whose app is not known ("auto"), or of every call (fixed). */
  let unknownMs = setting.kind === "fixed" ? setting.ms : autoThresholdMs(apps.slos());
  const pressure = new LoopPressure({
    thresholdsMs: [unknownMs],
    onChange: (thresholdMs, state, lateMs) => {
      if (state !== "behind") return;
      spells++;
      const now = performance.now();
      if (now - warnedAt < WARN_EVERY_MS) return;
      log.warn(
        { lateMs: Math.round(lateMs), spells, thresholdMs },
        "event loop behind by thresholdMs: Predict and ModelInfer calls that bear no more lateness than that (with auto, half their app's SLO) are refused at the door while it is (clipper_behind_refusals_total)",
      );
      warnedAt = now;
      spells = 0;
    },
  });
  const thresholdOf =
    setting.kind === "fixed"
      ? (): number => setting.ms
      : (subject: string | undefined): number => {
          const slo = subject === undefined ? undefined : apps.sloOf(subject);
          return slo === undefined || !(slo > 0) ? unknownMs : appThresholdMs(slo);
        };
  const fit = (): void => {
    if (setting.kind !== "auto") return;
    const slos = [...apps.slos()];
    const before = pressure.thresholdsMs.join(",");
    unknownMs = autoThresholdMs(slos);
    pressure.track([unknownMs, ...slos.filter((slo) => slo > 0).map(appThresholdMs)]);
    const now = pressure.thresholdsMs;
    if (now.join(",") !== before) log.info({ thresholdsMs: now }, "loop door thresholds set to half of each app's SLO (--shed-loop-delay-ms auto)");
  };
  fit();
  pressure.start();
  return {
    check: (transport) =>
      shedWhileBehind(
        (subject) => pressure.behindBy(thresholdOf(subject)),
        (subject) => metrics.refusedBehind(transport, subject !== undefined && apps.sloOf(subject) !== undefined ? subject : ""),
      ),
    fit,
    get thresholdMs() {
      return unknownMs;
    },
    stop: () => pressure.stop(),
  };
}
