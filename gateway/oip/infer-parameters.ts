/**
 * The request parameters of ModelInfer that clipper-ts acts on. `timeout`
 * is tritonclient's server-side timeout (int64, microseconds); it narrows
 * the call's deadline as PredictStream's `timeout_micros` does.
 * `binary_data_output` (bool) asks for raw (true) or typed (false) outputs,
 * as the REST binary extension's request parameter of that name does.
 * Everything else (priority, sequence_*, …) is accepted and ignored: nothing
 * here batches by priority or sequence.
 */
import { LATENCY_SLO_MICROS } from "../../core/limits.js";
import type { InferParameter } from "../../gen/inference/open_inference.js";

/** Longest `timeout` honoured, in µs: no answer waits longer than the longest SLO, and no timer is armed past it. */
const MAX_TIMEOUT_MICROS = LATENCY_SLO_MICROS.max;

export interface InferOptions {
  /** The caller's own timeout in µs; 0 for none. */
  readonly timeoutMicros: number;
  /** Raw or typed outputs as asked; null to answer the way the input came. */
  readonly rawOutput: boolean | null;
}

const NONE: InferOptions = { timeoutMicros: 0, rawOutput: null };

/** Reads the parameters; the error names the parameter and what to send. */
export function inferOptions(parameters: Readonly<Record<string, InferParameter>>): { ok: true; value: InferOptions } | { ok: false; error: string } {
  const timeout = parameters["timeout"]?.parameterChoice;
  const binary = parameters["binary_data_output"]?.parameterChoice;
  if (timeout === undefined && binary === undefined) return { ok: true, value: NONE };
  let timeoutMicros = 0;
  if (timeout !== undefined) {
    const ok = (timeout.$case === "int64Param" || timeout.$case === "uint64Param") && timeout.value >= 0;
    if (!ok) return { ok: false, error: `parameter 'timeout' must be a non-negative int64 (microseconds), got ${describe(timeout)}` };
    timeoutMicros = Math.min(timeout.value as number, MAX_TIMEOUT_MICROS);
  }
  let rawOutput: boolean | null = null;
  if (binary !== undefined) {
    if (binary.$case !== "boolParam") return { ok: false, error: `parameter 'binary_data_output' must be a bool, got ${describe(binary)}` };
    rawOutput = binary.value;
  }
  return { ok: true, value: { timeoutMicros, rawOutput } };
}

function describe(p: NonNullable<InferParameter["parameterChoice"]>): string {
  return `${p.$case.replace("Param", "")} ${JSON.stringify(p.value)}`;
}
