/**
 * Runs one BatchRequest through the model and builds its per-item answer
 * (heartbeat.proto BatchResult): skip items already past their deadline,
 * decode the rest, call the model once, and turn each output (or error) into
 * an ItemStatus plus a payload frame. No sockets here, so it is testable alone.
 */
import { performance } from "node:perf_hooks";
import { status as Status } from "@grpc/grpc-js";
import type { BatchRequest, ItemStatus } from "../gen/clipper/v1/heartbeat.js";
import { parseInputType, type InputType } from "../core/input-types.js";
import { decodeInput, type ModelInput } from "./input-decoding.js";

/**
 * The model function: given one input per item, returns (or resolves to)
 * one output per input, in order. Outputs are strings (sent as is) or other
 * JSON values (sent as JSON text); a returned `Error` fails only its item; a
 * throw or a wrong number of outputs fails the whole batch. Typed `unknown`
 * because user modules are checked at run time, not trusted.
 */
export type PredictFn = (inputs: ModelInput[]) => unknown;

/** A batch's answer: item i's status and payload frame (empty unless code 0). */
export interface BatchAnswer {
  readonly items: ItemStatus[];
  readonly outputs: Buffer[];
  /** Time spent inside the model, in microseconds. */
  readonly modelMicros: number;
  /** Times the model function was called (0 when every item was skipped; more than 1 when split by maxBatchSize). */
  readonly modelCalls: number;
  /** Why the model call failed as a whole (threw, or returned the wrong shape); null otherwise. */
  readonly modelError: string | null;
  /**
   * A model call that ran past the model timeout and has not returned: it
   * settles when it does. Its items (and those of any later call of the
   * batch, which are not run) were answered DEADLINE_EXCEEDED. Null otherwise.
   */
  readonly overdue: Promise<void> | null;
}

/** What runBatch needs besides the request. */
export interface BatchJob {
  readonly inputType: InputType;
  readonly predict: PredictFn;
  /** Largest number of inputs per model call; 0 for no limit. */
  readonly maxBatchSize: number;
  /** A model call may run this long before its items are answered DEADLINE_EXCEEDED, in ms; 0 (default) for no limit. */
  readonly modelTimeoutMs?: number;
  /** Current time in µs since the Unix epoch (injectable for tests). */
  readonly nowMicros?: () => number;
}

const EMPTY = Buffer.alloc(0);

/** Every item answered with the same error (draining, overload, bad batch). */
export function failAll(count: number, code: number, message: string): BatchAnswer {
  return {
    items: Array.from({ length: count }, () => ({ code, message })),
    outputs: Array.from({ length: count }, () => EMPTY),
    modelMicros: 0,
    modelCalls: 0,
    modelError: null,
    overdue: null,
  };
}

/**
 * Answers a batch of `payloads.length` items. Never throws and never
 * rejects: whatever the model does, every item gets a status, so one bad
 * model call cannot take the worker down (cf. Clipper #513).
 */
export async function runBatch(job: BatchJob, request: BatchRequest, payloads: readonly Buffer[]): Promise<BatchAnswer> {
  const count = payloads.length;
  if (request.inputType !== "" && parseInputType(request.inputType) !== job.inputType) {
    return failAll(count, Status.INVALID_ARGUMENT, `batch input type '${request.inputType}' does not match this worker's '${job.inputType}'`);
  }
  const items: ItemStatus[] = Array.from({ length: count }, () => ({ code: Status.OK, message: "" }));
  const outputs: Buffer[] = Array.from({ length: count }, () => EMPTY);
  const now = (job.nowMicros ?? defaultNowMicros)();
  const liveIndex: number[] = [];
  const liveInputs: ModelInput[] = [];
  for (let i = 0; i < count; i++) {
    // 0 (unset) means no per-item deadline; a passed one isn't worth model time,
    // since the gateway has already answered that caller with the default.
    const deadline = request.itemDeadlinesUnixMicros[i] ?? 0;
    if (deadline > 0 && deadline <= now) {
      items[i] = { code: Status.DEADLINE_EXCEEDED, message: "deadline passed before the model ran" };
      continue;
    }
    const decoded = decodeInput(job.inputType, payloads[i]!);
    if (!decoded.ok) {
      items[i] = { code: Status.INVALID_ARGUMENT, message: decoded.error };
      continue;
    }
    liveIndex.push(i);
    liveInputs.push(decoded.value);
  }
  // The gateway should respect the registered max_batch_size; if it doesn't,
  // splitting keeps the model within what it declared rather than failing callers.
  const chunk = job.maxBatchSize > 0 ? job.maxBatchSize : Math.max(1, liveInputs.length);
  let modelMicros = 0;
  let modelCalls = 0;
  let modelError: string | null = null;
  let overdue: Promise<void> | null = null;
  for (let start = 0; start < liveInputs.length; start += chunk) {
    const index = liveIndex.slice(start, start + chunk);
    if (overdue !== null) {
      // The model hangs: the rest of the batch is not run.
      for (const i of index) items[i] = { code: Status.DEADLINE_EXCEEDED, message: "not run: an earlier model call of this batch did not return in time" };
      continue;
    }
    const t0 = performance.now();
    const result = await callModel(job.predict, liveInputs.slice(start, start + chunk), job.modelTimeoutMs ?? 0);
    modelMicros += Math.round((performance.now() - t0) * 1000);
    modelCalls++;
    if ("overdue" in result) {
      overdue = result.overdue;
      for (const i of index) items[i] = { code: Status.DEADLINE_EXCEEDED, message: result.error };
      continue;
    }
    if (!result.ok) {
      modelError ??= result.error;
      for (const i of index) items[i] = { code: Status.INTERNAL, message: result.error };
      continue;
    }
    result.outputs.forEach((value, k) => {
      const i = index[k]!;
      const encoded = encodeOutput(value);
      if (encoded.ok) outputs[i] = encoded.frame;
      else items[i] = { code: encoded.code, message: encoded.error };
    });
  }
  return { items, outputs, modelMicros, modelCalls, modelError, overdue };
}

const TIMED_OUT = Symbol("timed out");

function defaultNowMicros(): number {
  return Date.now() * 1000;
}

type ModelResult = { ok: true; outputs: readonly unknown[] } | { ok: false; error: string } | { ok: false; error: string; overdue: Promise<void> };

/** The model's answer, or after `timeoutMs` (when > 0) a timeout carrying the call still running. */
async function callModel(predict: PredictFn, inputs: ModelInput[], timeoutMs: number): Promise<ModelResult> {
  let value: unknown;
  try {
    // A synchronous throw becomes a rejection here too.
    const call = Promise.resolve().then(() => predict(inputs));
    if (timeoutMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<typeof TIMED_OUT>((resolve) => {
        timer = setTimeout(resolve, timeoutMs, TIMED_OUT);
      });
      const first = await Promise.race([call, late]).finally(() => clearTimeout(timer));
      if (first === TIMED_OUT) {
        const overdue = call.then(() => {}, () => {});
        return { ok: false, error: `the model did not return within ${timeoutMs} ms (model timeout)`, overdue };
      }
      value = first;
    } else {
      value = await call;
    }
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message || err.name : `model threw ${String(err)}` };
  }
  if (!Array.isArray(value)) {
    return { ok: false, error: `model returned ${describe(value)}, not an array with one output per input` };
  }
  if (value.length !== inputs.length) {
    return { ok: false, error: `model returned ${value.length} outputs for ${inputs.length} inputs; it must return one output per input, in order` };
  }
  return { ok: true, outputs: value };
}

type EncodedOutput = { ok: true; frame: Buffer } | { ok: false; code: number; error: string };

/**
 * One output → its payload frame. A returned Error fails its item with
 * INTERNAL, or with its own `code` when that is a gRPC status (1–16), so a
 * model can say INVALID_ARGUMENT about one bad input.
 */
function encodeOutput(value: unknown): EncodedOutput {
  if (typeof value === "string") return { ok: true, frame: Buffer.from(value, "utf8") };
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    const status = typeof code === "number" && Number.isInteger(code) && code >= 1 && code <= 16 ? code : Status.INTERNAL;
    return { ok: false, code: status, error: value.message || "model returned an error for this item" };
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    return { ok: false, code: Status.INTERNAL, error: `model output is not JSON-serializable: ${(err as Error).message}` };
  }
  // JSON.stringify gives undefined for undefined, functions and symbols.
  if (text === undefined) return { ok: false, code: Status.INTERNAL, error: `model output is ${describe(value)}, not a string or JSON value` };
  return { ok: true, frame: Buffer.from(text, "utf8") };
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") return `a ${value.constructor?.name ?? "object"}`;
  return typeof value === "undefined" ? "undefined" : `a ${typeof value}`;
}
