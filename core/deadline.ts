/**
 * Deadlines are absolute, in milliseconds since the Unix epoch
 * (`Date.now()` scale); `Infinity` means none.
 */
export type Deadline = number;

/** No deadline: the call may wait forever. */
export const NO_DEADLINE: Deadline = Infinity;

/** Units of the gRPC `grpc-timeout` header, in milliseconds. */
const TIMEOUT_UNIT_MS: Readonly<Record<string, number>> = {
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 1e-3,
  n: 1e-6,
};

/**
 * Parses a `grpc-timeout` / `Grpc-Timeout` value ("<1-8 digits><H|M|S|m|u|n>",
 * gRPC over HTTP/2 spec) into milliseconds. Returns an error value rather
 * than throwing: this is untrusted input.
 */
export function parseGrpcTimeout(value: string): { ok: true; ms: number } | { ok: false; error: string } {
  const m = /^(\d{1,8})([HMSmun])$/.exec(value.trim());
  if (m === null) {
    return { ok: false, error: `invalid Grpc-Timeout '${value}': expected 1-8 digits followed by one of H, M, S, m, u, n (e.g. 250m)` };
  }
  return { ok: true, ms: Number(m[1]) * (TIMEOUT_UNIT_MS[m[2]!] ?? 1) };
}
