/**
 * Whether this process's event loop is running behind, so that calls can
 * be refused at the door while it is. A server whose loop stalled (a burst
 * of work, or its thread descheduled on a busy host) finds the calls that
 * arrived meanwhile waiting in its sockets, each already late by the
 * stall, and none of them known to the latency model or admission.
 * Serving them, or refusing them the full way (read and parse the body,
 * look up the model, ask admission), costs about the same CPU, so the
 * backlog prolongs the stall that made it, and callers wait seconds for a
 * default. While the loop is behind, a call is refused before any of that
 * work (RESOURCE_EXHAUSTED / 429 with Retry-After).
 *
 * A timer samples how late it fires. The loop is behind
 * - right now, when the sample is overdue by the threshold: the current
 *   turn (often the poll phase reading a stall's backlog) has run that
 *   long without reaching the timers;
 * - or from the second of two samples in a row that fired late by the
 *   threshold until one fires late by less than half of it, so a loop
 *   that is only recovering does not flap between the two answers.
 *
 * Callers differ in how much lateness they can bear (a gateway's apps
 * have their own SLOs), so the state is kept per threshold: each tracked
 * threshold is a level with its own two states, fed by the same samples.
 *
 * One late sample is not enough: a process descheduled once (a busy host
 * does that for tens of ms now and then) finds a small backlog it clears
 * in one turn, and refusing those calls would cost their callers a
 * Retry-After second instead of the stall's few ms. A backlog too big for
 * one turn keeps the timer overdue and is refused by the first rule; load
 * the loop cannot keep up with makes every sample late and trips the
 * second.
 */

/** calm: calls are taken; behind: two samples in a row fired late by the level's threshold and none has since fired nearly on time. */
export type LoopState = "calm" | "behind";

export interface LoopPressureOptions {
  /** Lateness levels tracked from the start, ms (each > 0); see {@link LoopPressure.track}. */
  readonly thresholdsMs: Iterable<number>;
  /** How often the timer samples, ms (> 0); default {@link DEFAULT_SAMPLE_MS}. */
  readonly sampleMs?: number;
  /** Told of each change of a level's state, with the lateness that caused it, ms. */
  readonly onChange?: (thresholdMs: number, state: LoopState, lateMs: number) => void;
  /** The clock, ms; performance.now by default (tests pass their own). */
  readonly now?: () => number;
}

/** Sampling period: short enough that a stall of a few tens of ms shows, long enough to cost nothing (100 wake-ups a second). */
export const DEFAULT_SAMPLE_MS = 10;

/** Late samples in a row that make the loop behind (see above: one is a stall, two are load). */
const LATE_SAMPLES_TO_FALL_BEHIND = 2;

/** One tracked threshold and its state. */
interface Level {
  readonly thresholdMs: number;
  state: LoopState;
  /** Samples in a row, up to the last, that fired late by the threshold. */
  lateRun: number;
}

export class LoopPressure {
  readonly #levels = new Map<number, Level>();
  readonly #sampleMs: number;
  readonly #onChange: ((thresholdMs: number, state: LoopState, lateMs: number) => void) | undefined;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | null = null;
  /** When the next sample is due, ms on the clock. */
  #due: number;

  constructor(options: LoopPressureOptions) {
    const sampleMs = options.sampleMs ?? DEFAULT_SAMPLE_MS;
    if (!(sampleMs > 0)) throw new RangeError(`sampleMs must be > 0, got ${sampleMs}`);
    this.#sampleMs = sampleMs;
    this.#onChange = options.onChange;
    this.#now = options.now ?? (() => performance.now());
    this.#due = this.#now() + sampleMs;
    this.track(options.thresholdsMs);
  }

  /**
   * Tracks exactly these thresholds from now on: a level kept keeps its
   * state, a new one starts calm, one no longer listed is dropped.
   */
  track(thresholdsMs: Iterable<number>): void {
    const wanted = new Set<number>();
    for (const ms of thresholdsMs) {
      if (!(ms > 0)) throw new RangeError(`a threshold must be > 0, got ${ms}`);
      wanted.add(ms);
    }
    for (const ms of this.#levels.keys()) if (!wanted.has(ms)) this.#levels.delete(ms);
    for (const ms of wanted) if (!this.#levels.has(ms)) this.#levels.set(ms, { thresholdMs: ms, state: "calm", lateRun: 0 });
  }

  /** The tracked thresholds, ms, smallest first. */
  get thresholdsMs(): number[] {
    return [...this.#levels.keys()].sort((a, b) => a - b);
  }

  /** The state of a tracked threshold's level; calm for one not tracked. */
  stateOf(thresholdMs: number): LoopState {
    return this.#levels.get(thresholdMs)?.state ?? "calm";
  }

  /**
   * Whether a call arriving now that bears `thresholdMs` of lateness should
   * be refused: its level is behind, or the current turn has kept the timer
   * overdue by that much. A threshold not tracked has only the second rule.
   */
  behindBy(thresholdMs: number): boolean {
    return this.#levels.get(thresholdMs)?.state === "behind" || this.#now() - this.#due >= thresholdMs;
  }

  /** Starts sampling; the timer never keeps the process alive. */
  start(): void {
    if (this.#timer !== null) return;
    this.#due = this.#now() + this.#sampleMs;
    this.#timer = setInterval(() => this.sample(), this.#sampleMs);
    this.#timer.unref();
  }

  /** Stops sampling; every level counts as calm from then on. */
  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    for (const level of this.#levels.values()) {
      level.lateRun = 0;
      this.#set(level, "calm", 0);
    }
    this.#due = Number.POSITIVE_INFINITY;
  }

  /** Takes one sample, as the timer does when it fires. */
  sample(): void {
    const now = this.#now();
    const late = Math.max(0, now - this.#due);
    this.#due = now + this.#sampleMs;
    for (const level of this.#levels.values()) {
      level.lateRun = late >= level.thresholdMs ? level.lateRun + 1 : 0;
      if (level.state === "calm" && level.lateRun >= LATE_SAMPLES_TO_FALL_BEHIND) this.#set(level, "behind", late);
      else if (level.state === "behind" && late < level.thresholdMs / 2) this.#set(level, "calm", late);
    }
  }

  #set(level: Level, state: LoopState, lateMs: number): void {
    if (state === level.state) return;
    level.state = state;
    this.#onChange?.(level.thresholdMs, state, lateMs);
  }
}
