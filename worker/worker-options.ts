/**
 * Options of the worker runtime (startWorker), their defaults and their
 * checking, for worker/main.ts and for programs that run a worker in-process.
 */
import { hostname } from "node:os";
import { randomUUID } from "node:crypto";
import { parseInputType, unknownInputTypeMessage, type InputType } from "../core/input-types.js";
import { modelNameProblem } from "../core/names.js";
import type { Logger } from "../core/telemetry/logger.js";
import type { PredictFn } from "./batch-executor.js";
import type { WorkerMetrics } from "./metrics.js";
import { parseWorkerEndpointList, type WorkerEndpoint } from "../core/worker-endpoint.js";
import type { WorkerCredentials } from "./worker-credentials.js";

/** How often gateway host names are resolved again, in ms: a new gateway pod is found within this. */
export const DEFAULT_GATEWAY_RESOLVE_MS = 10_000;

/** Heartbeat interval until the gateway names one, in ms (and the CLI default). */
const DEFAULT_HEARTBEAT_MS = 1_000;

/**
 * Silence from the gateway that triggers a reconnect until the gateway names
 * its eviction timeout, in ms: three default heartbeats, so one lost
 * message is not enough.
 */
const DEFAULT_EVICTION_TIMEOUT_MS = 3_000;

/** Options of startWorker (worker/runtime.ts). */
export interface WorkerOptions {
  /** Model name (non-empty, no ',' or ':', which Clipper's Redis keys use as separators). */
  readonly model: string;
  /** Model version (same rules as the name). */
  readonly version: string;
  /** Input type in any Clipper spelling; sent to the gateway as given. */
  readonly inputType: string;
  /**
   * Gateway RPC endpoints, `tcp://host:port` or `ipc:///path` (a gateway on
   * this host), comma-separated: the worker serves every one, and every
   * address a host name resolves to.
   */
  readonly gateway: string;
  /** How often host names in `gateway` are resolved again, in ms; default 10000. */
  readonly gatewayResolveMs?: number;
  /** The model function (see {@link PredictFn}). */
  readonly predict: PredictFn;
  /** Batches run at the same time; default 1. */
  readonly concurrency?: number;
  /** Largest batch the model takes, 0 for no limit of its own; default 0. */
  readonly maxBatchSize?: number;
  /**
   * A model call running this long has its items answered DEADLINE_EXCEEDED,
   * and the worker stops with exit kind "hung" if the call has not returned
   * after as long again, in ms; 0 (default) for no timeout.
   */
  readonly modelTimeoutMs?: number;
  /** Heartbeat (and registration retry) interval until the gateway names one, in ms; default 1000. */
  readonly heartbeatMs?: number;
  /** Silence that triggers a reconnect until the gateway names its eviction timeout, in ms; default 3000. */
  readonly evictionTimeoutMs?: number;
  /** Free text for operators; default `host=<hostname> pid=<pid>`. */
  readonly description?: string;
  /** Where batches, items and model time are counted; none by default. */
  readonly metrics?: WorkerMetrics;
  /** CURVE keys, for a gateway whose worker port runs CURVE; none by default. */
  readonly credentials?: WorkerCredentials;
  readonly log: Logger;
}

/** WorkerOptions checked, defaults applied. @internal */
export interface Settings {
  readonly model: string;
  readonly version: string;
  readonly inputTypeText: string;
  readonly inputType: InputType;
  readonly gateways: readonly WorkerEndpoint[];
  readonly gatewayResolveMs: number;
  readonly predict: PredictFn;
  readonly concurrency: number;
  readonly maxBatchSize: number;
  readonly modelTimeoutMs: number;
  readonly heartbeatMs: number;
  readonly evictionTimeoutMs: number;
  readonly description: string;
  /** This worker's instance id, sent to every gateway it registers with (RegisterWorker.worker_id). */
  readonly workerId: string;
  readonly metrics: WorkerMetrics | null;
  readonly credentials: WorkerCredentials | null;
}

/**
 * Checks options and applies defaults. Throws a TypeError naming the bad
 * option: callers are programs, and a wrong option is a bug to fix, not a
 * state to run in.
 */
export function checkOptions(o: WorkerOptions): Settings {
  const inputType = parseInputType(o.inputType);
  if (inputType === null) throw new TypeError(unknownInputTypeMessage(o.inputType));
  const whole = (name: string, value: number, min: number): number => {
    if (!Number.isSafeInteger(value) || value < min) throw new TypeError(`${name} must be a whole number >= ${min}, got ${value}`);
    return value;
  };
  const nameProblem = modelNameProblem("model", o.model) ?? modelNameProblem("version", o.version);
  if (nameProblem !== null) throw new TypeError(nameProblem);
  if (typeof o.predict !== "function") throw new TypeError("predict must be a function");
  return {
    model: o.model,
    version: o.version,
    inputTypeText: o.inputType,
    inputType,
    gateways: parseGateways(o.gateway),
    gatewayResolveMs: whole("gatewayResolveMs", o.gatewayResolveMs ?? DEFAULT_GATEWAY_RESOLVE_MS, 100),
    predict: o.predict,
    concurrency: whole("concurrency", o.concurrency ?? 1, 1),
    maxBatchSize: whole("maxBatchSize", o.maxBatchSize ?? 0, 0),
    modelTimeoutMs: whole("modelTimeoutMs", o.modelTimeoutMs ?? 0, 0),
    heartbeatMs: whole("heartbeatMs", o.heartbeatMs ?? DEFAULT_HEARTBEAT_MS, 1),
    evictionTimeoutMs: whole("evictionTimeoutMs", o.evictionTimeoutMs ?? DEFAULT_EVICTION_TIMEOUT_MS, 1),
    description: o.description ?? `host=${hostname()} pid=${process.pid}`,
    workerId: randomUUID(),
    metrics: o.metrics ?? null,
    credentials: o.credentials ?? null,
  };
}

function parseGateways(text: string): WorkerEndpoint[] {
  const parsed = parseWorkerEndpointList(text);
  if (!parsed.ok) throw new TypeError(`gateway: ${parsed.error}`);
  return parsed.value;
}
