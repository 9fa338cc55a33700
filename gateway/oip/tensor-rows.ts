/**
 * An Open Inference Protocol input tensor cut into queries: the first
 * dimension is the batch, and each row becomes the raw bytes one query
 * carries to the model, exactly as `core/input-codec.ts` would have encoded
 * it from a Predict call (packed little-endian numbers, bytes as given,
 * strings as UTF-8). Raw rows are views of the caller's buffer, never
 * copies. Every refusal is a message naming the tensor and what to send.
 */
import { isUtf8 } from "node:buffer";
import type { InputType } from "../../core/input-types.js";
import type { InferTensorContents, ModelInferRequest_InferInputTensor } from "../../gen/inference/open_inference.js";

/** Most rows (queries) one call may carry: as many inputs as one PredictBatch call. */
export const MAX_ROWS = 1_000;

/** The OIP datatype of each input type. */
export const DATATYPE_OF: Readonly<Record<InputType, "FP64" | "FP32" | "INT32" | "BYTES">> = {
  doubles: "FP64",
  floats: "FP32",
  integers: "INT32",
  bytes: "BYTES",
  strings: "BYTES",
};

/** Bytes per element of the numeric datatypes an app takes. */
const ELEMENT_BYTES = { FP64: 8, FP32: 4, INT32: 4 } as const;

/** The typed-contents field each datatype travels in (the protocol's names, for messages). */
const CONTENTS_FIELD: Readonly<Record<string, keyof InferTensorContents>> = {
  BOOL: "boolContents",
  INT8: "intContents",
  INT16: "intContents",
  INT32: "intContents",
  INT64: "int64Contents",
  UINT8: "uintContents",
  UINT16: "uintContents",
  UINT32: "uintContents",
  UINT64: "uint64Contents",
  FP32: "fp32Contents",
  FP64: "fp64Contents",
  BYTES: "bytesContents",
};

const PROTO_NAME: Readonly<Record<keyof InferTensorContents, string>> = {
  boolContents: "bool_contents",
  intContents: "int_contents",
  int64Contents: "int64_contents",
  uintContents: "uint_contents",
  uint64Contents: "uint64_contents",
  fp32Contents: "fp32_contents",
  fp64Contents: "fp64_contents",
  bytesContents: "bytes_contents",
};

/** The rows of a tensor, or why it cannot be served. */
export type Rows = { readonly ok: true; readonly rows: Buffer[] } | { readonly ok: false; readonly error: string };

/**
 * Cuts `tensor` into one encoded query per row for an app of `type`.
 * `raw` is the tensor's entry of raw_input_contents, or null when its
 * elements are in `contents` (the caller has checked the two are not mixed).
 */
export function tensorRows(tensor: ModelInferRequest_InferInputTensor, raw: Buffer | null, type: InputType): Rows {
  const name = `input tensor '${tensor.name}'`;
  const want = DATATYPE_OF[type];
  if (tensor.datatype !== want) {
    return fail(`${name} has datatype '${tensor.datatype}', but the model takes ${type}: send ${want}`);
  }
  const badDim = tensor.shape.find((d) => !Number.isSafeInteger(d) || d < 0);
  if (badDim !== undefined) return fail(`${name} has shape ${shapeText(tensor.shape)}: every dimension must be a size of 0 or more`);
  const contents = raw === null ? typedElements(tensor, want) : null;
  if (contents !== null && !contents.ok) return contents;
  return want === "BYTES"
    ? byteRows(name, tensor.shape, raw, contents?.values as Buffer[] | undefined, type === "strings")
    : numericRows(name, want, tensor.shape, raw, contents?.values as number[] | undefined);
}

function numericRows(name: string, datatype: keyof typeof ELEMENT_BYTES, shape: readonly number[], raw: Buffer | null, typed: readonly number[] | undefined): Rows {
  if (shape.length !== 1 && shape.length !== 2) {
    return fail(`${name} has shape ${shapeText(shape)}; send [N, k] (N rows of k elements, one query each) or [k] (one query)`);
  }
  const n = shape.length === 2 ? shape[0]! : 1;
  const k = shape[shape.length - 1]!;
  const count = checkedRows(name, shape, n);
  if (count !== null) return count;
  if (k === 0) return fail(`${name} has shape ${shapeText(shape)}: a row needs at least one element`);
  const size = ELEMENT_BYTES[datatype];
  const rowBytes = k * size;
  if (raw !== null) {
    if (raw.length !== n * rowBytes) {
      return fail(`${name}: its raw contents are ${raw.length} bytes, but shape ${shapeText(shape)} of ${datatype} needs ${n * rowBytes} (${n * k} elements of ${size} bytes)`);
    }
    const rows = new Array<Buffer>(n);
    for (let i = 0; i < n; i++) rows[i] = raw.subarray(i * rowBytes, (i + 1) * rowBytes);
    return { ok: true, rows };
  }
  const values = typed ?? [];
  if (values.length !== n * k) return countMismatch(name, shape, n * k, values.length);
  const rows = new Array<Buffer>(n);
  for (let i = 0; i < n; i++) rows[i] = packRow(datatype, values, i * k, k);
  return { ok: true, rows };
}

function byteRows(name: string, shape: readonly number[], raw: Buffer | null, typed: readonly Buffer[] | undefined, text: boolean): Rows {
  // [N, 1] is how Triton models with one string per row are usually called.
  if (!(shape.length === 1 || (shape.length === 2 && shape[1] === 1))) {
    return fail(`${name} has shape ${shapeText(shape)}; send [N] (N elements, one query each) or [N, 1]`);
  }
  const n = shape[0]!;
  const count = checkedRows(name, shape, n);
  if (count !== null) return count;
  let rows: Buffer[];
  if (raw === null) {
    rows = [...(typed ?? [])];
    if (rows.length !== n) return countMismatch(name, shape, n, rows.length);
  } else {
    const parsed = splitLengthPrefixed(name, raw, n);
    if (!parsed.ok) return parsed;
    rows = parsed.rows;
  }
  for (let i = 0; i < rows.length; i++) {
    if (rows[i]!.length === 0) return fail(`${name}: element ${i} is empty; every query needs a non-empty input`);
    if (text && !isUtf8(rows[i]!)) return fail(`${name}: element ${i} is not valid UTF-8, and the model takes strings; send UTF-8 text (or use an app of input type bytes)`);
  }
  return { ok: true, rows };
}

/** BYTES in raw form: each element a 4-byte little-endian length, then its bytes. */
function splitLengthPrefixed(name: string, raw: Buffer, n: number): Rows {
  const rows: Buffer[] = [];
  let at = 0;
  while (at < raw.length) {
    if (rows.length === n) return fail(`${name}: its raw contents hold more than the ${n} elements its shape says`);
    if (at + 4 > raw.length) return fail(`${name}: its raw contents end inside the 4-byte length of element ${rows.length}; each BYTES element is a little-endian uint32 length, then its bytes`);
    const len = raw.readUInt32LE(at);
    at += 4;
    if (at + len > raw.length) return fail(`${name}: element ${rows.length} says ${len} bytes, but only ${raw.length - at} remain in its raw contents`);
    rows.push(raw.subarray(at, at + len));
    at += len;
  }
  if (rows.length !== n) return fail(`${name}: its raw contents hold ${rows.length} elements, but its shape says ${n}`);
  return { ok: true, rows };
}

/** The elements of a tensor sent typed, after checking they are in the datatype's own field and no other. */
function typedElements(tensor: ModelInferRequest_InferInputTensor, datatype: string): { ok: true; values: readonly unknown[] } | { ok: false; error: string } {
  const field = CONTENTS_FIELD[datatype]!;
  const contents = tensor.contents;
  if (contents === undefined) return { ok: true, values: [] };
  for (const key of Object.keys(PROTO_NAME) as (keyof InferTensorContents)[]) {
    if (key !== field && contents[key].length > 0) {
      return fail(`input tensor '${tensor.name}' sets contents.${PROTO_NAME[key]}, but ${datatype} elements go in contents.${PROTO_NAME[field]}`);
    }
  }
  return { ok: true, values: contents[field] };
}

function checkedRows(name: string, shape: readonly number[], n: number): Rows | null {
  if (n === 0) return fail(`${name} has shape ${shapeText(shape)}: it has no rows; send at least one`);
  if (n > MAX_ROWS) return fail(`${name} has ${n} rows; send at most ${MAX_ROWS} per call`);
  return null;
}

function countMismatch(name: string, shape: readonly number[], want: number, got: number): Rows {
  return fail(`${name} has shape ${shapeText(shape)}, which holds ${want} elements, but its contents have ${got}; make the shape and the data agree`);
}

/** One row of typed values packed as the model receives it (little-endian, as every supported platform is). */
function packRow(datatype: keyof typeof ELEMENT_BYTES, values: readonly number[], from: number, k: number): Buffer {
  const out = Buffer.allocUnsafe(k * ELEMENT_BYTES[datatype]);
  const view =
    datatype === "FP64" ? new Float64Array(out.buffer, out.byteOffset, k)
    : datatype === "FP32" ? new Float32Array(out.buffer, out.byteOffset, k)
    : new Int32Array(out.buffer, out.byteOffset, k);
  for (let j = 0; j < k; j++) view[j] = values[from + j]!;
  return out;
}

/** "[3, 2]". */
export function shapeText(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

function fail(error: string): { ok: false; error: string } {
  return { ok: false, error };
}
