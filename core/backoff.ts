/**
 * Jittered exponential backoff between retries of something that failed:
 * the worker's reconnects to a silent gateway, management's restarts of a
 * worker process that keeps exiting.
 */

/** First reconnect delay, in ms: a restarting gateway is usually back within a second. */
export const RECONNECT_BASE_DELAY_MS = 100;

/**
 * Longest reconnect delay, in ms: a worker that outlived its gateway keeps
 * trying often enough to rejoin within seconds of the gateway's return.
 */
export const RECONNECT_MAX_DELAY_MS = 5_000;

/**
 * Delay before reconnect attempt `attempt` (0 for the first), in ms:
 * "equal jitter", i.e. half of min(max, base·2^attempt) plus a random part of
 * the other half, so replicas that lost the same gateway don't reconnect in
 * lockstep, yet never retry sooner than half the nominal delay.
 */
export function backoffDelayMs(attempt: number, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(0, Math.floor(attempt)), 30);
  const nominal = Math.min(RECONNECT_MAX_DELAY_MS, RECONNECT_BASE_DELAY_MS * 2 ** exponent);
  return Math.round(nominal / 2 + random() * (nominal / 2));
}
