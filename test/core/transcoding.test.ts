import { readFileSync } from "node:fs";
import test from "ava";
import { create, fromBinary, setExtension, toBinary, type DescMessage } from "@bufbuild/protobuf";
import {
  DescriptorProtoSchema,
  EnumDescriptorProtoSchema,
  EnumValueDescriptorProtoSchema,
  FieldDescriptorProtoSchema,
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  MethodDescriptorProtoSchema,
  MethodOptionsSchema,
  ServiceDescriptorProtoSchema,
  type FieldDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import { AdminService, type App, type CreateAppRequest, type GetModelRequest, type ListModelsRequest, type ListReplicasRequest } from "../../gen/clipper/v1/admin.js";
import { PredictService, type PredictRequest, type PredictResponse } from "../../gen/clipper/v1/predict.js";
import type { CallContext } from "../../core/call-context.js";
import { ServingError, notFound } from "../../core/errors.js";
import { startHttpServer, type RunningHttpServer } from "../../core/servers/http-server.js";
import { requestTarget } from "../../core/servers/request-target.js";
import type { UnaryServiceBinding } from "../../core/service-binding.js";
import { createTranscoder, loadDescriptorRegistry, matchPathTemplate, parsePathTemplate, readHttpBindings, type HttpBinding } from "../../core/transcoding/index.js";

const DESCRIPTORS = readFileSync(new URL("../../gen/descriptors.binpb", import.meta.url));
/** Body limit of the test server, in bytes: small so the 413 test sends little. */
const MAX_BODY_BYTES = 1024;

/** Promise.withResolvers is Node 22+; this is the Node 20 spelling. */
function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const seen: {
  ctx: CallContext | null;
  getModel: GetModelRequest | null;
  listModels: ListModelsRequest | null;
  listReplicas: ListReplicasRequest | null;
  predict: PredictRequest | null;
  internal: { err: unknown; route: string }[];
} = { ctx: null, getModel: null, listModels: null, listReplicas: null, predict: null, internal: [] };

/** Lets the disconnect test see the handler start and its signal abort. */
const disconnect = { entered: deferred<void>(), aborted: deferred<unknown>() };

const appOf = (r: CreateAppRequest): App => ({ ...r, linkedModels: [], policy: "", ready: false, liveReplicas: 0 });

const admin: UnaryServiceBinding = {
  name: "clipper.v1.Admin",
  definition: AdminService,
  handlers: {
    createApp: async (r: CreateAppRequest) => ({ app: appOf(r) }),
    getApp: async (r: { name: string }, ctx: CallContext) => {
      if (r.name === "slow") {
        disconnect.entered.resolve();
        await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
        disconnect.aborted.resolve(ctx.signal.reason);
        throw ctx.signal.reason;
      }
      throw notFound("APP_NOT_FOUND", `app '${r.name}' does not exist`);
    },
    deleteApp: async () => {
      throw new Error("redis password is hunter2");
    },
    listApps: async (_r: unknown, ctx: CallContext) => {
      seen.ctx = ctx;
      if (ctx.metadata.get("wait") === "abort") {
        await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
      }
      return { apps: [] };
    },
    getModel: async (r: GetModelRequest) => {
      seen.getModel = r;
      return { model: { name: r.name, version: r.version, inputType: "", labels: [], containerName: "", modelDataPath: "", batchSize: 0, isCurrentVersion: false, valid: true } };
    },
    listModels: async (r: ListModelsRequest) => {
      seen.listModels = r;
      return { models: [] };
    },
    listReplicas: async (r: ListReplicasRequest) => {
      seen.listReplicas = r;
      return { replicas: [] };
    },
    getReplica: async (r: { modelName: string; modelVersion: string; replicaId: number }) => ({
      replica: { modelId: `${r.modelName}:${r.modelVersion}`, modelName: r.modelName, modelVersion: r.modelVersion, replicaId: r.replicaId, inputType: "", zmqConnectionId: 0 },
    }),
  },
};

const predict: UnaryServiceBinding = {
  name: "clipper.v1.Predict",
  definition: PredictService,
  handlers: {
    predict: async (r: PredictRequest): Promise<PredictResponse> => {
      seen.predict = r;
      return { queryId: 42, output: r.input?.bytes.toString("utf8") ?? "", default: false, defaultExplanation: "", model: "m1", modelVersion: "" };
    },
  },
};

// Handlers record what they saw in `seen`; tests that read it run serially
// (ava runs serial tests before the concurrent ones), so no other call overwrites it.
let server: RunningHttpServer;

test.before(async () => {
  const table = createTranscoder([admin, predict], {
    maxBodyBytes: MAX_BODY_BYTES,
    onError: (err, route) => seen.internal.push({ err, route }),
  });
  server = await startHttpServer([table], { host: "127.0.0.1", port: 0 });
});

test.after.always(async () => {
  await server?.close();
});

const url = (path: string): string => `http://127.0.0.1:${server.port}${path}`;

async function call(method: string, path: string, init: { body?: string; headers?: Record<string, string> } = {}) {
  const res = await fetch(url(path), { method, body: init.body, headers: { "content-type": "application/json", ...init.headers } });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: JSON.parse(text) as Record<string, unknown> };
}

test("POST with body '*' builds the request from the JSON object and emits every response field", async (t) => {
  const r = await call("POST", "/v1/apps", { body: JSON.stringify({ name: "a1", inputType: "doubles", latencySloMicros: 100000 }) });
  t.is(r.status, 200);
  t.is(r.headers.get("content-type"), "application/json");
  t.deepEqual(r.json, {
    app: { name: "a1", inputType: "doubles", defaultOutput: "", latencySloMicros: 100000, linkedModels: [], policy: "", ready: false, liveReplicas: 0 },
  });
});

test("JSON field names are accepted in their original snake_case spelling too", async (t) => {
  const r = await call("POST", "/v1/apps", { body: JSON.stringify({ name: "a2", input_type: "ints", latency_slo_micros: "5" }) });
  t.is(r.status, 200);
  t.like(r.json, { app: { name: "a2", inputType: "ints", latencySloMicros: 5 } });
});

test("an empty body for body '*' is an empty message", async (t) => {
  const r = await call("POST", "/v1/apps", { body: "" });
  t.is(r.status, 200);
  t.like(r.json, { app: { name: "", latencySloMicros: 0 } });
});

test.serial("path variables are percent-decoded", async (t) => {
  const r = await call("GET", "/v1/models/my%20model/versions/v%2F1");
  t.is(r.status, 200);
  t.is(seen.getModel?.name, "my model");
  t.is(seen.getModel?.version, "v/1");
  t.like(r.json, { model: { name: "my model", version: "v/1", valid: true, isCurrentVersion: false } });
});

test("an int32 path variable is converted, and a non-number is INVALID_ARGUMENT", async (t) => {
  const ok = await call("GET", "/v1/models/m/versions/1/replicas/7");
  t.is(ok.status, 200);
  t.like(ok.json, { replica: { replicaId: 7, modelId: "m:1" } });
  const bad = await call("GET", "/v1/models/m/versions/1/replicas/seven");
  t.is(bad.status, 400);
  t.is(bad.json.code, 3);
  t.regex(String(bad.json.message), /replica_id/);
});

test.serial("query parameters fill the non-path fields, in either spelling", async (t) => {
  t.is((await call("GET", "/v1/models?name=x")).status, 200);
  t.is(seen.listModels?.name, "x");
  t.is((await call("GET", "/v1/replicas?modelName=m&model_version=1")).status, 200);
  t.deepEqual(seen.listReplicas, { modelName: "m", modelVersion: "1" });
});

test("an unknown query parameter is INVALID_ARGUMENT naming it", async (t) => {
  const r = await call("GET", "/v1/models?nmae=x");
  t.is(r.status, 400);
  t.is(r.json.code, 3);
  t.regex(String(r.json.message), /nmae/);
});

test.serial("predict: path and body merge, bytes are base64, int64 is rendered as a string, defaults are emitted", async (t) => {
  const r = await call("POST", "/v1/apps/a1:predict", { body: JSON.stringify({ input: { bytes: Buffer.from("hello").toString("base64") } }) });
  t.is(r.status, 200);
  t.is(seen.predict?.app, "a1");
  t.is(seen.predict?.input?.bytes.toString("utf8"), "hello");
  t.deepEqual(r.json, { queryId: "42", output: "hello", default: false, defaultExplanation: "", model: "m1", modelVersion: "" });
});

test.serial("the path wins over the same field in the body", async (t) => {
  const r = await call("POST", "/v1/apps/a1:predict", { body: JSON.stringify({ app: "other", input: { text: "x" } }) });
  t.is(r.status, 200);
  t.is(seen.predict?.app, "a1");
});

test("an unknown JSON field is INVALID_ARGUMENT naming it (unlike grpc-gateway, which discards it)", async (t) => {
  const r = await call("POST", "/v1/apps", { body: JSON.stringify({ name: "a1", inputTyp: "doubles" }) });
  t.is(r.status, 400);
  t.is(r.json.code, 3);
  t.deepEqual(r.json.details, []);
  t.regex(String(r.json.message), /inputTyp/);
});

test("invalid JSON is INVALID_ARGUMENT with the parse error", async (t) => {
  const r = await call("POST", "/v1/apps", { body: "{name:" });
  t.is(r.status, 400);
  t.is(r.json.code, 3);
  t.regex(String(r.json.message), /^invalid JSON body: /);
});

test("a JSON body that is not an object is INVALID_ARGUMENT", async (t) => {
  const r = await call("POST", "/v1/apps", { body: "[1]" });
  t.is(r.status, 400);
  t.is(r.json.code, 3);
});

test("query parameters on a body '*' method are refused", async (t) => {
  const r = await call("POST", "/v1/apps/a1:predict?version=2", { body: "{}" });
  t.is(r.status, 400);
  t.regex(String(r.json.message), /version/);
});

test("a known path with the wrong method is 405 with Allow and UNIMPLEMENTED", async (t) => {
  const r = await call("PUT", "/v1/apps");
  t.is(r.status, 405);
  t.deepEqual(r.headers.get("allow")?.split(", ").sort(), ["GET", "POST"]);
  t.is(r.json.code, 12);
});

test("an unknown path is not matched, so the server answers 404 NOT_FOUND", async (t) => {
  const table = createTranscoder([admin], { descriptors: DESCRIPTORS });
  t.is(table.match("GET", new URL("http://x/v2/apps")), null);
  t.is(table.match("GET", new URL("http://x/v1/apps/a/b/c")), null);
  t.is(table.match("GET", new URL("http://x/v1/apps/a1"))?.kind, "handler");
  const r = await call("GET", "/v2/nothing");
  t.is(r.status, 404);
  t.is(r.json.code, 5);
});

test("with subjectField, a route whose path captures that field names the decoded value as its match's subject; other routes name none", (t) => {
  const table = createTranscoder([admin, predict], { descriptors: DESCRIPTORS, subjectField: "app" });
  const subjectOf = (method: string, path: string) => {
    const m = table.match(method, requestTarget(path));
    return m?.kind === "handler" ? m.subject : "no handler";
  };
  t.is(subjectOf("POST", "/v1/apps/a1:predict"), "a1");
  t.is(subjectOf("POST", "/v1/apps/caf%C3%A9:predict"), "café");
  t.is(subjectOf("POST", "/v1/apps/%E0%A4%A:predict"), undefined, "malformed percent-encoding names none (binding refuses it)");
  t.is(subjectOf("GET", "/v1/apps/a1"), undefined, "GetApplication captures name, not app");
  const plain = createTranscoder([predict], { descriptors: DESCRIPTORS });
  const m = plain.match("POST", requestTarget("/v1/apps/a1:predict"));
  t.is(m?.kind === "handler" ? m.subject : "no handler", undefined, "without subjectField no route names one");
});

test.serial("Grpc-Timeout sets ctx.deadline; Grpc-Metadata-*, traceparent and authorization become metadata", async (t) => {
  const before = Date.now();
  const r = await call("GET", "/v1/apps", {
    headers: { "grpc-timeout": "100m", "grpc-metadata-foo": "bar", traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", authorization: "Bearer t", "x-other": "no" },
  });
  const after = Date.now();
  t.is(r.status, 200);
  t.deepEqual(r.json, { apps: [] });
  const ctx = seen.ctx!;
  t.is(ctx.transport, "http");
  t.true(ctx.deadline >= before + 100, `deadline ${ctx.deadline - before} ms after the request`);
  t.true(ctx.deadline <= after + 100, `deadline ${ctx.deadline - after} ms after the answer`);
  t.is(ctx.metadata.get("foo"), "bar");
  t.is(ctx.metadata.get("traceparent"), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  t.is(ctx.metadata.get("authorization"), "Bearer t");
  t.false(ctx.metadata.has("x-other"));
  t.is(ctx.peer, "127.0.0.1");
});

test.serial("an explicit Grpc-Metadata-<name> wins over the plain header, in lookups and in the full map", async (t) => {
  const r = await call("GET", "/v1/apps", {
    headers: { traceparent: "plain", "grpc-metadata-traceparent": "explicit", "grpc-metadata-tracestate": "ts", authorization: "Bearer a" },
  });
  t.is(r.status, 200);
  const metadata = seen.ctx!.metadata;
  t.is(metadata.get("traceparent"), "explicit");
  t.is(metadata.get("tracestate"), "ts");
  t.is(metadata.get("authorization"), "Bearer a");
  t.is(metadata.get("content-type"), undefined);
  t.is(metadata.get(""), undefined);
  const all = new Map(metadata);
  t.deepEqual(Object.fromEntries(all), { traceparent: "explicit", tracestate: "ts", authorization: "Bearer a" });
});

test.serial("no Grpc-Timeout means no deadline", async (t) => {
  t.is((await call("GET", "/v1/apps")).status, 200);
  t.is(seen.ctx?.deadline, Infinity);
});

test("an invalid Grpc-Timeout is INVALID_ARGUMENT with the parse error", async (t) => {
  const r = await call("GET", "/v1/apps", { headers: { "grpc-timeout": "soon" } });
  t.is(r.status, 400);
  t.is(r.json.code, 3);
  t.regex(String(r.json.message), /Grpc-Timeout/);
});

test("a passed deadline aborts the handler's signal and answers 504 DEADLINE_EXCEEDED", async (t) => {
  const r = await call("GET", "/v1/apps", { headers: { "grpc-timeout": "1m", "grpc-metadata-wait": "abort" } });
  t.is(r.status, 504);
  t.is(r.json.code, 4);
});

test("a client that disconnects aborts the handler's signal with CANCELLED", async (t) => {
  const client = new AbortController();
  const pending = fetch(url("/v1/apps/slow"), { signal: client.signal }).catch(() => null);
  await disconnect.entered.promise;
  client.abort();
  t.is(await pending, null);
  const reason = await disconnect.aborted.promise;
  t.true(reason instanceof ServingError);
  t.is((reason as ServingError).code, 1);
  // The server keeps serving after the disconnect.
  t.is((await call("GET", "/v1/apps")).status, 200);
});

test("a ServingError from a handler keeps its code and message", async (t) => {
  const r = await call("GET", "/v1/apps/nope");
  t.is(r.status, 404);
  t.deepEqual(r.json, { code: 5, message: "app 'nope' does not exist", details: [] });
});

test("a plain Error from a handler is 500 'internal error', reported to onError and not leaked", async (t) => {
  const r = await call("DELETE", "/v1/apps/a1");
  t.is(r.status, 500);
  t.deepEqual(r.json, { code: 13, message: "internal error", details: [] });
  const reported = seen.internal.find((e) => e.err instanceof Error && e.err.message.includes("hunter2"));
  t.truthy(reported);
  t.regex(reported!.route, /DELETE \/v1\/apps\/\{name\}/);
});

test("a method without a handler is 501 UNIMPLEMENTED", async (t) => {
  const r = await call("GET", "/v1/apps/a1/state");
  t.is(r.status, 501);
  t.is(r.json.code, 12);
});

test("a body over maxBodyBytes is 413", async (t) => {
  const r = await call("POST", "/v1/apps", { body: JSON.stringify({ name: "x".repeat(MAX_BODY_BYTES * 2) }) });
  t.is(r.status, 413);
  t.is(r.json.code, 8);
});

// ---------------------------------------------------------------------------
// Rules the clipper protos do not use (body: "field", response_body,
// additional_bindings, '**', nested, repeated, enum and bool query values),
// served from a descriptor set built here. Its codecs pass the wire bytes
// through, so the handler decodes with @bufbuild/protobuf.
// ---------------------------------------------------------------------------

const BASE = fromBinary(FileDescriptorSetSchema, DESCRIPTORS);
const BASE_REGISTRY = loadDescriptorRegistry(DESCRIPTORS);

function field(name: string, number: number, type: Type, extra: { label?: Label; typeName?: string } = {}): FieldDescriptorProto {
  // protoc and buf always fill json_name; the registry takes it as given.
  return create(FieldDescriptorProtoSchema, { name, jsonName: name, number, type, label: Label.OPTIONAL, ...extra });
}

/** A descriptor set with the base files plus test/v1/synth.proto, whose service Synth has one method Echo with `rule`. */
function synthDescriptors(rule: Record<string, unknown>): Uint8Array {
  const http = BASE_REGISTRY.getExtension("google.api.http")!;
  const ruleSchema = BASE_REGISTRY.getMessage("google.api.HttpRule")!;
  const options = create(MethodOptionsSchema);
  // The registry's untyped descriptors give no static types to check here.
  setExtension(options as never, http as never, create(ruleSchema, rule) as never);
  const file = create(FileDescriptorProtoSchema, {
    name: "test/v1/synth.proto",
    package: "test.v1",
    dependency: ["google/api/annotations.proto"],
    syntax: "proto3",
    enumType: [
      create(EnumDescriptorProtoSchema, {
        name: "Color",
        value: [["COLOR_UNSPECIFIED", 0], ["RED", 1], ["BLUE", 2]].map(([name, number]) =>
          create(EnumValueDescriptorProtoSchema, { name: name as string, number: number as number }),
        ),
      }),
    ],
    messageType: [
      create(DescriptorProtoSchema, { name: "Sub", field: [field("note", 1, Type.STRING), field("big", 2, Type.INT64)] }),
      create(DescriptorProtoSchema, { name: "Payload", field: [field("text", 1, Type.STRING)] }),
      create(DescriptorProtoSchema, {
        name: "EchoRequest",
        field: [
          field("id", 1, Type.STRING),
          field("payload", 2, Type.MESSAGE, { typeName: ".test.v1.Payload" }),
          field("nums", 3, Type.INT32, { label: Label.REPEATED }),
          field("flag", 4, Type.BOOL),
          field("color", 5, Type.ENUM, { typeName: ".test.v1.Color" }),
          field("sub", 6, Type.MESSAGE, { typeName: ".test.v1.Sub" }),
          field("path", 7, Type.STRING),
        ],
      }),
    ],
    service: [
      create(ServiceDescriptorProtoSchema, {
        name: "Synth",
        method: [create(MethodDescriptorProtoSchema, { name: "Echo", inputType: ".test.v1.EchoRequest", outputType: ".test.v1.EchoRequest", options })],
      }),
    ],
  });
  return toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: [...BASE.file, file] }));
}

const ECHO_RULE = {
  pattern: { case: "post", value: "/v1/echo/{id}" },
  body: "payload",
  responseBody: "payload",
  additionalBindings: [{ pattern: { case: "get", value: "/v1/echo/{id}/files/{path=**}" } }],
};

function synthBinding(onRequest: (bytes: Buffer) => void): UnaryServiceBinding {
  const passThrough = (b: Buffer): Buffer => b;
  return {
    name: "test.v1.Synth",
    definition: {
      echo: {
        path: "/test.v1.Synth/Echo",
        requestStream: false,
        responseStream: false,
        requestSerialize: passThrough,
        requestDeserialize: passThrough,
        responseSerialize: passThrough,
        responseDeserialize: passThrough,
      },
    },
    handlers: {
      echo: async (bytes: Buffer) => {
        onRequest(bytes);
        return bytes;
      },
    },
  };
}

test("body 'field', response_body, additional_bindings, '**' and typed query values", async (t) => {
  const descriptors = synthDescriptors(ECHO_RULE);
  const schema = loadDescriptorRegistry(descriptors).getMessage("test.v1.EchoRequest") as DescMessage;
  let last: Record<string, unknown> = {};
  const table = createTranscoder([synthBinding((b) => (last = fromBinary(schema, b) as unknown as Record<string, unknown>))], { descriptors });
  const srv = await startHttpServer([table], { host: "127.0.0.1", port: 0 });
  t.teardown(() => srv.close());
  const base = `http://127.0.0.1:${srv.port}`;

  const post = await fetch(`${base}/v1/echo/abc?nums=1&nums=2&flag=true&color=BLUE&sub.note=hi&sub.big=9007199254740993`, {
    method: "POST",
    body: JSON.stringify({ text: "t" }),
  });
  t.is(post.status, 200);
  t.deepEqual(await post.json(), { text: "t" });
  t.like(last, { id: "abc", nums: [1, 2], flag: true, color: 2, payload: { text: "t" }, sub: { note: "hi", big: 9007199254740993n } });

  const get = await fetch(`${base}/v1/echo/x%20y/files/a/b%2Fc/d?color=1&flag=0`);
  t.is(get.status, 200);
  t.deepEqual(await get.json(), { id: "x y", nums: [], flag: false, color: "RED", path: "a/b%2Fc/d" });

  for (const [query, pattern] of [
    ["flag=maybe", /boolean/],
    ["flag=true&flag=false", /given 2 times/],
    ["sub=x", /message/],
    ["nope=1", /nope/],
    ["color=GREEN", /Color/],
  ] as const) {
    const r = await fetch(`${base}/v1/echo/abc/files/f?${query}`);
    t.is(r.status, 400, query);
    t.regex(((await r.json()) as { message: string }).message, pattern, query);
  }
});

test("construction fails loudly on a rule naming an unknown field or an unknown service", (t) => {
  const binding = synthBinding(() => {});
  t.throws(() => createTranscoder([binding], { descriptors: synthDescriptors({ pattern: { case: "get", value: "/v1/echo/{nmae}" } }) }), {
    message: /nmae/,
  });
  t.throws(() => createTranscoder([binding], { descriptors: synthDescriptors({ pattern: { case: "post", value: "/v1/echo" }, body: "paylod" }) }), {
    message: /paylod/,
  });
  t.throws(() => createTranscoder([binding], { descriptors: synthDescriptors({ pattern: { case: "get", value: "/v1/echo/{sub}" } }) }), {
    message: /singular scalar/,
  });
  t.throws(() => createTranscoder([binding], { descriptors: synthDescriptors({ pattern: { case: "get", value: "/v1/echo" }, body: "*" }) }), {
    message: /GET rule cannot have a body/,
  });
  t.throws(() => createTranscoder([binding], { descriptors: synthDescriptors({ pattern: { case: "get", value: "/v1/{id}/**/x" } }) }), {
    message: /'\*\*' must be the last segment/,
  });
  t.throws(() => createTranscoder([binding], { descriptors: DESCRIPTORS }), { message: /test\.v1\.Synth is not in the descriptor set/ });
});

test("readHttpBindings flattens additional_bindings after the rule", (t) => {
  const registry = loadDescriptorRegistry(synthDescriptors(ECHO_RULE));
  const method = registry.getService("test.v1.Synth")!.methods[0]!;
  const expected: HttpBinding[] = [
    { httpMethod: "POST", pathTemplate: "/v1/echo/{id}", body: "payload", responseBody: "payload" },
    { httpMethod: "GET", pathTemplate: "/v1/echo/{id}/files/{path=**}", body: "", responseBody: "" },
  ];
  t.deepEqual(readHttpBindings(registry, method), expected);
});

test("path templates: verbs, '*', '**' and multi-segment variables", (t) => {
  const predict = parsePathTemplate("/v1/apps/{app}:predict");
  t.is(predict.verb, "predict");
  t.deepEqual(matchPathTemplate(predict, "/v1/apps/a%201:predict"), ["a%201"]);
  t.is(matchPathTemplate(predict, "/v1/apps/a1"), null);
  t.is(matchPathTemplate(predict, "/v1/apps/:predict"), null);
  t.is(matchPathTemplate(predict, "/v1/apps/a/b:predict"), null);

  const named = parsePathTemplate("/v1/{name=projects/*/models/*}/x/*");
  t.deepEqual(named.variables, [{ fieldPath: "name", start: 1, end: 5, multiSegment: true }]);
  t.deepEqual(matchPathTemplate(named, "/v1/projects/p/models/m/x/y"), ["projects/p/models/m"]);
  t.is(matchPathTemplate(named, "/v1/projects/p/other/m/x/y"), null);

  const rest = parsePathTemplate("/files/{sub.path=**}");
  t.deepEqual(matchPathTemplate(rest, "/files/a/b/c"), ["a/b/c"]);
  t.deepEqual(matchPathTemplate(rest, "/files"), [""]);

  for (const bad of ["v1/x", "/v1/{x", "/v1/{a}{b}", "/v1/{x}/{x}", "/v1/**/y", "/v1/{x=a/{y}}", "/v1/x:", "/v1//x"]) {
    t.throws(() => parsePathTemplate(bad), { message: /invalid path template/ }, bad);
  }
});

/** Matching by splitting the path into segments: slow and plain, the oracle for the in-place matcher. */
function matchBySplitting(template: ReturnType<typeof parsePathTemplate>, pathname: string): string[] | null {
  if (!pathname.startsWith("/")) return null;
  let path = pathname.slice(1);
  if (template.verb !== "") {
    const suffix = `:${template.verb}`;
    if (!path.endsWith(suffix) || path.length === suffix.length || path[path.length - suffix.length - 1] === "/") return null;
    path = path.slice(0, -suffix.length);
  }
  const parts = path.split("/");
  const segs = template.segments;
  const hasRest = segs.at(-1)?.kind === "rest";
  const fixed = hasRest ? segs.length - 1 : segs.length;
  if (hasRest ? parts.length < fixed : parts.length !== fixed) return null;
  for (let i = 0; i < fixed; i++) {
    const seg = segs[i]!;
    if (seg.kind === "literal" && seg.value !== parts[i]) return null;
  }
  return template.variables.map((v) => (v.multiSegment ? parts.slice(v.start, v.end === Infinity ? undefined : v.end).join("/") : parts[v.start]!));
}

test("path templates: the in-place matcher agrees with matching by splitting, on 50000 random paths", (t) => {
  const templates = [
    "/v1/apps/{app}:predict",
    "/v1/apps/{app}:predictBatch",
    "/v1/workers",
    "/v1/{name=projects/*/models/*}/x/*",
    "/files/{sub.path=**}",
    "/a/{b}/c/{d=**}:go",
    "/a/*/{x=b/*}",
    "/{x}",
  ].map(parsePathTemplate);
  const pieces = ["", "/", ":", "v1", "v1/apps", "apps", "a", "b", "c", "x", "files", "projects", "models", "predict", ":predict", "/:predict", ":predictBatch", ":go", "/:go", "workers", "%2F", "p"];
  let seed = 7;
  const next = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  let matched = 0;
  for (let i = 0; i < 50_000; i++) {
    let path = next(10) === 0 ? "" : "/";
    const n = 1 + next(7);
    for (let j = 0; j < n; j++) path += pieces[next(pieces.length)]! + (next(3) === 0 ? "" : "/");
    if (next(2) === 0) path = path.replace(/\/$/, "");
    for (const template of templates) {
      const expected = matchBySplitting(template, path);
      if (expected !== null) matched++;
      const got = matchPathTemplate(template, path);
      if (JSON.stringify(got) !== JSON.stringify(expected)) {
        t.fail(`${template.source} against ${JSON.stringify(path)}: got ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`);
        return;
      }
    }
  }
  t.true(matched > 1000, `enough of the paths match some template to test captures: ${matched}`);
});
