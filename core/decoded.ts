/**
 * The outcome of decoding untrusted input (Redis values, wire frames):
 * a value, or an error message as a value. Decoders return it instead of
 * throwing, so each caller decides whether a bad entry is skipped, logged or
 * answered with an error. A value may carry a warning: it was read, but
 * something in it had to be corrected (core/limits.ts), which the caller
 * logs.
 */
export type Decoded<T> = { ok: true; value: T; warning?: string } | { ok: false; error: string };

/** A successful {@link Decoded}. */
export function decoded<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

/** A failed {@link Decoded} carrying why. */
export function undecodable(error: string): { ok: false; error: string } {
  return { ok: false, error };
}
