/**
 * Seeded, bounded fuzzing of every external input of a running stack: worker
 * messages in both dialects on the gateway's ZeroMQ port, HTTP bodies on every
 * route of the gateway and of management, and raw gRPC messages on every
 * method. After each barrage: the processes are alive and serving, every
 * answer had a status a client can act on (never a 5xx, never UNKNOWN), and
 * Redis holds nothing that does not decode. Each run uses a fixed seed, so a
 * failure reproduces; FUZZ_SEED overrides it.
 */
import test from "ava";
import { connect } from "node:net";
import { join } from "node:path";
import { credentials, makeGenericClientConstructor, Metadata, status as Status, type ServiceError } from "@grpc/grpc-js";
import fc from "fast-check";
import { Dealer } from "zeromq";
import { decodeApp, decodeContainer, decodeModel, DB, PROHIBITED_CHARS } from "../../core/redis-layout.js";
import { encodeWorkerMessage } from "../../core/wire/native.js";
import { PredictRequest } from "../../gen/clipper/v1/predict.js";
import { call } from "../helpers/grpc.js";
import { ROOT } from "../helpers/processes.js";
import { redisDb } from "../helpers/redis-dump.js";
import { Stack } from "../helpers/stack.js";

const SEED = Number(process.env.FUZZ_SEED ?? 20261203);
const SUM = join(ROOT, "test/fixtures/models/sum.js");
/** The native dialect's marker frame (proto/clipper/v1/heartbeat.proto). */
const NATIVE_MARKER = Buffer.from("CLPRTS01");

let stack: Stack;

test.before(async () => {
  stack = await Stack.start();
  await stack.deploy("s-app", "sum", "1", "doubles");
  await stack.worker("sum", "1", "doubles", SUM);
});

test.after.always(async () => {
  await stack?.close();
});

/** The stack still answers a well-formed call correctly. */
async function stillServes(t: { is(a: unknown, b: unknown, m?: string): void }, input = [1, 2, 3]): Promise<void> {
  const r = await stack.http("/s-app/predict", { input });
  t.is(r.status, 200, "the gateway still answers");
  t.is(r.json.output, input.reduce((a, b) => a + b, 0), "and its model still answers right");
}

/** Redis DB 1–7 hold only entries that decode, and no name with a key separator. */
async function redisIsClean(t: { deepEqual(a: unknown, b: unknown, m?: string): void }): Promise<void> {
  const problems: string[] = [];
  const hashes = async (db: number): Promise<[string, Record<string, string>][]> => {
    const r = await redisDb(stack.redis.url, db);
    try {
      const keys = await r.keys("*");
      return Promise.all(keys.map(async (k) => [k, await r.hgetall(k)] as [string, Record<string, string>]));
    } finally {
      r.disconnect();
    }
  };
  for (const [k, h] of await hashes(DB.APPS)) {
    const d = decodeApp(k, h);
    if (!d.ok) problems.push(`DB 5 ${k}: ${d.error}`);
    if (PROHIBITED_CHARS.some((c) => k.includes(c))) problems.push(`DB 5 ${k}: separator in an app name`);
  }
  for (const [k, h] of await hashes(DB.MODELS)) {
    const d = decodeModel(k, h);
    if (!d.ok) problems.push(`DB 2 ${k}: ${d.error}`);
  }
  for (const [k, h] of await hashes(DB.CONTAINERS)) {
    const d = decodeContainer(k, h);
    if (!d.ok) problems.push(`DB 3 ${k}: ${d.error}`);
  }
  t.deepEqual(problems, [], "Redis holds only what decodes");
}

// --- worker messages ---------------------------------------------------------

/** Frames a misbehaving peer might send: random bytes, the native marker with junk, or well-formed messages with hostile values. */
const nativeMessage = fc.record({
  register: fc.record({
    modelName: fc.oneof(fc.string(), fc.constantFrom("sum", "a,b", "a:b", "", "x".repeat(10_000))),
    modelVersion: fc.oneof(fc.string(), fc.constantFrom("1", "", ":")),
    inputType: fc.oneof(fc.string(), fc.constantFrom("doubles", "bytes", "nonsense")),
    maxBatchSize: fc.nat(),
    concurrency: fc.nat(),
    description: fc.string(),
  }),
  batchId: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  codes: fc.array(fc.integer({ min: -5, max: 100 }), { maxLength: 8 }),
  modelMicros: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  kind: fc.constantFrom("register", "beat", "result", "drain"),
  payloads: fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }),
});

type NativeSample = typeof nativeMessage extends fc.Arbitrary<infer T> ? T : never;

function encodeNative(m: NativeSample): Buffer[] {
  const payloads = m.payloads.map((p) => Buffer.from(p));
  switch (m.kind) {
    case "register":
      return encodeWorkerMessage({ kind: { $case: "register", value: { ...m.register, curvePublicKey: Buffer.alloc(0), registrationProof: Buffer.alloc(0), workerId: "" } } }, payloads);
    case "beat":
      return encodeWorkerMessage({ kind: { $case: "beat", value: { inFlight: m.codes.length, pendingItems: m.payloads.length } } }, payloads);
    case "result": {
      const items = m.codes.map((code) => ({ code, message: "fuzz" }));
      return encodeWorkerMessage({ kind: { $case: "result", value: { batchId: Number(m.batchId % 2n ** 53n), items, modelMicros: Number(m.modelMicros % 2n ** 53n), modelError: "", waitMicros: 0 } } }, payloads);
    }
    default:
      return encodeWorkerMessage({ kind: { $case: "drain", value: { reason: "fuzz" } } }, payloads);
  }
}

test.serial("1500 hostile worker messages in both dialects: the gateway survives, serves, and writes nothing bogus", async (t) => {
  const peers = Array.from({ length: 6 }, () => new Dealer({ linger: 0, sendHighWaterMark: 100_000 }));
  t.teardown(() => peers.forEach((p) => p.close()));
  for (const p of peers) p.connect(`tcp://127.0.0.1:${stack.gateway.rpc}`);
  const frames = fc.oneof(
    // Raw junk.
    fc.array(fc.uint8Array({ maxLength: 32 }), { minLength: 1, maxLength: 6 }).map((fs) => fs.map((f) => Buffer.from(f))),
    // Junk behind the native marker.
    fc.array(fc.uint8Array({ maxLength: 48 }), { maxLength: 4 }).map((fs) => [Buffer.alloc(0), NATIVE_MARKER, ...fs.map((f) => Buffer.from(f))]),
    // Well-formed native messages with hostile values.
    nativeMessage.map(encodeNative),
    // Clipper v3: a message type (valid or not) and random frames after it.
    fc
      .tuple(fc.integer({ min: 0, max: 6 }), fc.array(fc.uint8Array({ maxLength: 24 }), { maxLength: 6 }))
      .map(([type, fs]) => {
        const head = Buffer.alloc(4);
        head.writeUInt32LE(type);
        return [Buffer.alloc(0), head, ...fs.map((f) => Buffer.from(f))];
      }),
  );
  const samples = fc.sample(frames, { seed: SEED, numRuns: 1500 });
  for (let i = 0; i < samples.length; i++) await peers[i % peers.length]!.send(samples[i]!);
  await stillServes(t);
  const workers = await call<unknown, { workers: { modelName: string; modelVersion: string }[] }>(stack.heartbeat, "listWorkers", {});
  t.true(workers.ok);
  if (workers.ok) {
    for (const w of workers.value.workers) t.false(PROHIBITED_CHARS.some((c) => w.modelName.includes(c) || w.modelVersion.includes(c)), `no registered name with a separator: ${w.modelName}:${w.modelVersion}`);
  }
  await redisIsClean(t);
});

// --- HTTP bodies -------------------------------------------------------------

/** Bodies: arbitrary JSON, JSON-looking text, raw bytes, and valid shapes with each field replaced. */
function bodies(valid: Record<string, unknown>): fc.Arbitrary<string | Buffer> {
  const mutated = fc
    .tuple(fc.constantFrom(...Object.keys(valid)), fc.anything({ maxDepth: 2 }))
    .map(([k, v]) => JSON.stringify({ ...valid, [k]: v }) ?? "null");
  return fc.oneof(
    fc.json({ maxDepth: 3 }),
    fc.string({ maxLength: 64 }),
    fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
    mutated,
    fc.constantFrom("", "{", "[]", "null", '{"input":' + "[".repeat(5000) + "]".repeat(5000) + "}", JSON.stringify({ ...valid, extra: "x".repeat(100_000) })),
  );
}

const ROUTES: { base: () => string; path: string; valid: Record<string, unknown> }[] = [
  { base: () => `http://127.0.0.1:${stack.gateway.http}`, path: "/s-app/predict", valid: { input: [1, 2] } },
  { base: () => `http://127.0.0.1:${stack.gateway.http}`, path: "/v1/apps/s-app:predict", valid: { input: { doubles: [1, 2] } } },
  { base: () => `http://127.0.0.1:${stack.management.httpPort}`, path: "/admin/add_app", valid: { name: "f", input_type: "doubles", default_output: "0", latency_slo_micros: 100_000 } },
  {
    base: () => `http://127.0.0.1:${stack.management.httpPort}`,
    path: "/admin/add_model",
    valid: { model_name: "fm", model_version: "1", labels: [], input_type: "doubles", container_name: "", model_data_path: "", batch_size: -1 },
  },
  { base: () => `http://127.0.0.1:${stack.management.httpPort}`, path: "/admin/add_model_links", valid: { app_name: "f", model_names: ["fm"] } },
  { base: () => `http://127.0.0.1:${stack.management.httpPort}`, path: "/admin/set_model_version", valid: { model_name: "fm", model_version: "1" } },
  { base: () => `http://127.0.0.1:${stack.management.httpPort}`, path: "/v1/apps", valid: { name: "g", inputType: "doubles", defaultOutput: "0", latencySloMicros: 100_000 } },
  { base: () => `http://127.0.0.1:${stack.management.httpPort}`, path: "/v1/models", valid: { name: "gm", version: "1", inputType: "doubles" } },
];

test.serial("HTTP bodies on every route: a 2xx or a 4xx, never a 5xx, and Redis stays clean", async (t) => {
  const unexpected: string[] = [];
  let n = 0;
  for (const [i, route] of ROUTES.entries()) {
    for (const body of fc.sample(bodies(route.valid), { seed: SEED + i, numRuns: 120 })) {
      const res = await fetch(`${route.base()}${route.path}`, { method: "POST", body, headers: { "content-type": "application/json" } });
      await res.arrayBuffer();
      n++;
      if (res.status >= 500) unexpected.push(`${route.path} ${res.status}: ${String(body).slice(0, 80)}`);
    }
  }
  t.deepEqual(unexpected, [], `${n} bodies`);
  await stillServes(t, [4, 5]);
  await redisIsClean(t);
});

// --- gRPC messages -----------------------------------------------------------

const passThrough = { requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };
const METHODS: { port: () => number; path: string }[] = [
  { port: () => stack.gateway.grpc, path: "/clipper.v1.Predict/Predict" },
  { port: () => stack.gateway.grpc, path: "/clipper.v1.Heartbeat/ListWorkers" },
  { port: () => stack.management.grpcPort, path: "/clipper.v1.Admin/CreateApp" },
  { port: () => stack.management.grpcPort, path: "/clipper.v1.Admin/RegisterModel" },
  { port: () => stack.management.grpcPort, path: "/clipper.v1.Admin/GetApp" },
  { port: () => stack.management.grpcPort, path: "/clipper.v1.Admin/LinkModel" },
  { port: () => stack.management.grpcPort, path: "/clipper.v1.Admin/SetModelVersion" },
];

test.serial("raw gRPC messages on every method: a status a client can act on (undecodable bytes are INVALID_ARGUMENT, never INTERNAL or UNKNOWN), and Redis stays clean", async (t) => {
  const codes = new Map<number, number>();
  const unknown: string[] = [];
  for (const [i, m] of METHODS.entries()) {
    const Client = makeGenericClientConstructor({ call: { path: m.path, requestStream: false, responseStream: false, ...passThrough } }, "Fuzz");
    const client = new Client(`127.0.0.1:${m.port()}`, credentials.createInsecure()) as unknown as {
      call(req: Buffer, md: Metadata, opts: object, cb: (err: ServiceError | null) => void): void;
      close(): void;
    };
    try {
      for (const bytes of fc.sample(fc.uint8Array({ maxLength: 96 }), { seed: SEED + 100 + i, numRuns: 100 })) {
        const code = await new Promise<number>((resolve) =>
          client.call(Buffer.from(bytes), new Metadata(), { deadline: Date.now() + 10_000 }, (err) => resolve(err === null ? Status.OK : err.code)),
        );
        codes.set(code, (codes.get(code) ?? 0) + 1);
        if (code === Status.UNKNOWN || code === Status.UNAVAILABLE || code === Status.INTERNAL) unknown.push(`${m.path}: ${Status[code]} for ${Buffer.from(bytes).toString("hex")}`);
      }
    } finally {
      client.close();
    }
  }
  t.deepEqual(unknown, []);
  t.log(`status codes: ${[...codes].map(([c, n]) => `${Status[c]} ${n}`).join(", ")}`);
  await stillServes(t, [7]);
  await redisIsClean(t);
});

// --- catalog contents in Redis ----------------------------------------------------

test.serial("garbage written straight into Clipper's Redis tables: the gateway keeps serving, and every answer is a status a caller can act on", async (t) => {
  const garbage = fc.oneof(
    fc.string({ maxLength: 24 }),
    fc.constantFrom("", "-1", "0", "1e400", "9".repeat(40), "NaN", "Infinity", "-9007199254740993", "2147483648", "{", "null", "doubles,", "bytes:"),
  );
  const hash = (fields: readonly string[]) =>
    fc.record(Object.fromEntries(fields.map((f) => [f, garbage])) as Record<string, fc.Arbitrary<string>>, { requiredKeys: [] });
  const apps = fc.sample(hash(["input_type", "default_output", "latency_slo_micros", "policy"]), { seed: SEED + 200, numRuns: 40 });
  const models = fc.sample(hash(["model_name", "model_version", "input_type", "labels", "container_name", "model_data_path", "batch_size", "valid"]), { seed: SEED + 201, numRuns: 40 });
  const appsDb = await redisDb(stack.redis.url, DB.APPS);
  const modelsDb = await redisDb(stack.redis.url, DB.MODELS);
  const linksDb = await redisDb(stack.redis.url, DB.LINKS);
  const versionsDb = await redisDb(stack.redis.url, DB.CURRENT_VERSIONS);
  try {
    for (const [i, h] of apps.entries()) {
      const name = `junk-app-${i}`;
      if (Object.keys(h).length > 0) await appsDb.hset(name, h);
      else await appsDb.set(name, "not a hash");
      await linksDb.sadd(name, i % 3 === 0 ? "sum" : `junk-model-${i}`);
    }
    for (const [i, h] of models.entries()) {
      const key = `junk-model-${i}:${i % 2 === 0 ? "1" : ""}`;
      if (Object.keys(h).length > 0) await modelsDb.hset(key, h);
      await versionsDb.set(`junk-model-${i}`, i % 4 === 0 ? "" : "1");
    }
  } finally {
    for (const r of [appsDb, modelsDb, linksDb, versionsDb]) r.disconnect();
  }
  // Let the gateway's catalog follow the keyspace events.
  await new Promise((r) => setTimeout(r, 1_000));
  await stillServes(t, [1, 1]);
  const bad: string[] = [];
  for (let i = 0; i < apps.length; i++) {
    const res = await fetch(`http://127.0.0.1:${stack.gateway.http}/junk-app-${i}/predict`, { method: "POST", body: JSON.stringify({ input: [1] }) });
    const text = await res.text();
    if (res.status >= 500 && res.status !== 503) bad.push(`junk-app-${i}: ${res.status} ${text.slice(0, 120)}`);
    const grpc = await call<unknown, unknown>(stack.predict, "predict", PredictRequest.fromPartial({ app: `junk-app-${i}`, input: { doubles: [1] } }));
    if (!grpc.ok && (grpc.error.code === Status.UNKNOWN || grpc.error.code === Status.INTERNAL)) bad.push(`junk-app-${i} gRPC: ${Status[grpc.error.code]} ${grpc.error.message.slice(0, 120)}`);
  }
  t.deepEqual(bad, []);
  await stillServes(t, [2, 2]);
  // Management still lists what it can read.
  const list = await fetch(`http://127.0.0.1:${stack.management.httpPort}/admin/get_all_applications`, { method: "POST", body: "{}", headers: { "content-type": "application/json" } });
  t.true(list.status < 500, `get_all_applications: ${list.status}`);
});

/** Sends one raw HTTP/1.1 request line for `target` and resolves with the status of the answer (0 if the connection closed without one). */
function rawStatus(port: number, method: string, target: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let text = "";
    socket.setEncoding("latin1");
    socket.on("data", (d: string) => {
      text += d;
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (m !== null) {
        socket.destroy();
        resolve(Number(m[1]));
      }
    });
    socket.on("close", () => resolve(0));
    socket.on("error", reject);
    socket.write(`${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`);
  });
}

test.serial("request targets that are not plain paths: a 4xx or the route they resolve to, never a 5xx", async (t) => {
  const targets = ["//%", "//x/s-app/predict", "/s-app/../s-app/predict", "/s-app/%2e/predict", "/v1/apps/s-app%3Apredict", "/s-app/predict?x=%zz", "/s-app/predict#f", "*", "/%zz/predict", "/v1/apps/%E0%A4%A:predict", "/v2/models/%zz/infer"];
  for (const port of [stack.gateway.http, stack.management.httpPort]) {
    for (const target of targets) {
      const status = await rawStatus(port, "POST", target);
      t.true(status === 0 || (status >= 200 && status < 500), `${port} POST ${target}: ${status}`);
    }
    t.is(await rawStatus(port, "POST", "//%"), 400, "a target that is not a URL path is 400");
  }
  t.is(await rawStatus(stack.gateway.http, "POST", "/%zz/predict"), 400, "an app name that is not valid percent-encoding is Clipper's 400");
  await stillServes(t);
});
