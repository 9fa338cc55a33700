import test, { type ExecutionContext } from "ava";
import { status as Status } from "@grpc/grpc-js";
import { PredictRequest } from "../../gen/clipper/v1/predict.js";
import { call } from "../helpers/grpc.js";
import { eventually, spawnBin } from "../helpers/processes.js";
import { Scrape } from "../helpers/prometheus.js";
import { Stack } from "../helpers/stack.js";

const SUM = "test/fixtures/sum-doubles.ts";

// A stopped process is the plainest stall there is: its event loop cannot
// run while the calls sent to it wait in its sockets, as on a host whose
// CPU is taken by others. When it runs again, the timer LoopPressure
// samples is overdue by the whole stop. That one stall alone is served,
// not refused, is shown on an injected clock (test/core/loop-pressure.test.ts):
// here, on a loaded host, the gateway may be descheduled again right after
// it resumes, which is load, and whether that happens is up to the host.

/**
 * A stack with two apps on one model: "behind" has a 100 ms SLO, so the
 * default door refuses its calls while the loop is 50 ms behind;
 * "patient" has a 20 s SLO, so its calls bear 10 s. Answered once over
 * HTTP and gRPC.
 */
async function servingStack(t: ExecutionContext) {
  const stack = await Stack.start(["--cache-bytes", "0"]);
  t.teardown(() => stack.close());
  await stack.deploy("behind", "bm", "1", "doubles", { sloMicros: 100_000 });
  await stack.admin("add_app", { name: "patient", input_type: "doubles", default_output: "-1.0", latency_slo_micros: 20_000_000 });
  await stack.admin("add_model_links", { app_name: "patient", model_names: ["bm"] });
  await stack.worker("bm", "1", "doubles", SUM);
  const grpcPredict = (x: number, app = "behind") => call<unknown, any>(stack.predict, "predict", PredictRequest.fromPartial({ app, input: { doubles: [x, 1] } }), { deadlineMs: 20_000 });
  t.true(await eventually(async () => (await stack.http("/behind/predict", { input: [1, 2] })).json?.output === 3, 20_000), "the app never answered");
  t.true(await eventually(async () => (await stack.http("/patient/predict", { input: [2, 2] })).json?.output === 4, 20_000), "the patient app never answered");
  t.true(await eventually(async () => (await threshold(stack)) === 0.05, 20_000), "the door follows the 100 ms SLO");
  t.true((await grpcPredict(0)).ok, "a gRPC Predict before the stall");
  const base = `http://127.0.0.1:${stack.gateway.http}`;
  const post = (path: string, body: unknown) => fetch(base + path, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });
  return { stack, grpcPredict, base, post, pid: stack.gateway.proc.child.pid! };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test.serial("by default, while the loop keeps falling behind by half an app's SLO, that app's calls are refused at the door with 429 / RESOURCE_EXHAUSTED; a long-SLO app's calls, health and later calls are served", async (t) => {
  const { stack, grpcPredict, base, post, pid } = await servingStack(t);
  // Stopped 80 ms at a time with a few ms to run in between: every sample
  // it takes is late by more than the 50 ms threshold, as under load the
  // loop cannot keep up with.
  const clipper: Array<Promise<Response>> = [];
  const others: Array<Promise<Response>> = [];
  const grpc: Array<ReturnType<typeof grpcPredict>> = [];
  const health: Array<Promise<Response>> = [];
  const patient: Array<Promise<Response>> = [];
  const patientGrpc: Array<ReturnType<typeof grpcPredict>> = [];
  try {
    for (let cycle = 0; cycle < 40; cycle++) {
      process.kill(pid, "SIGSTOP");
      clipper.push(post("/behind/predict", { input: [cycle, 10] }), post("/behind/predict", { input: [cycle, 20] }));
      if (cycle % 8 === 0) {
        others.push(post("/v1/apps/behind:predict", { input: { doubles: [cycle, 5] } }));
        others.push(post("/v2/models/behind/infer", { inputs: [{ name: "input", shape: [1, 2], datatype: "FP64", data: [cycle, 2] }] }));
        grpc.push(grpcPredict(cycle));
        health.push(fetch(`${base}/healthz`), fetch(`${base}/v2/health/live`));
        patient.push(
          post("/patient/predict", { input: [cycle, 30] }),
          post("/v1/apps/patient:predict", { input: { doubles: [cycle, 31] } }),
          post("/v2/models/patient/infer", { inputs: [{ name: "input", shape: [1, 2], datatype: "FP64", data: [cycle, 32] }] }),
        );
        patientGrpc.push(grpcPredict(cycle + 0.5, "patient"));
      }
      await sleep(80);
      process.kill(pid, "SIGCONT");
      await sleep(2);
    }
  } finally {
    process.kill(pid, "SIGCONT");
  }

  // Every call is either refused or answered: nothing else, nothing lost.
  // Most refusals are the door's; a call let in between two stalls may
  // meet admission instead (a queue behind stalled round trips), which is
  // the same 429 with another reason.
  const AT_DOOR = /event loop is behind/;
  const BY_ADMISSION = /is overloaded: the queries ahead/;
  let refusedHttp = 0;
  for (const r of await Promise.all(clipper)) {
    const body = (await r.json()) as any;
    if (r.status === 429) {
      t.is(r.headers.get("retry-after"), "1");
      t.is(body.code, Status.RESOURCE_EXHAUSTED);
      if (AT_DOOR.test(body.message)) refusedHttp++;
      else t.regex(body.message, BY_ADMISSION);
    } else {
      t.is(r.status, 200, JSON.stringify(body));
    }
  }
  t.true(refusedHttp > 0, "no Clipper REST call was refused at the door while the loop kept falling behind");
  for (const r of await Promise.all(others)) {
    const text = await r.text();
    t.true(r.status === 429 || r.status === 200, `${r.url}: ${r.status} ${text}`);
    if (r.status === 429 && AT_DOOR.test(text)) refusedHttp++;
    else if (r.status === 429) t.regex(text, BY_ADMISSION);
  }
  let refusedGrpc = 0;
  for (const g of await Promise.all(grpc)) {
    if (g.ok) continue;
    t.is(g.error.code, Status.RESOURCE_EXHAUSTED, g.error.details);
    t.deepEqual(g.error.metadata.get("grpc-retry-pushback-ms"), ["1000"]);
    if (AT_DOOR.test(g.error.details)) refusedGrpc++;
    else t.regex(g.error.details, BY_ADMISSION);
  }
  for (const r of await Promise.all(health)) t.is(r.status, 200, `${r.url}: health is never refused at the door`);
  // Each call is judged by its own app: 80 ms behind is nothing to a 20 s SLO.
  for (const r of await Promise.all(patient)) t.is(r.status, 200, `${r.url}: ${await r.text()}`);
  for (const g of await Promise.all(patientGrpc)) t.true(g.ok, g.ok ? "" : g.error.details);

  t.log(`refused at the door: ${refusedHttp} of ${clipper.length + others.length} HTTP calls, ${refusedGrpc} of ${grpc.length} gRPC`);
  const m = await Scrape.of(`${base}/metrics`);
  t.is(m.value("clipper_behind_refusals_total", { transport: "http", app: "behind" }), refusedHttp);
  t.is(m.value("clipper_behind_refusals_total", { transport: "grpc", app: "behind" }), refusedGrpc);
  t.is(m.value("clipper_behind_refusals_total", { transport: "http", app: "" }), 0, "every refused call named its app");
  t.is(m.value("clipper_behind_refusals_total", { transport: "http", app: "patient" }), undefined, "the long-SLO app's calls were never refused");

  // Caught up: calls are served again.
  t.true(await eventually(async () => (await stack.http("/behind/predict", { input: [20, 22] })).json?.output === 42, 20_000), "calls were not served again after the stall");
  t.true((await grpcPredict(1)).ok);
});

const threshold = async (stack: Stack): Promise<number | undefined> => (await Scrape.of(`http://127.0.0.1:${stack.gateway.http}/metrics`)).value("clipper_loop_door_threshold_seconds");

test.serial("the default door's threshold for calls of unknown apps is half the smallest SLO served, at least 20 ms, and follows apps as they come and go", async (t) => {
  const stack = await Stack.start();
  t.teardown(() => stack.close());
  t.true(await eventually(async () => (await threshold(stack)) === 0.05, 20_000), "with no app: half of Clipper's default 100 ms SLO");
  await stack.deploy("slow", "sm", "1", "doubles", { sloMicros: 600_000 });
  t.true(await eventually(async () => (await threshold(stack)) === 0.3, 20_000), `an app with a 600 ms SLO: ${await threshold(stack)}`);
  await stack.deploy("fast", "fm", "1", "doubles", { sloMicros: 10_000 });
  t.true(await eventually(async () => (await threshold(stack)) === 0.02, 20_000), `an app with a 10 ms SLO: the floor, ${await threshold(stack)}`);
  await stack.admin("delete_app", { name: "fast" });
  t.true(await eventually(async () => (await threshold(stack)) === 0.3, 20_000), `the 10 ms app deleted: ${await threshold(stack)}`);
});

test.serial("a fixed --shed-loop-delay-ms ignores the SLOs, 0 turns the door off, and anything else is a usage error (exit 2)", async (t) => {
  const fixed = await Stack.start(["--shed-loop-delay-ms", "35"]);
  t.teardown(() => fixed.close());
  await fixed.deploy("slow", "sm", "1", "doubles", { sloMicros: 600_000 });
  await fixed.deploy("fast", "fm", "1", "doubles", { sloMicros: 10_000 });
  t.true(await eventually(async () => (await fixed.http("/fast/predict", { input: [1] })).status !== 404, 20_000), "the catalog has the apps");
  t.is(await threshold(fixed), 0.035);

  const off = await Stack.start([], { CLIPPER_SHED_LOOP_DELAY_MS: "0" });
  t.teardown(() => off.close());
  t.is(await threshold(off), 0);

  const bad = spawnBin("clipper-gateway", ["--grpc-port", "0", "--http-port", "0", "--rpc-port", "0", "--shed-loop-delay-ms", "50ms"]);
  t.is(await bad.waitExit(30_000), 2);
  t.regex(bad.output, /--shed-loop-delay-ms: '50ms' is not 'auto' or a whole number of ms/);
});
