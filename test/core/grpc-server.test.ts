import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import test from "ava";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type Message } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { AdminClient, AdminService, type App, type ListAppsResponse } from "../../gen/clipper/v1/admin.js";
import type { CallContext } from "../../core/call-context.js";
import { notFound } from "../../core/errors.js";
import { startGrpcServer, type GrpcServerHandle } from "../../core/servers/grpc-server.js";
import { DescriptorIndex } from "../../core/servers/reflection.js";
import type { UnaryServiceBinding } from "../../core/service-binding.js";

const run = promisify(execFile);
const BUF = fileURLToPath(new URL("../../node_modules/.bin/buf", import.meta.url));
const DESCRIPTORS = readFileSync(new URL("../../gen/descriptors.binpb", import.meta.url));
/** buf curl starts a Go binary and does several reflection round trips; generous so a loaded CI box passes. */
const BUF_TIMEOUT_MS = 60_000;
/** Deadline the deadline test sends, in ms from now. */
const CLIENT_DEADLINE_MS = 60_000;
/** Deadline of the abort-on-deadline test, in ms: long enough that the handler is reached first even under load. */
const DEADLINE_TEST_MS = 2_000;

const APP: App = {
  name: "a1",
  inputType: "doubles",
  defaultOutput: "-1",
  latencySloMicros: 100_000,
  linkedModels: ["m1"],
  policy: "DefaultOutputSelectionPolicy",
  // Non-default, so buf curl (which omits defaults) prints them.
  ready: true,
  liveReplicas: 2,
};

const seen: { ctx: CallContext | null; errors: { err: unknown; method: string }[] } = { ctx: null, errors: [] };

/** Lets a test observe the abort signal of one LinkModel call. */
interface AbortProbe {
  entered: boolean;
  readonly whenEntered: Promise<void>;
  resolveEntered(): void;
  readonly aborted: Promise<unknown>;
  resolve(reason: unknown): void;
}
const abortProbes = new Map<string, AbortProbe>();

/** Promise.withResolvers is Node 22+; this is the Node 20 spelling. */
function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

function abortProbe(key: string): AbortProbe {
  const entered = deferred<void>();
  const aborted = deferred<unknown>();
  const probe: AbortProbe = {
    entered: false,
    whenEntered: entered.promise,
    resolveEntered: () => entered.resolve(),
    aborted: aborted.promise,
    resolve: aborted.resolve,
  };
  abortProbes.set(key, probe);
  return probe;
}

function abortCode(reason: unknown): number | undefined {
  return (reason as { code?: number } | undefined)?.code;
}

const adminBinding: UnaryServiceBinding = {
  name: "clipper.v1.Admin",
  definition: AdminService,
  handlers: {
    listApps: async (): Promise<ListAppsResponse> => ({ apps: [APP] }),
    getApp: async (req: { name: string }) => {
      throw notFound("APP_NOT_FOUND", `app '${req.name}' not found`);
    },
    deleteApp: async () => {
      throw new Error("redis password is hunter2");
    },
    linkModel: async (req: { app: string }, ctx: CallContext) => {
      // Reports the abort the server raises on cancel or deadline (keyed by req.app).
      const probe = abortProbes.get(req.app)!;
      probe.entered = true;
      ctx.signal.addEventListener("abort", () => probe.resolve(ctx.signal.reason), { once: true });
      probe.resolveEntered();
      await probe.aborted;
      return {};
    },
    createApp: async (_req: unknown, ctx: CallContext) => {
      seen.ctx = ctx;
      return { app: APP };
    },
  },
};

function start(): Promise<GrpcServerHandle> {
  return startGrpcServer({
    host: "127.0.0.1",
    port: 0,
    bindings: [adminBinding],
    descriptors: DESCRIPTORS,
    onError: (err, method) => seen.errors.push({ err, method }),
  });
}

let srv: GrpcServerHandle;
let admin: InstanceType<typeof AdminClient>;

test.before(async () => {
  srv = await start();
  admin = new AdminClient(`127.0.0.1:${srv.port}`, grpc.credentials.createInsecure());
});

test.after.always(async () => {
  admin?.close();
  await srv?.close(1_000);
});

/** Calls a unary method of the ts-proto client and resolves with the response or the ServiceError. */
function unary<Req, Res>(
  method: (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: Res) => void) => unknown,
  req: Req,
  md = new grpc.Metadata(),
  opts: Partial<grpc.CallOptions> = {},
): Promise<{ err: grpc.ServiceError | null; res: Res | undefined }> {
  return new Promise((resolve) => {
    method.call(admin, req, md, opts, (err, res) => resolve({ err, res }));
  });
}

test("a unary call through a grpc-js client runs the bound handler", async (t) => {
  const { err, res } = await unary(admin.listApps, {});
  t.is(err, null);
  t.deepEqual(res?.apps, [APP]);
});

test("a thrown ServingError NOT_FOUND reaches the client as code 5 with its message", async (t) => {
  const { err } = await unary(admin.getApp, { name: "nope" });
  t.is(err?.code, grpc.status.NOT_FOUND);
  t.is(err?.details, "app 'nope' not found");
});

test("a plain Error becomes INTERNAL 'internal error' and is reported to onError, not to the client", async (t) => {
  const { err } = await unary(admin.deleteApp, { name: "a1" });
  t.is(err?.code, grpc.status.INTERNAL);
  t.is(err?.details, "internal error");
  t.false(JSON.stringify(err?.metadata.getMap()).includes("hunter2"));
  const reported = seen.errors.find((e) => e.method === "/clipper.v1.Admin/DeleteApp");
  t.truthy(reported);
  t.regex(String((reported?.err as Error).message), /hunter2/);
});

test("a method with no handler answers UNIMPLEMENTED", async (t) => {
  const { err } = await unary(admin.getModel, { name: "m1", version: "" });
  t.is(err?.code, grpc.status.UNIMPLEMENTED);
});

test("the client deadline, metadata and peer reach the CallContext", async (t) => {
  const md = new grpc.Metadata();
  md.set("X-Request-Id", "r-42");
  md.set("trace-bin", Buffer.from([1, 2]));
  const before = Date.now();
  const { err } = await unary(admin.createApp, { name: "a1", inputType: "doubles", defaultOutput: "-1", latencySloMicros: 100_000 }, md, { deadline: before + CLIENT_DEADLINE_MS });
  t.is(err, null);
  const ctx = seen.ctx!;
  t.is(ctx.transport, "grpc");
  // grpc-timeout travels as a relative timeout, so allow generous slack either way.
  t.true(ctx.deadline > before + CLIENT_DEADLINE_MS - 10_000, `deadline ${ctx.deadline - before}ms after send`);
  t.true(ctx.deadline <= Date.now() + CLIENT_DEADLINE_MS + 1_000);
  t.is(ctx.metadata.get("x-request-id"), "r-42");
  t.false(ctx.metadata.has("trace-bin"));
  // Keys are lower-case, as in the full map the lookups stand in for.
  t.is(ctx.metadata.get("X-Request-Id"), undefined);
  const all = new Map(ctx.metadata);
  t.is(all.get("x-request-id"), "r-42");
  t.false(all.has("trace-bin"));
  for (const [key, value] of all) t.is(ctx.metadata.get(key), value);
  t.false(ctx.signal.aborted);
  t.regex(ctx.peer, /127\.0\.0\.1/);
});

test("the CallContext signal aborts when the client cancels", async (t) => {
  const probe = abortProbe("cancel");
  const result = new Promise<grpc.ServiceError | null>((resolve) => {
    const call = admin.linkModel({ app: "cancel", model: "m1" }, (err) => resolve(err));
    void probe.whenEntered.then(() => call.cancel());
  });
  t.is((await result)?.code, grpc.status.CANCELLED);
  t.is(abortCode(await probe.aborted), grpc.status.CANCELLED);
});

test("the CallContext signal aborts when the client's deadline passes", async (t) => {
  const probe = abortProbe("deadline");
  const { err } = await unary(admin.linkModel, { app: "deadline", model: "m1" }, new grpc.Metadata(), {
    deadline: Date.now() + DEADLINE_TEST_MS,
  });
  t.is(err?.code, grpc.status.DEADLINE_EXCEEDED);
  // On a very loaded machine grpc-js may expire the call before the handler runs; then there is no signal to check.
  if (!probe.entered) {
    t.log("handler not reached before the deadline; abort not observable");
    return;
  }
  const code = abortCode(await probe.aborted);
  t.true(code === grpc.status.DEADLINE_EXCEEDED || code === grpc.status.CANCELLED, `abort reason code ${code}`);
});

// --- health -----------------------------------------------------------------

const index = new DescriptorIndex(DESCRIPTORS);
const healthReq = index.message("grpc.health.v1.HealthCheckRequest");
const healthRes = index.message("grpc.health.v1.HealthCheckResponse");
const HealthClient = grpc.makeGenericClientConstructor(
  {
    check: {
      path: "/grpc.health.v1.Health/Check",
      requestStream: false,
      responseStream: false,
      requestSerialize: (v: Message) => Buffer.from(toBinary(healthReq, v)),
      requestDeserialize: (b: Buffer) => fromBinary(healthReq, b),
      responseSerialize: (v: Message) => Buffer.from(toBinary(healthRes, v)),
      responseDeserialize: (b: Buffer) => fromBinary(healthRes, b),
    },
  },
  "grpc.health.v1.Health",
);
/** grpc.health.v1.HealthCheckResponse.ServingStatus values. */
const SERVING = 1;
const NOT_SERVING = 2;

function healthCheck(port: number, service: string): Promise<{ code: number; status: number | undefined }> {
  const client = new HealthClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      "/grpc.health.v1.Health/Check",
      (v: Message) => Buffer.from(toBinary(healthReq, v)),
      (b: Buffer) => fromBinary(healthRes, b) as Message & { status: number },
      create(healthReq, { service }),
      (err: grpc.ServiceError | null, res?: Message & { status: number }) => {
        client.close();
        resolve({ code: err?.code ?? grpc.status.OK, status: res?.status });
      },
    );
  });
}

test("health reports SERVING for the server and each bound service, NOT_SERVING after setServing(false)", async (t) => {
  const own = await start();
  try {
    t.deepEqual(await healthCheck(own.port, ""), { code: 0, status: SERVING });
    t.deepEqual(await healthCheck(own.port, "clipper.v1.Admin"), { code: 0, status: SERVING });
    own.health.setServing("clipper.v1.Admin", false);
    t.deepEqual(await healthCheck(own.port, "clipper.v1.Admin"), { code: 0, status: NOT_SERVING });
    own.health.setServing("", false);
    t.deepEqual(await healthCheck(own.port, ""), { code: 0, status: NOT_SERVING });
    t.is((await healthCheck(own.port, "no.such.Service")).code, grpc.status.NOT_FOUND);
  } finally {
    await own.close(1_000);
  }
});

// --- buf curl through reflection ---------------------------------------------

async function bufCurl(args: string[]): Promise<string> {
  const { stdout } = await run(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], {
    timeout: BUF_TIMEOUT_MS,
  });
  return stdout;
}

for (const reflect of ["grpc-v1", "grpc-v1alpha"]) {
  const flags = ["--reflect-protocol", reflect];

  test(`buf curl --list-services lists the bound services (${reflect})`, async (t) => {
    const lines = (await bufCurl([...flags, "--list-services", `http://127.0.0.1:${srv.port}`])).trim().split("\n");
    t.deepEqual(lines.sort(), [
      "clipper.v1.Admin",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ]);
  });

  test(`buf curl --list-methods resolves every service's schema (${reflect})`, async (t) => {
    const out = await bufCurl([...flags, "--list-methods", `http://127.0.0.1:${srv.port}`]);
    t.regex(out, /^clipper\.v1\.Admin\/ListApps$/m);
    t.regex(out, /^clipper\.v1\.Admin\/SetNumReplicas$/m);
    t.regex(out, /^grpc\.health\.v1\.Health\/Check$/m);
  });

  test(`buf curl calls Admin/ListApps with the schema from reflection (${reflect})`, async (t) => {
    const out = await bufCurl([...flags, `http://127.0.0.1:${srv.port}/clipper.v1.Admin/ListApps`]);
    t.deepEqual(JSON.parse(out), { apps: [APP] });
  });

  test(`buf curl calls Health/Check (${reflect})`, async (t) => {
    const out = await bufCurl([...flags, "-d", "{}", `http://127.0.0.1:${srv.port}/grpc.health.v1.Health/Check`]);
    t.deepEqual(JSON.parse(out), { status: "SERVING" });
  });
}

// --- reflection protocol, directly --------------------------------------------

type Reflected =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/** Sends reflection requests over one v1 or v1alpha stream and collects the answers. */
async function reflect(version: "v1" | "v1alpha", requests: Record<string, unknown>[]): Promise<Reflected[]> {
  const reqSchema = index.message(`grpc.reflection.${version}.ServerReflectionRequest`);
  const resSchema = index.message(`grpc.reflection.${version}.ServerReflectionResponse`);
  const client = new grpc.Client(`127.0.0.1:${srv.port}`, grpc.credentials.createInsecure());
  try {
    const call = client.makeBidiStreamRequest(
      `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`,
      (v: Message) => Buffer.from(toBinary(reqSchema, v)),
      (b: Buffer) => fromBinary(resSchema, b) as Message & { messageResponse: Reflected },
    );
    const answers: Reflected[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on("data", (res: { messageResponse: Reflected }) => answers.push(res.messageResponse));
      call.on("end", resolve);
      call.on("error", reject);
    });
    for (const messageRequest of requests) call.write(create(reqSchema, { messageRequest }));
    call.end();
    await done;
    return answers;
  } finally {
    client.close();
  }
}

function fileNames(answer: Reflected | undefined): string[] {
  if (answer?.case !== "fileDescriptorResponse") return [`not a file answer: ${JSON.stringify(answer)}`];
  return answer.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name);
}

for (const version of ["v1", "v1alpha"] as const) {
  test(`reflection ${version} answers symbols with the defining file then its transitive imports, each once`, async (t) => {
    const answers = await reflect(version, [
      { case: "fileContainingSymbol", value: "clipper.v1.Admin.ListApps" },
      { case: "fileContainingSymbol", value: "google.protobuf.FieldDescriptorProto.Type" },
      { case: "fileContainingSymbol", value: "google.protobuf.FieldDescriptorProto.TYPE_DOUBLE" },
      { case: "fileContainingSymbol", value: "clipper.v1.App.linked_models" },
      { case: "fileContainingSymbol", value: "google.api.http" },
      { case: "fileByFilename", value: "grpc/health/v1/health.proto" },
    ]);
    const adminFiles = ["clipper/v1/admin.proto", "google/api/annotations.proto", "google/api/http.proto", "google/protobuf/descriptor.proto"];
    t.deepEqual(fileNames(answers[0]), adminFiles);
    t.deepEqual(fileNames(answers[1]), ["google/protobuf/descriptor.proto"]);
    t.deepEqual(fileNames(answers[2]), ["google/protobuf/descriptor.proto"]);
    t.deepEqual(fileNames(answers[3]), adminFiles);
    t.deepEqual(fileNames(answers[4]), adminFiles.slice(1));
    t.deepEqual(fileNames(answers[5]), ["grpc/health/v1/health.proto"]);
  });

  test(`reflection ${version} serves the exact bytes from the descriptor set`, async (t) => {
    const [answer] = await reflect(version, [{ case: "fileByFilename", value: "clipper/v1/admin.proto" }]);
    const first = answer?.case === "fileDescriptorResponse" ? answer.value.fileDescriptorProto[0] : undefined;
    t.truthy(first);
    t.true(Buffer.from(DESCRIPTORS).includes(Buffer.from(first!)));
  });

  test(`reflection ${version} answers extension queries`, async (t) => {
    const answers = await reflect(version, [
      { case: "fileContainingExtension", value: { containingType: "google.protobuf.MethodOptions", extensionNumber: 72295728 } },
      { case: "allExtensionNumbersOfType", value: "google.protobuf.MethodOptions" },
      { case: "allExtensionNumbersOfType", value: "clipper.v1.App" },
    ]);
    t.deepEqual(fileNames(answers[0]), ["google/api/annotations.proto", "google/api/http.proto", "google/protobuf/descriptor.proto"]);
    t.deepEqual(answers[1], {
      case: "allExtensionNumbersResponse",
      value: { $typeName: `grpc.reflection.${version}.ExtensionNumberResponse`, baseTypeName: "google.protobuf.MethodOptions", extensionNumber: [72295728] },
    } as unknown as Reflected);
    t.deepEqual(answers[2]?.case === "allExtensionNumbersResponse" ? answers[2].value.extensionNumber : null, []);
  });

  test(`reflection ${version} answers unknown names with error_response NOT_FOUND`, async (t) => {
    const answers = await reflect(version, [
      { case: "fileContainingSymbol", value: "clipper.v1.NoSuchThing" },
      { case: "fileByFilename", value: "nope.proto" },
      { case: "fileContainingExtension", value: { containingType: "google.protobuf.MethodOptions", extensionNumber: 1 } },
      { case: "allExtensionNumbersOfType", value: "no.such.Type" },
    ]);
    t.is(answers.length, 4);
    for (const answer of answers) {
      t.is(answer.case, "errorResponse");
      t.is(answer.case === "errorResponse" ? answer.value.errorCode : -1, grpc.status.NOT_FOUND);
    }
  });
}

// --- startup validation --------------------------------------------------------

test("startGrpcServer refuses streaming implementations for a service that is not bound", async (t) => {
  await t.throwsAsync(
    startGrpcServer({
      host: "127.0.0.1",
      port: 0,
      bindings: [adminBinding],
      streaming: { "clipper.v1.Heartbeat": { watchWorkers: () => {} } },
      descriptors: DESCRIPTORS,
    }),
    { message: /clipper\.v1\.Heartbeat/ },
  );
});

test("startGrpcServer refuses a handler for a method the definition lacks", async (t) => {
  await t.throwsAsync(
    startGrpcServer({
      host: "127.0.0.1",
      port: 0,
      bindings: [{ ...adminBinding, handlers: { listAppz: async () => ({}) } }],
      descriptors: DESCRIPTORS,
    }),
    { message: /listAppz/ },
  );
});
