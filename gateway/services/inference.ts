/**
 * inference.GRPCInferenceService, the Open Inference Protocol (KServe V2),
 * over the same Predictor as clipper.v1.Predict: a "model" is an
 * application, and each row of ModelInfer's input tensor is one query,
 * queued and batched with every other caller's. The REST edge
 * (gateway/http/inference-rest.ts) runs these same handlers.
 */
import type { CallContext, UnaryHandler } from "../../core/call-context.js";
import { invalidArgument, notFound, ServingError } from "../../core/errors.js";
import { withDeadline } from "../../core/lazy-call-context.js";
import { releaseVersion } from "../../core/release.js";
import type { UnaryServiceBinding } from "../../core/service-binding.js";
import {
  GRPCInferenceServiceService,
  type ModelInferRequest,
  type ModelInferResponse,
  type ModelMetadataRequest,
  type ModelMetadataResponse,
  type ModelReadyRequest,
  type ModelReadyResponse,
  type ServerLiveRequest,
  type ServerLiveResponse,
  type ServerMetadataRequest,
  type ServerMetadataResponse,
  type ServerReadyRequest,
  type ServerReadyResponse,
} from "../../gen/inference/open_inference.js";
import { inferOptions } from "../oip/infer-parameters.js";
import { OUTPUT_NAMES, outputTensors, requestedOutputs } from "../oip/output-tensors.js";
import { DATATYPE_OF, tensorRows } from "../oip/tensor-rows.js";
import type { Predictor, Target } from "../predictor.js";

/** The full name of the service, as grpc-js, reflection and health name it. */
export const INFERENCE_SERVICE_NAME = "inference.GRPCInferenceService";

/** ServerMetadata's name and ModelMetadata's platform. */
export const SERVER_NAME = "clipper-ts";

/** The protocol extensions served: the REST binary tensor data extension. */
export const SERVER_EXTENSIONS: readonly string[] = ["binary_tensor_data"];

/** What the service reads besides the predictor. */
export interface InferenceState {
  readonly predictor: Predictor;
  /** The servable versions of a model. */
  versions(model: string): string[];
  /** Serving replicas of a model version. */
  replicaCount(model: string, version: string): number;
  /** The gateway's readiness (Redis up, catalog loaded). */
  ready(): boolean;
}

/** The service's handlers, typed, for the edges that build messages themselves (REST). */
export interface InferenceHandlers {
  readonly serverLive: UnaryHandler<ServerLiveRequest, ServerLiveResponse>;
  readonly serverReady: UnaryHandler<ServerReadyRequest, ServerReadyResponse>;
  readonly modelReady: UnaryHandler<ModelReadyRequest, ModelReadyResponse>;
  readonly serverMetadata: UnaryHandler<ServerMetadataRequest, ServerMetadataResponse>;
  readonly modelMetadata: UnaryHandler<ModelMetadataRequest, ModelMetadataResponse>;
  readonly modelInfer: UnaryHandler<ModelInferRequest, ModelInferResponse>;
}

/** inference.GRPCInferenceService's methods as transport-agnostic handlers. */
export function inferenceHandlers(state: InferenceState): InferenceHandlers {
  const serverMetadata: ServerMetadataResponse = { name: SERVER_NAME, version: releaseVersion(), extensions: [...SERVER_EXTENSIONS] };
  return {
    serverLive: () => Promise.resolve({ live: true }),
    serverReady: () => Promise.resolve({ ready: state.ready() }),
    modelReady: (req) => Promise.resolve({ ready: modelReady(state, req) }),
    serverMetadata: () => Promise.resolve(serverMetadata),
    // Through then(), so a throw becomes a rejection.
    modelMetadata: (req) => Promise.resolve().then(() => modelMetadata(state, req)),
    modelInfer: (req, ctx) => modelInfer(state.predictor, req, ctx),
  };
}

/** The handlers bound to the service's grpc-js definition. */
export function inferenceBinding(handlers: InferenceHandlers): UnaryServiceBinding {
  return { name: INFERENCE_SERVICE_NAME, definition: GRPCInferenceServiceService, handlers: { ...handlers } };
}

/**
 * The app's target at the version asked. The protocol answers a model or
 * version that does not exist with NOT_FOUND, where Predict says
 * INVALID_ARGUMENT for an unknown version.
 */
function resolve(predictor: Predictor, name: string, version: string): Target {
  if (name === "") throw invalidArgument("INVALID_REQUEST", "the model name is empty; name the application to call");
  try {
    return predictor.target(name, version);
  } catch (err) {
    if (err instanceof ServingError && err.reason === "MODEL_NOT_FOUND") throw notFound("MODEL_NOT_FOUND", err.message);
    throw err;
  }
}

/**
 * Ready when the app's model (at the version asked) has a serving replica.
 * Open to callers without a token, so an app that does not exist (or
 * cannot be served) is simply not ready: the answer never tells them which
 * names exist.
 */
function modelReady(state: InferenceState, req: ModelReadyRequest): boolean {
  let target: Target;
  try {
    target = resolve(state.predictor, req.name, req.version);
  } catch {
    return false;
  }
  return target.version !== "" && state.replicaCount(target.model, target.version) > 0;
}

function modelMetadata(state: InferenceState, req: ModelMetadataRequest): ModelMetadataResponse {
  const target = resolve(state.predictor, req.name, req.version);
  const { app } = target;
  const datatype = DATATYPE_OF[app.inputType];
  return {
    name: app.name,
    // Numeric-aware, so version 10 follows 9.
    versions: target.model === "" ? [] : state.versions(target.model).sort((a, b) => a.localeCompare(b, "en", { numeric: true })),
    platform: SERVER_NAME,
    inputs: [{ name: "input", datatype, shape: datatype === "BYTES" ? [-1] : [-1, -1] }],
    outputs: OUTPUT_NAMES.map((name) => ({ name, datatype: name === "output" ? "BYTES" : "BOOL", shape: [-1] })),
    properties: {
      input_type: app.inputType,
      latency_slo_micros: String(app.latencySloMicros),
      default_output: app.defaultOutput,
      linked_model: target.model,
      current_version: target.version,
    },
  };
}

async function modelInfer(predictor: Predictor, req: ModelInferRequest, ctx: CallContext): Promise<ModelInferResponse> {
  const target = resolve(predictor, req.modelName, req.modelVersion);
  if (req.inputs.length !== 1) {
    throw invalidArgument(
      "INVALID_INPUT",
      req.inputs.length === 0
        ? "the request has no input tensor; send one (ModelMetadata names it 'input')"
        : `the request has ${req.inputs.length} input tensors (${req.inputs.map((t) => `'${t.name}'`).join(", ")}); the model takes one: send only it`,
    );
  }
  const tensor = req.inputs[0]!;
  const raw = req.rawInputContents;
  if (raw.length > 1) throw invalidArgument("INVALID_INPUT", `raw_input_contents has ${raw.length} entries for 1 input tensor; send one entry per input tensor`);
  if (raw.length === 1 && tensor.contents !== undefined && hasElements(tensor.contents)) {
    throw invalidArgument("INVALID_INPUT", `input tensor '${tensor.name}' has elements both in contents and in raw_input_contents; send them in one of the two`);
  }
  const options = inferOptions(req.parameters);
  if (!options.ok) throw invalidArgument("INVALID_REQUEST", options.error);
  const outputs = requestedOutputs(req.outputs);
  if (!outputs.ok) throw invalidArgument("INVALID_REQUEST", outputs.error);
  const rows = tensorRows(tensor, raw[0] ?? null, target.app.inputType);
  if (!rows.ok) throw invalidArgument("INVALID_INPUT", rows.error);

  const { timeoutMicros, rawOutput } = options.value;
  const callCtx = timeoutMicros > 0 ? withDeadline(ctx, Math.min(ctx.deadline, Date.now() + timeoutMicros / 1000)) : ctx;
  // Each row is its own query: queued, batched and answered like a Predict call.
  const predictions = await Promise.all(rows.rows.map((row) => predictor.predict(target, row, callCtx)));
  return {
    modelName: req.modelName,
    modelVersion: target.version,
    id: req.id,
    parameters: {},
    ...outputTensors(predictions, outputs.names, rawOutput ?? raw.length === 1),
  };
}

function hasElements(contents: NonNullable<ModelInferRequest["inputs"][number]["contents"]>): boolean {
  for (const values of Object.values(contents) as unknown[][]) if (values.length > 0) return true;
  return false;
}
