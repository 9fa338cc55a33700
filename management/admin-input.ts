/**
 * The checks on what Admin callers ask to create: the one home of these
 * rules. The store registers only what passed them, and the replica manager
 * runs them before it starts any process, so a deployment that would be
 * refused at registration is refused before its workers spawn.
 */
import { DEFAULT_MODEL_POLICY, type ModelPolicy } from "../core/deployment-layout.js";
import { invalidArgument } from "../core/errors.js";
import { parseInputType, unknownInputTypeMessage, type InputType } from "../core/input-types.js";
import { BATCH_SIZE, boundsMessage, inBounds, LATENCY_SLO_MICROS } from "../core/limits.js";
import { hasKeySeparator } from "../core/names.js";
import { ADAPTIVE_BATCH_SIZE, DEPRECATED_DATA_PATH, NO_CONTAINER, type ModelRecord } from "../core/redis-layout.js";

/** An application as a caller asks for it. */
export interface CreateAppInput {
  name: string;
  inputType: string;
  defaultOutput: string;
  latencySloMicros: number;
}

/** A model version as a caller asks for it. */
export interface RegisterModelInput {
  name: string;
  version: string;
  inputType: string;
  labels: readonly string[];
  containerName: string;
  modelDataPath: string;
  batchSize: number;
  /** Cache and coalescing (DB 8, not Clipper's fields); both on when absent. */
  policy?: ModelPolicy;
}

declare const checked: unique symbol;

/** An app that passed {@link validateAppInput}. */
export type ValidAppInput = Readonly<Omit<CreateAppInput, "inputType"> & { inputType: InputType }> & { readonly [checked]: true };

/** A model version that passed {@link validateModelInput}, with Clipper's defaults filled in. */
export type ValidModelInput = Readonly<Omit<ModelRecord, "valid">> & { readonly policy: ModelPolicy; readonly [checked]: true };

/** Characters an app name may not hold: '/' breaks `/<app>/predict`; ',' and ':' break Redis keys. */
const APP_NAME_FORBIDDEN = /[/,:\s]/;

/** Checks a new app; throws INVALID_ARGUMENT with Clipper's wording. */
export function validateAppInput(input: CreateAppInput): ValidAppInput {
  if (input.name === "") throw invalidArgument("INVALID_NAME", "application name must not be empty");
  if (APP_NAME_FORBIDDEN.test(input.name)) {
    throw invalidArgument("INVALID_NAME", `Invalid application name supplied: ${input.name}. It may not contain '/', ',', ':' or white space`);
  }
  const inputType = requireInputType(input.inputType);
  if (!inBounds(input.latencySloMicros, LATENCY_SLO_MICROS)) {
    throw invalidArgument("INVALID_REQUEST", `${boundsMessage(LATENCY_SLO_MICROS, input.latencySloMicros)} (microseconds; at most 30 minutes)`);
  }
  return { ...input, inputType } as ValidAppInput;
}

/** Checks a new model version; throws INVALID_ARGUMENT with Clipper's wording. */
export function validateModelInput(input: RegisterModelInput): ValidModelInput {
  checkModelPart("model name", input.name);
  checkModelPart("model version", input.version);
  for (const label of input.labels) checkProhibited("label", label);
  const inputType = requireInputType(input.inputType);
  const batchSize = input.batchSize;
  if (!Number.isSafeInteger(batchSize) || (batchSize !== ADAPTIVE_BATCH_SIZE && batchSize < 1)) {
    throw invalidArgument("INVALID_REQUEST", "The batch size must be positive or DEFAULT_BATCH_SIZE, which is -1");
  }
  if (batchSize !== ADAPTIVE_BATCH_SIZE && !inBounds(batchSize, BATCH_SIZE)) throw invalidArgument("INVALID_REQUEST", boundsMessage(BATCH_SIZE, batchSize));
  return {
    name: input.name,
    version: input.version,
    inputType,
    labels: [...input.labels],
    containerName: input.containerName === "" ? NO_CONTAINER : input.containerName,
    modelDataPath: input.modelDataPath === "" ? DEPRECATED_DATA_PATH : input.modelDataPath,
    batchSize,
    policy: input.policy ?? DEFAULT_MODEL_POLICY,
  } as ValidModelInput;
}

function checkModelPart(what: string, value: string): void {
  if (value === "") throw invalidArgument("INVALID_NAME", `${what} must not be empty`);
  checkProhibited(what, value);
}

function checkProhibited(what: string, value: string): void {
  if (hasKeySeparator(value)) {
    throw invalidArgument("INVALID_NAME", `Invalid ${what} supplied: ${value}. Contains one of: ',', ':'`);
  }
}

function requireInputType(text: string): InputType {
  const t = parseInputType(text);
  if (t === null) throw invalidArgument("UNKNOWN_INPUT_TYPE", unknownInputTypeMessage(text));
  return t;
}
