/** Cutting OIP input tensors into queries, and the REST codec, on their own (pure logic). */
import test from "ava";
import { parseInferBody, renderInferResponse } from "../../../gateway/oip/rest-codec.js";
import { outputTensors, requestedOutputs } from "../../../gateway/oip/output-tensors.js";
import { inferOptions } from "../../../gateway/oip/infer-parameters.js";
import { MAX_ROWS, tensorRows } from "../../../gateway/oip/tensor-rows.js";
import type { ModelInferRequest_InferInputTensor } from "../../../gen/inference/open_inference.js";

const tensor = (datatype: string, shape: number[], contents: Partial<NonNullable<ModelInferRequest_InferInputTensor["contents"]>> | null = null): ModelInferRequest_InferInputTensor => ({
  name: "x",
  datatype,
  shape,
  parameters: {},
  ...(contents === null
    ? {}
    : { contents: { boolContents: [], intContents: [], int64Contents: [], uintContents: [], uint64Contents: [], fp32Contents: [], fp64Contents: [], bytesContents: [], ...contents } }),
});

test("raw rows are views of the caller's buffer, one per row, in order", (t) => {
  const raw = Buffer.alloc(3 * 2 * 8);
  [1, 2, 3, 4, 5, 6].forEach((v, i) => raw.writeDoubleLE(v, i * 8));
  const r = tensorRows(tensor("FP64", [3, 2]), raw, "doubles");
  t.true(r.ok);
  if (!r.ok) return;
  t.deepEqual(r.rows.map((b) => [b.readDoubleLE(0), b.readDoubleLE(8)]), [[1, 2], [3, 4], [5, 6]]);
  t.is(r.rows[1]!.buffer, raw.buffer, "no copy");
});

test("typed rows are packed as the model receives them, for every numeric type", (t) => {
  const d = tensorRows(tensor("FP64", [2], { fp64Contents: [0.5, 2] }), null, "doubles");
  t.deepEqual(d.ok && [...new Float64Array(d.rows[0]!.buffer.slice(d.rows[0]!.byteOffset, d.rows[0]!.byteOffset + 16))], [0.5, 2]);
  const f = tensorRows(tensor("FP32", [2, 1], { fp32Contents: [1.5, -1] }), null, "floats");
  t.deepEqual(f.ok && f.rows.map((b) => b.readFloatLE(0)), [1.5, -1]);
  const i = tensorRows(tensor("INT32", [1, 2], { intContents: [-7, 9] }), null, "integers");
  t.deepEqual(i.ok && [i.rows[0]!.readInt32LE(0), i.rows[0]!.readInt32LE(4)], [-7, 9]);
});

test("BYTES: [N] and [N, 1], raw length-prefixed or typed; strings must be UTF-8 and non-empty", (t) => {
  const raw = Buffer.concat([Buffer.from([2, 0, 0, 0]), Buffer.from("hi"), Buffer.from([1, 0, 0, 0]), Buffer.from("x")]);
  const r = tensorRows(tensor("BYTES", [2, 1]), raw, "strings");
  t.deepEqual(r.ok && r.rows.map(String), ["hi", "x"]);
  const typed = tensorRows(tensor("BYTES", [1], { bytesContents: [Buffer.from([0xff])] }), null, "bytes");
  t.deepEqual(typed.ok && [...typed.rows[0]!], [0xff]);
  const notText = tensorRows(tensor("BYTES", [1], { bytesContents: [Buffer.from([0xff])] }), null, "strings");
  t.false(notText.ok);
  if (!notText.ok) t.regex(notText.error, /not valid UTF-8/);
  const empty = tensorRows(tensor("BYTES", [1], { bytesContents: [Buffer.alloc(0)] }), null, "bytes");
  t.false(empty.ok);
  const truncated = tensorRows(tensor("BYTES", [1]), Buffer.from([9, 0, 0, 0, 1]), "bytes");
  t.false(truncated.ok);
  if (!truncated.ok) t.regex(truncated.error, /says 9 bytes, but only 1 remain/);
  const wide = tensorRows(tensor("BYTES", [1, 2], { bytesContents: [Buffer.from("a"), Buffer.from("b")] }), null, "bytes");
  t.false(wide.ok);
});

test("refusals name the tensor and the fix", (t) => {
  const cases: [ModelInferRequest_InferInputTensor, Buffer | null, RegExp][] = [
    [tensor("FP32", [1], { fp32Contents: [1] }), null, /datatype 'FP32', but the model takes doubles: send FP64/],
    [tensor("FP64", [-1, 2]), null, /every dimension must be a size/],
    [tensor("FP64", [1, 0]), Buffer.alloc(0), /a row needs at least one element/],
    [tensor("FP64", [MAX_ROWS + 1, 1]), Buffer.alloc((MAX_ROWS + 1) * 8), new RegExp(`send at most ${MAX_ROWS}`)],
    [tensor("FP64", [2], { fp32Contents: [1, 2] }), null, /sets contents.fp32_contents, but FP64 elements go in contents.fp64_contents/],
    [tensor("FP64", [2]), Buffer.alloc(15), /raw contents are 15 bytes, but shape \[2\] of FP64 needs 16/],
  ];
  for (const [x, raw, message] of cases) {
    const r = tensorRows(x, raw, "doubles");
    t.false(r.ok);
    if (!r.ok) {
      t.regex(r.error, /^input tensor 'x'/);
      t.regex(r.error, message);
    }
  }
});

test("outputs: all by default, as asked otherwise; raw BYTES are length-prefixed and BOOL a byte each", (t) => {
  t.deepEqual(requestedOutputs([]), { ok: true, names: ["output", "default"] });
  t.deepEqual(requestedOutputs([{ name: "default", parameters: {} }]), { ok: true, names: ["default"] });
  t.false(requestedOutputs([{ name: "output", parameters: {} }, { name: "output", parameters: {} }]).ok);
  const p = (output: string, isDefault: boolean) => ({ queryId: 0, output, isDefault, defaultExplanation: "", model: "m", modelVersion: "1" });
  const raw = outputTensors([p("é", false), p("ab", true)], ["output", "default"], true);
  t.deepEqual([...raw.rawOutputContents[0]!], [2, 0, 0, 0, 0xc3, 0xa9, 2, 0, 0, 0, 0x61, 0x62]);
  t.deepEqual([...raw.rawOutputContents[1]!], [0, 1]);
  const typed = outputTensors([p("z", true)], ["default", "output"], false);
  t.deepEqual(typed.outputs.map((o) => [o.name, o.shape, o.contents?.boolContents, o.contents?.bytesContents.map(String)]), [
    ["default", [1], [true], []],
    ["output", [1], [], ["z"]],
  ]);
  t.is(typed.rawOutputContents.length, 0);
});

test("parameters: timeout in µs (int64 or uint64), binary_data_output a bool", (t) => {
  t.deepEqual(inferOptions({ timeout: { parameterChoice: { $case: "int64Param", value: 5000 } } }), { ok: true, value: { timeoutMicros: 5000, rawOutput: null } });
  t.deepEqual(inferOptions({ binary_data_output: { parameterChoice: { $case: "boolParam", value: false } }, priority: { parameterChoice: { $case: "uint64Param", value: 1 } } }), {
    ok: true,
    value: { timeoutMicros: 0, rawOutput: false },
  });
  t.false(inferOptions({ timeout: { parameterChoice: { $case: "int64Param", value: -1 } } }).ok);
  t.false(inferOptions({ timeout: { parameterChoice: { $case: "doubleParam", value: 1.5 } } }).ok);
  t.false(inferOptions({ binary_data_output: { parameterChoice: { $case: "int64Param", value: 1 } } }).ok);
});

test("REST: nested data is flattened row-major; JSON elements are checked against the datatype", (t) => {
  const body = (doc: unknown) => Buffer.from(JSON.stringify(doc));
  const nested = parseInferBody(body({ inputs: [{ name: "a", shape: [2, 2], datatype: "INT32", data: [[1, 2], [3, 4]] }] }), undefined, "m", "");
  t.true(nested.ok);
  if (nested.ok) {
    t.deepEqual(nested.value.message.inputs[0]!.contents!.intContents, [1, 2, 3, 4]);
    t.is(nested.value.message.modelName, "m");
    t.deepEqual(nested.value.message.parameters["binary_data_output"], { parameterChoice: { $case: "boolParam", value: true } }, "the handler answers raw; rendering decides");
  }
  for (const [datatype, data, message] of [
    ["INT32", [2 ** 31], /integer from/],
    ["INT8", [1.5], /integer from -128 to 127/],
    ["BOOL", [1], /true or false/],
    ["BYTES", [1], /a string/],
    ["FP16", [1], /only be sent as binary data/],
    ["COMPLEX", [1], /unknown datatype 'COMPLEX'/],
  ] as const) {
    const r = parseInferBody(body({ inputs: [{ name: "a", shape: [1], datatype, data }] }), undefined, "m", "");
    t.false(r.ok, datatype);
    if (!r.ok) t.regex(r.error, message);
  }
  let deep: unknown = [1];
  for (let i = 0; i < 100; i++) deep = [deep];
  const tooDeep = parseInferBody(body({ inputs: [{ name: "a", shape: [1], datatype: "FP64", data: deep }] }), undefined, "m", "");
  t.false(tooDeep.ok);
});

test("REST: binary inputs are sliced in input order; every byte must be accounted for", (t) => {
  const json = Buffer.from(JSON.stringify({ inputs: [{ name: "a", shape: [1], datatype: "FP64", parameters: { binary_data_size: 8 } }] }));
  const ok = parseInferBody(Buffer.concat([json, Buffer.alloc(8, 1)]), String(json.length), "m", "");
  t.true(ok.ok);
  if (ok.ok) t.deepEqual([...ok.value.message.rawInputContents[0]!], [1, 1, 1, 1, 1, 1, 1, 1]);
  const extra = parseInferBody(Buffer.concat([json, Buffer.alloc(9)]), String(json.length), "m", "");
  t.false(extra.ok);
  if (!extra.ok) t.regex(extra.error, /1 bytes of binary data follow the JSON part that no input/);
  t.false(parseInferBody(json, "-1", "m", "").ok);
  t.false(parseInferBody(json, "1e3", "m", "").ok);
});

test("REST: the answer is JSON, or JSON then binary parts with their sizes", (t) => {
  const response = {
    modelName: "m",
    modelVersion: "",
    id: "",
    parameters: {},
    outputs: [
      { name: "output", datatype: "BYTES", shape: [1], parameters: {} },
      { name: "default", datatype: "BOOL", shape: [1], parameters: {} },
    ],
    rawOutputContents: [Buffer.from([1, 0, 0, 0, 0x41]), Buffer.from([1])],
  };
  const request = (binary: Map<string, boolean>, all: boolean) => ({ message: {} as never, binaryOutputs: binary, binaryByDefault: all });
  const json = renderInferResponse(response, request(new Map(), false));
  t.deepEqual(JSON.parse(json.body.toString()), {
    model_name: "m",
    outputs: [
      { name: "output", datatype: "BYTES", shape: [1], data: ["A"] },
      { name: "default", datatype: "BOOL", shape: [1], data: [true] },
    ],
  });
  const mixed = renderInferResponse(response, request(new Map([["default", true]]), false));
  const n = Number(mixed.headers["inference-header-content-length"]);
  t.is(mixed.headers["content-type"], "application/octet-stream");
  t.deepEqual(JSON.parse(mixed.body.subarray(0, n).toString()).outputs[1], { name: "default", datatype: "BOOL", shape: [1], parameters: { binary_data_size: 1 } });
  t.deepEqual([...mixed.body.subarray(n)], [1]);
});
