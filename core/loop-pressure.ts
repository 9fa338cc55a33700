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
 * One late sample is not enough: a process descheduled once (a busy host
 * does that for tens of ms now and then) finds a small backlog it clears
 * in one turn, and refusing those calls would cost their callers a
 * Retry-After second instead of the stall's few ms. A backlog too big for
 * one turn keeps the timer overdue and is refused by the first rule; load
 * the loop cannot keep up with makes every sample late and trips the
 * second.
 */

/** calm: calls are taken; behind: two samples in a row fired late by the threshold and none has since fired nearly on time. */
export type LoopState = "calm" | "behind";

export interface LoopPressureOptions {
  /** Lateness that counts as behind, ms (> 0). */
  readonly thresholdMs: number;
  /** How often the timer samples, ms (> 0); default {@link DEFAULT_SAMPLE_MS}. */
  readonly sampleMs?: number;
  /** Told of each change of state, with the lateness that caused it, ms. */
  readonly onChange?: (state: LoopState, lateMs: number) => void;
  /** The clock, ms; performance.now by default (tests pass their own). */
  readonly now?: () => number;
}

/** Sampling period: short enough that a stall of a few tens of ms shows, long enough to cost nothing (100 wake-ups a second). */
export const DEFAULT_SAMPLE_MS = 10;

/** Late samples in a row that make the loop behind (see above: one is a stall, two are load). */
const LATE_SAMPLES_TO_FALL_BEHIND = 2;

export class LoopPressure {
  #thresholdMs: number;
  readonly #sampleMs: number;
  readonly #onChange: ((state: LoopState, lateMs: number) => void) | undefined;
  readonly #now: () => number;
  #state: LoopState = "calm";
  /** Samples in a row, up to the last, that fired late by the threshold. */
  #lateRun = 0;
  #timer: NodeJS.Timeout | null = null;
  /** When the next sample is due, ms on the clock. */
  #due: number;

  constructor(options: LoopPressureOptions) {
    if (!(options.thresholdMs > 0)) throw new RangeError(`thresholdMs must be > 0, got ${options.thresholdMs}`);
    const sampleMs = options.sampleMs ?? DEFAULT_SAMPLE_MS;
    if (!(sampleMs > 0)) throw new RangeError(`sampleMs must be > 0, got ${sampleMs}`);
    this.#thresholdMs = options.thresholdMs;
    this.#sampleMs = sampleMs;
    this.#onChange = options.onChange;
    this.#now = options.now ?? (() => performance.now());
    this.#due = this.#now() + sampleMs;
  }

  get thresholdMs(): number {
    return this.#thresholdMs;
  }

  /** Changes the threshold from the next call or sample on (the catalog's SLOs change while the loop runs). */
  set thresholdMs(ms: number) {
    if (!(ms > 0)) throw new RangeError(`thresholdMs must be > 0, got ${ms}`);
    this.#thresholdMs = ms;
  }

  get state(): LoopState {
    return this.#state;
  }

  /** Whether a call arriving now should be refused at the door. */
  get behind(): boolean {
    return this.#state === "behind" || this.#now() - this.#due >= this.#thresholdMs;
  }

  /** Starts sampling; the timer never keeps the process alive. */
  start(): void {
    if (this.#timer !== null) return;
    this.#due = this.#now() + this.#sampleMs;
    this.#timer = setInterval(() => this.sample(), this.#sampleMs);
    this.#timer.unref();
  }

  /** Stops sampling; the loop counts as calm from then on. */
  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#lateRun = 0;
    this.#set("calm", 0);
    this.#due = Number.POSITIVE_INFINITY;
  }

  /** Takes one sample, as the timer does when it fires. */
  sample(): void {
    const now = this.#now();
    const late = Math.max(0, now - this.#due);
    this.#due = now + this.#sampleMs;
    this.#lateRun = late >= this.#thresholdMs ? this.#lateRun + 1 : 0;
    if (this.#state === "calm" && this.#lateRun >= LATE_SAMPLES_TO_FALL_BEHIND) this.#set("behind", late);
    else if (this.#state === "behind" && late < this.#thresholdMs / 2) this.#set("calm", late);
  }

  #set(state: LoopState, lateMs: number): void {
    if (state === this.#state) return;
    this.#state = state;
    this.#onChange?.(state, lateMs);
  }
}
