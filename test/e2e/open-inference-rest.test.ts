/**
 * The Open Inference Protocol's REST API on a real gateway process with
 * real workers: JSON bodies (nested and flat data), and the binary tensor
 * data extension with requests built and responses read exactly as
 * tritonclient's HTTP client does (tritonclient/http: the JSON part, then
 * the raw little-endian tensors, its length in Inference-Header-Content-Length).
 */
import test from "ava";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { eventually, ROOT } from "../helpers/processes.js";
import { deployOipCatalog } from "../helpers/oip-catalog.js";
import { Scrape } from "../helpers/prometheus.js";
import { Stack } from "../helpers/stack.js";

let stack: Stack;

test.before(async () => {
  stack = await Stack.start(["--cache-bytes", "0"]);
  await deployOipCatalog(stack);
  const seen = await eventually(async () => (await get("/v2/models/nolink")).status === 200, 15_000);
  if (!seen) throw new Error("the gateway did not learn of the apps");
});

test.after.always(async () => {
  await stack?.close();
});

const base = () => `http://127.0.0.1:${stack.gateway.http}`;

async function get(path: string): Promise<{ status: number; json: any }> {
  const res = await fetch(base() + path);
  return { status: res.status, json: await res.json() };
}

async function postJson(path: string, body: unknown): Promise<{ status: number; json: any; type: string | null }> {
  const res = await fetch(base() + path, { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body), headers: { "content-type": "application/json" } });
  return { status: res.status, json: await res.json(), type: res.headers.get("content-type") };
}

/** An input tensor as tritonclient's InferInput with set_data_from_numpy(binary_data=True) holds it. */
interface BinaryInput {
  readonly name: string;
  readonly shape: number[];
  readonly datatype: string;
  readonly bytes: Buffer;
}

/** tritonclient's serialize_byte_tensor: each element a little-endian uint32 length, then its bytes. */
function serializeBytes(items: readonly string[]): Buffer {
  return Buffer.concat(items.flatMap((s) => {
    const b = Buffer.from(s, "utf8");
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    return [len, b];
  }));
}

function fp64Bytes(values: readonly number[]): Buffer {
  const b = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => b.writeDoubleLE(v, i * 8));
  return b;
}

/**
 * POSTs an infer request as tritonclient's InferenceServerClient.infer
 * builds it: `{"inputs": [...], "outputs": [...]}` (each binary input with
 * parameters.binary_data_size, each requested output with
 * parameters.binary_data), or, with no outputs named,
 * `"parameters": {"binary_data_output": true}`; then the inputs' bytes; the
 * JSON's length in Inference-Header-Content-Length.
 */
async function tritonInfer(path: string, inputs: readonly BinaryInput[], outputs: readonly string[] | null, extra: Record<string, unknown> = {}) {
  const request: Record<string, unknown> = { ...extra };
  request.inputs = inputs.map((i) => ({ name: i.name, shape: i.shape, datatype: i.datatype, parameters: { binary_data_size: i.bytes.length } }));
  if (outputs !== null) request.outputs = outputs.map((name) => ({ name, parameters: { binary_data: true } }));
  else request.parameters = { ...(request.parameters as object | undefined), binary_data_output: true };
  const json = Buffer.from(JSON.stringify(request));
  const res = await fetch(base() + path, {
    method: "POST",
    body: Buffer.concat([json, ...inputs.map((i) => i.bytes)]),
    headers: { "Inference-Header-Content-Length": String(json.length) },
  });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** Reads a response as tritonclient's InferResult does: the JSON part, then each binary output's slice, in order. */
function tritonResult(headers: Headers, body: Buffer): { json: any; binary: Map<string, Buffer> } {
  const header = headers.get("inference-header-content-length");
  const length = header === null ? body.length : Number(header);
  const json = JSON.parse(body.subarray(0, length).toString("utf8"));
  const binary = new Map<string, Buffer>();
  let at = length;
  for (const output of json.outputs) {
    const size = output.parameters?.binary_data_size;
    if (size === undefined) continue;
    binary.set(output.name, body.subarray(at, at + size));
    at += size;
  }
  return { json, binary };
}

/** tritonclient's deserialize_bytes_tensor, elements as UTF-8 text. */
function deserializeBytes(b: Buffer): string[] {
  const out: string[] = [];
  for (let at = 0; at < b.length; ) {
    const n = b.readUInt32LE(at);
    out.push(b.toString("utf8", at + 4, at + 4 + n));
    at += 4 + n;
  }
  return out;
}

test.serial("server and model metadata, liveness and readiness", async (t) => {
  const version = (JSON.parse(readFileSync(resolve(ROOT, "package.json"), "utf8")) as { version: string }).version;
  t.deepEqual(await get("/v2"), { status: 200, json: { name: "clipper-ts", version, extensions: ["binary_tensor_data"] } });
  t.deepEqual(await get("/v2/health/live"), { status: 200, json: { live: true } });
  t.deepEqual(await get("/v2/health/ready"), { status: 200, json: { ready: true } });
  const meta = await get("/v2/models/d-app");
  t.is(meta.status, 200);
  t.deepEqual(meta.json, {
    name: "d-app",
    versions: ["1", "2"],
    platform: "clipper-ts",
    inputs: [{ name: "input", datatype: "FP64", shape: [-1, -1] }],
    outputs: [
      { name: "output", datatype: "BYTES", shape: [-1] },
      { name: "default", datatype: "BOOL", shape: [-1] },
    ],
  });
  t.is((await get("/v2/models/d-app/versions/2")).status, 200);
  const noVersion = await get("/v2/models/d-app/versions/9");
  t.is(noVersion.status, 404);
  t.regex(noVersion.json.error, /version: 9 does not exist/);
  const unknown = await get("/v2/models/nope");
  t.is(unknown.status, 404);
  t.regex(unknown.json.error, /'nope'/);
  t.deepEqual(await get("/v2/models/d-app/ready"), { status: 200, json: { name: "d-app", ready: true } });
  t.deepEqual(await get("/v2/models/d-app/versions/2/ready"), { status: 200, json: { name: "d-app", ready: true } });
  t.deepEqual(await get("/v2/models/nolink/ready"), { status: 503, json: { name: "nolink", ready: false } });
  t.deepEqual(await get("/v2/models/nope/ready"), { status: 503, json: { name: "nope", ready: false } });
});

test.serial("JSON infer with nested and flat data, BYTES for a strings app, a pinned version", async (t) => {
  const want = { output: ["Float64Array:1,2", "Float64Array:3,4", "Float64Array:5,6"], default: [false, false, false] };
  for (const data of [[[1, 2], [3, 4], [5, 6]], [1, 2, 3, 4, 5, 6]]) {
    const r = await postJson("/v2/models/d-app/infer", { id: "q1", inputs: [{ name: "input", shape: [3, 2], datatype: "FP64", data }] });
    t.is(r.status, 200, JSON.stringify(r.json));
    t.is(r.type, "application/json");
    t.deepEqual(r.json, {
      model_name: "d-app",
      model_version: "1",
      id: "q1",
      outputs: [
        { name: "output", datatype: "BYTES", shape: [3], data: want.output },
        { name: "default", datatype: "BOOL", shape: [3], data: want.default },
      ],
    });
  }
  const s = await postJson("/v2/models/s-app/infer", { inputs: [{ name: "t", shape: [2], datatype: "BYTES", data: ["héllo", "b"] }], outputs: [{ name: "output" }] });
  t.deepEqual(s.json.outputs, [{ name: "output", datatype: "BYTES", shape: [2], data: ["text:héllo", "text:b"] }]);
  const pinned = await postJson("/v2/models/d-app/versions/2/infer", { inputs: [{ name: "input", shape: [1, 1], datatype: "FP64", data: [[7]] }] });
  t.is(pinned.json.model_version, "2");
  const nolink = await postJson("/v2/models/nolink/infer", { inputs: [{ name: "input", shape: [1], datatype: "FP64", data: [1] }] });
  t.deepEqual(nolink.json.outputs.map((o: any) => o.data), [["none"], [true]]);
});

test.serial("binary request built as tritonclient builds it, binary response read as tritonclient reads it", async (t) => {
  const input: BinaryInput = { name: "INPUT0", shape: [3, 2], datatype: "FP64", bytes: fp64Bytes([1, 2, 3, 4, 5, 6]) };
  // Outputs named, each with binary_data: true.
  const named = await tritonInfer("/v2/models/d-app/infer", [input], ["output", "default"]);
  t.is(named.status, 200, named.body.toString());
  t.is(named.headers.get("content-type"), "application/octet-stream");
  const a = tritonResult(named.headers, named.body);
  t.deepEqual(a.json.outputs, [
    { name: "output", datatype: "BYTES", shape: [3], parameters: { binary_data_size: a.binary.get("output")!.length } },
    { name: "default", datatype: "BOOL", shape: [3], parameters: { binary_data_size: 3 } },
  ]);
  t.deepEqual(deserializeBytes(a.binary.get("output")!), ["Float64Array:1,2", "Float64Array:3,4", "Float64Array:5,6"]);
  t.deepEqual([...a.binary.get("default")!], [0, 0, 0]);
  t.is(named.body.length, Number(named.headers.get("inference-header-content-length")) + a.binary.get("output")!.length + 3, "nothing follows the binary outputs");

  // No outputs named: tritonclient asks for every output in binary through binary_data_output.
  const all = await tritonInfer("/v2/models/s-app/infer", [{ name: "TEXT", shape: [2, 1], datatype: "BYTES", bytes: serializeBytes(["x", "yz"]) }], null, { id: "7" });
  t.is(all.status, 200, all.body.toString());
  const b = tritonResult(all.headers, all.body);
  t.is(b.json.id, "7");
  t.deepEqual(deserializeBytes(b.binary.get("output")!), ["text:x", "text:yz"]);
  t.deepEqual([...b.binary.get("default")!], [0, 0]);

  // Binary input, JSON output: tritonclient's InferRequestedOutput(binary_data=False).
  const head = Buffer.from('{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP64","parameters":{"binary_data_size":16}}],"outputs":[{"name":"output","parameters":{"binary_data":false}}]}');
  const mixed = await fetch(base() + "/v2/models/d-app/infer", {
    method: "POST",
    body: Buffer.concat([head, fp64Bytes([8, 9])]),
    headers: { "Inference-Header-Content-Length": String(head.length) },
  });
  t.is(mixed.status, 200);
  t.is(mixed.headers.get("content-type"), "application/json");
  t.is(mixed.headers.get("inference-header-content-length"), null);
  t.deepEqual(((await mixed.json()) as any).outputs, [{ name: "output", datatype: "BYTES", shape: [1], data: ["Float64Array:8,9"] }]);
});

test.serial("REST errors are {\"error\"} with the status of their code", async (t) => {
  const input = (extra: object = {}) => ({ inputs: [{ name: "input", shape: [1, 2], datatype: "FP64", data: [1, 2], ...extra }] });
  const cases: [string, string | object, number, RegExp][] = [
    ["/v2/models/nope/infer", input(), 404, /'nope'/],
    ["/v2/models/d-app/versions/9/infer", input(), 404, /version: 9/],
    ["/v2/models/d-app/infer", "{not json", 400, /not JSON/],
    ["/v2/models/d-app/infer", { inputs: "x" }, 400, /"inputs" must be an array/],
    ["/v2/models/d-app/infer", input({ datatype: "FP32" }), 400, /input tensor 'input' has datatype 'FP32'.*send FP64/],
    ["/v2/models/d-app/infer", input({ shape: [2, 2] }), 400, /holds 4 elements, but its contents have 2/],
    ["/v2/models/d-app/infer", input({ data: [1, "2"] }), 400, /element 1 must be a number for FP64/],
    ["/v2/models/d-app/infer", input({ data: undefined }), 400, /has no "data"/],
    ["/v2/models/d-app/infer", { ...input(), parameters: { timeout: "soon" } }, 400, /parameter 'timeout' must be a non-negative int64/],
  ];
  for (const [path, body, status, message] of cases) {
    const r = await postJson(path, body);
    t.is(r.status, status, `${path} ${JSON.stringify(body)}: ${JSON.stringify(r.json)}`);
    t.deepEqual(Object.keys(r.json), ["error"]);
    t.regex(r.json.error, message);
  }
  // Binary framing mistakes.
  const header = '{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP64","parameters":{"binary_data_size":16}}]}';
  const framed = async (body: Buffer, length: string | null) => {
    const res = await fetch(base() + "/v2/models/d-app/infer", { method: "POST", body, headers: length === null ? {} : { "Inference-Header-Content-Length": length } });
    return { status: res.status, json: (await res.json()) as { error: string } };
  };
  const short = await framed(Buffer.concat([Buffer.from(header), fp64Bytes([1])]), String(header.length));
  t.is(short.status, 400);
  t.regex(short.json.error, /binary_data_size 16, but only 8 bytes/);
  const long = await framed(Buffer.from(header), "9999");
  t.is(long.status, 400);
  t.regex(long.json.error, /Inference-Header-Content-Length/);
  const noHeader = await framed(Buffer.concat([Buffer.from(header), fp64Bytes([1, 2])]), null);
  t.is(noHeader.status, 400);
  // Bounded bodies: past the limit, 413 without reading it all.
  const big = await fetch(base() + "/v2/models/d-app/infer", { method: "POST", body: Buffer.alloc(5 * 1024 * 1024, 32) });
  t.is(big.status, 413);
  t.regex(((await big.json()) as { error: string }).error, /larger than the limit/);
  // The gRPC deadline's REST twin and the timeout parameter.
  const slow = await postJson("/v2/models/slow-app/infer", { parameters: { timeout: 200_000 }, inputs: [{ name: "input", shape: [1, 1], datatype: "FP64", data: [1] }] });
  t.is(slow.status, 504);
  const wrongMethod = await fetch(base() + "/v2/models/d-app/infer");
  t.is(wrongMethod.status, 405);
  t.is(wrongMethod.headers.get("allow"), "POST");
});

test.serial("REST calls are counted under the RPC they serve, transport http, and each row as a query", async (t) => {
  const url = `${base()}/metrics`;
  const before = await Scrape.of(url);
  const labels = { method: "inference.GRPCInferenceService/ModelInfer", transport: "http", code: "OK" };
  const rows = (s: Scrape) => s.value("clipper_predictions_total", { app: "s-app", model: "describe-s", version: "1", outcome: "ok" }) ?? 0;
  const r = await postJson("/v2/models/s-app/infer", { inputs: [{ name: "t", shape: [3], datatype: "BYTES", data: ["p", "q", "r"] }] });
  t.is(r.status, 200);
  const after = await Scrape.of(url);
  t.is(after.value("clipper_rpc_calls_total", labels), (before.value("clipper_rpc_calls_total", labels) ?? 0) + 1);
  t.is(rows(after), rows(before) + 3);
});
