/**
 * The two output tensors of an Open Inference Protocol answer, one element
 * per row: `output` (BYTES, the model's output for the row) and `default`
 * (BOOL, whether the row got the application's default output). They go
 * typed (`contents`) or raw (`raw_output_contents`, BYTES length-prefixed,
 * BOOL one byte each), as the caller asks.
 */
import type { ModelInferRequest_InferRequestedOutputTensor, ModelInferResponse_InferOutputTensor } from "../../gen/inference/open_inference.js";
import type { Prediction } from "../predictor.js";

/** The output tensors every app has, in the order they are answered by default. */
export const OUTPUT_NAMES = ["output", "default"] as const;
export type OutputName = (typeof OUTPUT_NAMES)[number];

/** The output tensors a request asked for, or why they cannot be given. */
export type RequestedOutputs = { readonly ok: true; readonly names: readonly OutputName[] } | { readonly ok: false; readonly error: string };

const ALL: RequestedOutputs = { ok: true, names: OUTPUT_NAMES };

/** The outputs to answer, in the order asked (every output when none is named). */
export function requestedOutputs(outputs: readonly ModelInferRequest_InferRequestedOutputTensor[]): RequestedOutputs {
  if (outputs.length === 0) return ALL;
  const names: OutputName[] = [];
  for (const o of outputs) {
    if (!(OUTPUT_NAMES as readonly string[]).includes(o.name)) {
      return { ok: false, error: `output tensor '${o.name}' does not exist; the outputs are ${OUTPUT_NAMES.map((n) => `'${n}'`).join(" and ")}` };
    }
    if (names.includes(o.name as OutputName)) return { ok: false, error: `output tensor '${o.name}' is requested twice; name each output once` };
    names.push(o.name as OutputName);
  }
  return { ok: true, names };
}

/** The output tensors for `predictions`, typed, or raw with their bytes beside them. */
export function outputTensors(
  predictions: readonly Prediction[],
  names: readonly OutputName[],
  raw: boolean,
): { outputs: ModelInferResponse_InferOutputTensor[]; rawOutputContents: Buffer[] } {
  const outputs: ModelInferResponse_InferOutputTensor[] = [];
  const rawOutputContents: Buffer[] = [];
  const shape = [predictions.length];
  for (const name of names) {
    const datatype = name === "output" ? "BYTES" : "BOOL";
    if (raw) {
      outputs.push({ name, datatype, shape, parameters: {} });
      rawOutputContents.push(name === "output" ? rawBytes(predictions) : rawBools(predictions));
      continue;
    }
    const contents = emptyContents();
    if (name === "output") contents.bytesContents = predictions.map((p) => Buffer.from(p.output, "utf8"));
    else contents.boolContents = predictions.map((p) => p.isDefault);
    outputs.push({ name, datatype, shape, parameters: {}, contents });
  }
  return { outputs, rawOutputContents };
}

/** Each output as a 4-byte little-endian length and its UTF-8 bytes. */
function rawBytes(predictions: readonly Prediction[]): Buffer {
  let size = 0;
  for (const p of predictions) size += 4 + Buffer.byteLength(p.output, "utf8");
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const p of predictions) {
    const len = out.write(p.output, at + 4, "utf8");
    out.writeUInt32LE(len, at);
    at += 4 + len;
  }
  return out;
}

function rawBools(predictions: readonly Prediction[]): Buffer {
  const out = Buffer.allocUnsafe(predictions.length);
  for (let i = 0; i < predictions.length; i++) out[i] = predictions[i]!.isDefault ? 1 : 0;
  return out;
}

function emptyContents(): NonNullable<ModelInferResponse_InferOutputTensor["contents"]> {
  return { boolContents: [], intContents: [], int64Contents: [], uintContents: [], uint64Contents: [], fp32Contents: [], fp64Contents: [], bytesContents: [] };
}
