/** How often a replica's dialect promises to speak, and how much silence ends it. */
export interface LivenessPolicy {
  /** The interval between heartbeats the peer keeps, in ms. */
  readonly heartbeatMs: number;
  /** Silence after which the replica is evicted, in ms. */
  readonly evictAfterMs: number;
  /**
   * True when the peer sends nothing while it runs a batch (a Clipper v3
   * container is single-threaded), so only its idle silence counts as
   * missed beats.
   */
  readonly silentWhileBusy: boolean;
}

/** What one check of a replica's silence found. */
export interface LivenessCheck {
  /** Heartbeats newly counted as missed since the last check. */
  readonly newlyMissed: number;
  /** The silence passed the eviction limit. */
  readonly expired: boolean;
}

/**
 * Heartbeat bookkeeping for one replica, on an injected clock: when it was
 * last heard from, and how many beats it has missed since. A beat counts as
 * missed when a whole further interval has passed after it was due (one
 * interval of grace for jitter), so a native worker told to beat three times
 * per eviction timeout is evicted after missing two.
 */
export class Liveness {
  readonly #policy: LivenessPolicy;
  #lastSeen: number;
  #missed = 0;

  constructor(policy: LivenessPolicy, now: number) {
    this.#policy = policy;
    this.#lastSeen = now;
  }

  /** When the replica was last heard from, ms since epoch. */
  get lastSeen(): number {
    return this.#lastSeen;
  }

  /** The replica spoke: its silence, and the beats it missed, start over. */
  seen(now: number): void {
    this.#lastSeen = now;
    this.#missed = 0;
  }

  /** Counts beats missed since the last check and says whether the silence is over the limit. */
  check(now: number, busy: boolean): LivenessCheck {
    const silence = now - this.#lastSeen;
    let newlyMissed = 0;
    if (!(busy && this.#policy.silentWhileBusy)) {
      const missed = Math.floor(silence / this.#policy.heartbeatMs) - 1;
      if (missed > this.#missed) {
        newlyMissed = missed - this.#missed;
        this.#missed = missed;
      }
    }
    return { newlyMissed, expired: silence > this.#policy.evictAfterMs };
  }
}
