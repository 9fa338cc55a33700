import type { CallContext } from "./call-context.js";
import { NO_DEADLINE } from "./deadline.js";

/**
 * Settles with `work`, or rejects with the call's abort reason (a
 * ServingError: CANCELLED or DEADLINE_EXCEEDED) as soon as the caller goes
 * away or its deadline passes; the work's late outcome is then dropped.
 * For edges whose handler cannot itself stop early (transcoded HTTP,
 * Clipper /admin/*). Without a deadline only the caller leaving can end the
 * wait, and `onCancel` sees that without making the signal and its timer.
 */
export function untilAborted<T>(work: Promise<T>, ctx: CallContext): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const stop = ctx.deadline === NO_DEADLINE ? ctx.onCancel(() => reject(ctx.signal.reason)) : onAbort(ctx.signal, reject);
    work.then(
      (value) => {
        stop();
        resolve(value);
      },
      (err: unknown) => {
        stop();
        reject(err);
      },
    );
  });
}

/** Rejects with `signal`'s reason once it aborts (at once if it has); returns the listener's removal. */
function onAbort(signal: AbortSignal, reject: (reason: unknown) => void): () => void {
  const listener = (): void => reject(signal.reason);
  if (signal.aborted) {
    listener();
    return noop;
  }
  signal.addEventListener("abort", listener, { once: true });
  return () => signal.removeEventListener("abort", listener);
}

function noop(): void {}
