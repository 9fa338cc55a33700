import test from "ava";
import { Redis } from "ioredis";
import { PredictRequest } from "../../gen/clipper/v1/predict.js";
import { DB } from "../../core/redis-layout.js";
import { LATENCY_SLO_MICROS } from "../../core/limits.js";
import { call } from "../helpers/grpc.js";
import { Stack } from "../helpers/stack.js";

// Numbers someone else wrote into Redis, outside what management accepts:
// the gateway clamps or refuses them, logs each once, and keeps serving the
// other apps; management refuses to write them in the first place.

let stack: Stack;
const clients: Redis[] = [];

test.before(async () => {
  stack = await Stack.start();
  await stack.deploy("good", "echo", "1", "strings");
  await stack.worker("echo", "1", "strings", "test/fixtures/models/describe.js");
});

test.after.always(async () => {
  for (const c of clients) c.disconnect();
  await stack?.close();
});

function db(n: number): Redis {
  const r = new Redis(stack.redis.url, { db: n, maxRetriesPerRequest: 1 });
  clients.push(r);
  return r;
}

/** An app hash as another tool might write it, linked to `echo`. */
async function writeApp(name: string, fields: Record<string, string>): Promise<void> {
  await db(DB.APPS).hset(name, { input_type: "strings", policy: "DefaultOutputSelectionPolicy", default_output: "-1", ...fields });
  await db(DB.LINKS).sadd(name, "echo");
}

const predict = (app: string) => call<unknown, any>(stack.predict, "predict", PredictRequest.fromPartial({ app, input: { text: `q-${app}` } }));

/** Polls until `check` holds, for a catalog that learns of writes through keyspace events. */
async function until<T>(f: () => Promise<T>, check: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (check(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

test.serial("an SLO above the limit (beyond the timer's range) is clamped and served; the gateway says so once", async (t) => {
  // 9e15 µs is ~285 years: as a timer delay in ms it would overflow and fire at once.
  await writeApp("huge-slo", { latency_slo_micros: "9000000000000000" });
  await writeApp("big-slo", { latency_slo_micros: "1000000000000" });
  for (const app of ["huge-slo", "big-slo"]) {
    const r = await until(() => predict(app), (x) => x.ok);
    t.true(r.ok, app);
    if (r.ok) t.like(r.value, { output: `text:q-${app}`, default: false });
  }
  // Another write to the same hash does not log the same problem again.
  await db(DB.APPS).hset("huge-slo", "unrelated", "1");
  await db(DB.APPS).hset("huge-slo", "unrelated", "2");
  t.true((await predict("huge-slo")).ok);
  await new Promise((r) => setTimeout(r, 300));
  const warnings = stack.gateway.proc.output.split("\n").filter((l) => l.includes("app in Redis out of range") && l.includes("huge-slo"));
  t.is(warnings.length, 1, stack.gateway.proc.output);
  t.regex(warnings[0]!, new RegExp(`using ${LATENCY_SLO_MICROS.max}`));
  t.true((await predict("good")).ok);
});

test.serial("a negative, zero, non-numeric or missing SLO makes the app unservable with a clear error; other apps keep serving", async (t) => {
  const bad: Record<string, Record<string, string>> = {
    "neg-slo": { latency_slo_micros: "-5" },
    "zero-slo": { latency_slo_micros: "0" },
    "nan-slo": { latency_slo_micros: "NaN" },
    "text-slo": { latency_slo_micros: "soon" },
    "inf-slo": { latency_slo_micros: "Infinity" },
    "frac-slo": { latency_slo_micros: "1.5" },
    "no-slo": {},
  };
  for (const [app, fields] of Object.entries(bad)) await writeApp(app, fields);
  for (const app of Object.keys(bad)) {
    const r = await until(() => predict(app), (x) => !x.ok && x.error.code === 9);
    t.false(r.ok, app);
    if (!r.ok) {
      t.is(r.error.code, 9, `${app}: FAILED_PRECONDITION`);
      t.regex(r.error.details, /latency_slo_micros must be a whole number from 1 to 1800000000/, app);
    }
  }
  const http = await stack.http("/v1/apps/nan-slo:predict", { input: { text: "x" } });
  t.is(http.status, 400);
  t.regex(JSON.stringify(http.json), /cannot be served: app 'nan-slo' has invalid latency_slo_micros 'NaN'/);
  t.true((await predict("good")).ok, "the good app still serves");
  // Fixed in Redis, the app serves again.
  await db(DB.APPS).hset("nan-slo", "latency_slo_micros", "500000");
  t.true((await until(() => predict("nan-slo"), (x) => x.ok)).ok);
  t.is(stack.gateway.proc.child.exitCode, null, "the gateway is still running");
});

test.serial("a garbage or huge batch size in DB 2 is ignored or clamped; serving goes on", async (t) => {
  await db(DB.MODELS).hset("echo:7", { model_name: "echo", model_version: "7", load: "0.0", input_type: "strings", labels: "", container_name: "x", model_data_path: "x", batch_size: "1e30", valid: "" });
  await db(DB.MODELS).hset("echo:8", { model_name: "echo", model_version: "8", input_type: "strings", batch_size: "lots", valid: "" });
  await new Promise((r) => setTimeout(r, 300));
  t.true((await predict("good")).ok);
  const out = stack.gateway.proc.output;
  t.regex(out, /"key":"echo:7","warning":"model 'echo:7': batch_size must be a whole number from 1 to 100000, got 1e\+30; using 100000","msg":"model in Redis out of range; clamped"/);
  t.regex(out, /"key":"echo:8","error":"model 'echo:8' has invalid batch_size 'lots'.*"msg":"ignoring malformed model in Redis"/);
  // The clamped version is known (a pinned call is accepted, though no replica serves it: the default).
  const pinned = await call<unknown, any>(stack.predict, "predict", PredictRequest.fromPartial({ app: "good", input: { text: "p" }, version: "7" }));
  t.true(pinned.ok);
  if (pinned.ok) t.true(pinned.value.default);
  const unknown = await call<unknown, any>(stack.predict, "predict", PredictRequest.fromPartial({ app: "good", input: { text: "p" }, version: "8" }));
  t.false(unknown.ok, "a malformed version is not served");
});

test.serial("management refuses out-of-range numbers, naming the limit", async (t) => {
  const base = `http://127.0.0.1:${stack.management.httpPort}`;
  const post = (path: string, body: unknown) => fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const v1 = await post("/v1/apps", { name: "too-slow", inputType: "strings", defaultOutput: "-1", latencySloMicros: 2_000_000_000 });
  t.is(v1.status, 400);
  t.regex(await v1.text(), /latency_slo_micros must be a whole number from 1 to 1800000000, got 2000000000/);
  const clipper = await post("/admin/add_app", { name: "too-slow", input_type: "strings", default_output: "-1", latency_slo_micros: 1_900_000_000 });
  t.is(clipper.status, 400);
  t.regex(await clipper.text(), /latency_slo_micros must be a whole number from 1 to 1800000000/);
  const model = await post("/v1/models", { name: "wide", version: "1", inputType: "strings", batchSize: 1_000_000 });
  t.is(model.status, 400);
  t.regex(await model.text(), /batch_size must be a whole number from 1 to 100000, got 1000000/);
  t.is((await db(DB.APPS).exists("too-slow")), 0, "nothing written");
});
