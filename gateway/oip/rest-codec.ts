/**
 * The Open Inference Protocol's REST bodies ↔ the gRPC messages the
 * handlers take: an infer request as JSON (tensor `data` flat or nested) or
 * with the binary tensor data extension (the JSON part, its length in
 * `Inference-Header-Content-Length`, then each binary tensor's raw bytes in
 * input order), and the answer rendered back the same ways. Pure: no
 * sockets; each refusal is an error value naming the field and the fix.
 */
import type {
  InferParameter,
  InferTensorContents,
  ModelInferRequest,
  ModelInferRequest_InferInputTensor,
  ModelInferResponse,
} from "../../gen/inference/open_inference.js";

/** The header that says how many leading body bytes are the JSON part. */
export const HEADER_LENGTH_HEADER = "inference-header-content-length";

/** Deepest nesting of `data` arrays read (far beyond any real tensor's rank). */
const MAX_DATA_DEPTH = 32;

type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** An infer request read from REST, and which of its outputs go back as binary. */
export interface RestInferRequest {
  readonly message: ModelInferRequest;
  /** Binary or JSON per output name; `all` for outputs not named in `outputs`. */
  readonly binaryOutputs: ReadonlyMap<string, boolean>;
  readonly binaryByDefault: boolean;
}

/**
 * Reads an infer body. `headerLength` is the Inference-Header-Content-Length
 * value (undefined when absent). The message carries the model and version
 * given in the path; its `binary_data_output` parameter is set true so the
 * handler answers raw bytes, which rendering turns into JSON or binary parts.
 */
export function parseInferBody(body: Buffer, headerLength: string | undefined, model: string, version: string): Parsed<RestInferRequest> {
  let jsonPart = body;
  let binary: Buffer = Buffer.alloc(0);
  if (headerLength !== undefined) {
    const n = /^\d{1,10}$/.test(headerLength.trim()) ? Number(headerLength.trim()) : NaN;
    if (!(n <= body.length)) {
      return fail(`the Inference-Header-Content-Length header must be the length in bytes of the JSON part (0 to ${body.length}), got '${headerLength}'`);
    }
    jsonPart = body.subarray(0, n);
    binary = body.subarray(n);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(jsonPart.toString("utf8"));
  } catch (err) {
    return fail(`the request body is not JSON: ${(err as Error).message}${headerLength === undefined ? " (a body with binary tensors needs the Inference-Header-Content-Length header)" : ""}`);
  }
  if (!isObject(doc)) return fail("the request body must be a JSON object with \"inputs\"");
  if (doc["id"] !== undefined && typeof doc["id"] !== "string") return fail("\"id\" must be a string");
  const parameters = parseParameters(doc["parameters"], "parameters");
  if (!parameters.ok) return parameters;
  const binaryByDefault = parameters.value["binary_data_output"];
  if (binaryByDefault !== undefined && binaryByDefault.parameterChoice?.$case !== "boolParam") return fail("parameters.binary_data_output must be true or false");

  const inputsDoc = doc["inputs"];
  if (!Array.isArray(inputsDoc)) return fail("\"inputs\" must be an array of tensors: [{\"name\", \"shape\", \"datatype\", \"data\"}]");
  const inputs: ModelInferRequest_InferInputTensor[] = [];
  const raw: Buffer[] = [];
  let at = 0;
  for (let i = 0; i < inputsDoc.length; i++) {
    const input = parseInput(inputsDoc[i], `inputs[${i}]`);
    if (!input.ok) return input;
    const { tensor, binarySize } = input.value;
    if (binarySize !== null) {
      if (at + binarySize > binary.length) {
        return fail(`inputs[${i}] ('${tensor.name}') has binary_data_size ${binarySize}, but only ${binary.length - at} bytes of binary data follow the JSON part${headerLength === undefined ? " (send the Inference-Header-Content-Length header)" : ""}`);
      }
      raw.push(binary.subarray(at, at + binarySize));
      at += binarySize;
    }
    inputs.push(tensor);
  }
  if (raw.length > 0 && raw.length !== inputs.length) return fail("either every input tensor is sent as binary data or none is");
  if (at !== binary.length) return fail(`${binary.length - at} bytes of binary data follow the JSON part that no input's binary_data_size accounts for`);

  const outputsDoc = doc["outputs"] ?? [];
  if (!Array.isArray(outputsDoc)) return fail("\"outputs\" must be an array of {\"name\", \"parameters\"}");
  const binaryOutputs = new Map<string, boolean>();
  const outputs: ModelInferRequest["outputs"] = [];
  for (let i = 0; i < outputsDoc.length; i++) {
    const o: unknown = outputsDoc[i];
    if (!isObject(o) || typeof o["name"] !== "string") return fail(`outputs[${i}] must be an object with a string "name"`);
    const params = parseParameters(o["parameters"], `outputs[${i}].parameters`);
    if (!params.ok) return params;
    const binaryData = params.value["binary_data"]?.parameterChoice;
    if (binaryData !== undefined && binaryData.$case !== "boolParam") return fail(`outputs[${i}].parameters.binary_data must be true or false`);
    if (binaryData !== undefined) binaryOutputs.set(o["name"], binaryData.value);
    outputs.push({ name: o["name"], parameters: {} });
  }
  const message: ModelInferRequest = {
    modelName: model,
    modelVersion: version,
    id: (doc["id"] as string | undefined) ?? "",
    parameters: { ...parameters.value, binary_data_output: { parameterChoice: { $case: "boolParam", value: true } } },
    inputs,
    outputs,
    rawInputContents: raw,
  };
  return { ok: true, value: { message, binaryOutputs, binaryByDefault: binaryByDefault?.parameterChoice?.value === true } };
}

function parseInput(doc: unknown, where: string): Parsed<{ tensor: ModelInferRequest_InferInputTensor; binarySize: number | null }> {
  if (!isObject(doc)) return fail(`${where} must be an object with "name", "shape", "datatype" and "data"`);
  const { name, datatype, shape } = doc;
  if (typeof name !== "string") return fail(`${where}.name must be a string`);
  if (typeof datatype !== "string") return fail(`${where}.datatype must be a string such as "FP64" or "BYTES"`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d))) return fail(`${where}.shape must be an array of integers`);
  const params = parseParameters(doc["parameters"], `${where}.parameters`);
  if (!params.ok) return params;
  const size = params.value["binary_data_size"]?.parameterChoice;
  const tensor: ModelInferRequest_InferInputTensor = { name, datatype, shape: shape as number[], parameters: {} };
  if (size !== undefined) {
    if (size.$case !== "int64Param" || size.value < 0) return fail(`${where}.parameters.binary_data_size must be a byte count (an integer of 0 or more)`);
    if (doc["data"] !== undefined) return fail(`${where} has both "data" and binary_data_size; send its elements in one of the two`);
    return { ok: true, value: { tensor, binarySize: size.value } };
  }
  if (doc["data"] === undefined) return fail(`${where} has no "data" (nor parameters.binary_data_size for binary data)`);
  const contents = typedContents(doc["data"], datatype, `${where}.data`);
  if (!contents.ok) return contents;
  return { ok: true, value: { tensor: { ...tensor, contents: contents.value }, binarySize: null } };
}

/** Integer datatypes' bounds in JSON (64-bit ones to what a JSON number holds exactly). */
const INTEGER_RANGE: Readonly<Record<string, readonly [number, number, keyof InferTensorContents]>> = {
  INT8: [-128, 127, "intContents"],
  INT16: [-32768, 32767, "intContents"],
  INT32: [-(2 ** 31), 2 ** 31 - 1, "intContents"],
  INT64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, "int64Contents"],
  UINT8: [0, 255, "uintContents"],
  UINT16: [0, 65535, "uintContents"],
  UINT32: [0, 2 ** 32 - 1, "uintContents"],
  UINT64: [0, Number.MAX_SAFE_INTEGER, "uint64Contents"],
};

const FLOAT32_MAX = 3.4028234663852886e38;

/** `data` (flat or nested, row-major) as the typed contents of `datatype`. */
function typedContents(data: unknown, datatype: string, where: string): Parsed<InferTensorContents> {
  const flat = flatten(data, where);
  if (!flat.ok) return flat;
  const values = flat.value;
  const contents = emptyContents();
  const bad = (i: number, want: string): Parsed<InferTensorContents> => fail(`${where}: element ${i} must be ${want} for ${datatype}, got ${JSON.stringify(values[i])}`);
  if (datatype === "BYTES") {
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== "string") return bad(i, "a string");
      contents.bytesContents.push(Buffer.from(v, "utf8"));
    }
    return { ok: true, value: contents };
  }
  if (datatype === "BOOL") {
    for (let i = 0; i < values.length; i++) if (typeof values[i] !== "boolean") return bad(i, "true or false");
    contents.boolContents = values as boolean[];
    return { ok: true, value: contents };
  }
  if (datatype === "FP32" || datatype === "FP64") {
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== "number") return bad(i, "a number");
      if (datatype === "FP32" && Math.abs(v) > FLOAT32_MAX) return bad(i, "within the float32 range");
    }
    if (datatype === "FP32") contents.fp32Contents = values as number[];
    else contents.fp64Contents = values as number[];
    return { ok: true, value: contents };
  }
  const range = INTEGER_RANGE[datatype];
  if (range === undefined) {
    if (datatype === "FP16" || datatype === "BF16") return fail(`${where}: ${datatype} elements can only be sent as binary data (parameters.binary_data_size)`);
    return fail(`${where}: unknown datatype '${datatype}'; use BOOL, INT8-INT64, UINT8-UINT64, FP16, FP32, FP64 or BYTES`);
  }
  const [min, max, field] = range;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) return bad(i, `an integer from ${min} to ${max}`);
  }
  (contents[field] as number[]) = values as number[];
  return { ok: true, value: contents };
}

/** Nested arrays flattened row-major, without recursion (a hostile depth cannot exhaust the stack). */
function flatten(data: unknown, where: string): Parsed<unknown[]> {
  if (!Array.isArray(data)) return fail(`${where} must be an array of elements (flat or nested by the shape)`);
  const out: unknown[] = [];
  const stack: { arr: unknown[]; i: number }[] = [{ arr: data, i: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.i === top.arr.length) {
      stack.pop();
      continue;
    }
    const v = top.arr[top.i++];
    if (Array.isArray(v)) {
      if (stack.length === MAX_DATA_DEPTH) return fail(`${where} is nested more than ${MAX_DATA_DEPTH} deep`);
      stack.push({ arr: v, i: 0 });
    } else {
      out.push(v);
    }
  }
  return { ok: true, value: out };
}

/** A JSON parameters object as InferParameters: booleans, strings, integers (int64) and other numbers (double). */
function parseParameters(doc: unknown, where: string): Parsed<Record<string, InferParameter>> {
  if (doc === undefined) return { ok: true, value: {} };
  if (!isObject(doc)) return fail(`${where} must be an object`);
  const out: Record<string, InferParameter> = {};
  for (const [key, v] of Object.entries(doc)) {
    if (typeof v === "boolean") out[key] = { parameterChoice: { $case: "boolParam", value: v } };
    else if (typeof v === "string") out[key] = { parameterChoice: { $case: "stringParam", value: v } };
    else if (typeof v === "number" && Number.isSafeInteger(v)) out[key] = { parameterChoice: { $case: "int64Param", value: v } };
    else if (typeof v === "number") out[key] = { parameterChoice: { $case: "doubleParam", value: v } };
    else return fail(`${where}.${key} must be a boolean, a number or a string`);
  }
  return { ok: true, value: out };
}

/** A rendered infer answer: the body and its headers. */
export interface RestBody {
  readonly body: Buffer;
  readonly headers: Record<string, string>;
}

/**
 * The answer as REST: JSON alone, or (when any output goes binary) the
 * JSON part, then each binary output's bytes, with the JSON part's length
 * in Inference-Header-Content-Length. `response` carries raw outputs (the
 * request was parsed with binary_data_output set).
 */
export function renderInferResponse(response: ModelInferResponse, request: RestInferRequest): RestBody {
  const outputs: Record<string, unknown>[] = [];
  const parts: Buffer[] = [];
  response.outputs.forEach((o, i) => {
    const bytes = response.rawOutputContents[i] ?? Buffer.alloc(0);
    const entry: Record<string, unknown> = { name: o.name, datatype: o.datatype, shape: o.shape };
    if (request.binaryOutputs.get(o.name) ?? request.binaryByDefault) {
      entry.parameters = { binary_data_size: bytes.length };
      parts.push(bytes);
    } else {
      entry.data = o.datatype === "BYTES" ? splitStrings(bytes) : [...bytes].map((b) => b !== 0);
    }
    outputs.push(entry);
  });
  const doc: Record<string, unknown> = { model_name: response.modelName };
  if (response.modelVersion !== "") doc.model_version = response.modelVersion;
  if (response.id !== "") doc.id = response.id;
  doc.outputs = outputs;
  const json = Buffer.from(JSON.stringify(doc), "utf8");
  if (parts.length === 0) return { body: json, headers: { "content-type": "application/json" } };
  return {
    body: Buffer.concat([json, ...parts]),
    headers: { "content-type": "application/octet-stream", [HEADER_LENGTH_HEADER]: String(json.length) },
  };
}

/** Length-prefixed BYTES elements (as the handler wrote them) as strings. */
function splitStrings(raw: Buffer): string[] {
  const out: string[] = [];
  for (let at = 0; at + 4 <= raw.length; ) {
    const len = raw.readUInt32LE(at);
    out.push(raw.toString("utf8", at + 4, at + 4 + len));
    at += 4 + len;
  }
  return out;
}

function emptyContents(): InferTensorContents {
  return { boolContents: [], intContents: [], int64Contents: [], uintContents: [], uint64Contents: [], fp32Contents: [], fp64Contents: [], bytesContents: [] };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function fail(error: string): { ok: false; error: string } {
  return { ok: false, error };
}
