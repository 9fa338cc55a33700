import test from "ava";
import { status as Status } from "@grpc/grpc-js";
import { PredictRequest } from "../../gen/clipper/v1/predict.js";
import { call } from "../helpers/grpc.js";
import { eventually } from "../helpers/processes.js";
import { Scrape } from "../helpers/prometheus.js";
import { Stack } from "../helpers/stack.js";

const SUM = "test/fixtures/sum-doubles.ts";

// A stopped process is the plainest stall there is: its event loop cannot
// run while the calls sent to it wait in its sockets, as on a host whose
// CPU is taken by others. When it runs again, the timer LoopPressure
// samples is overdue by the whole stop.
test.serial("with --shed-loop-delay-ms, calls that waited out a stall are refused at the door with 429 / RESOURCE_EXHAUSTED; health is answered and later calls are served", async (t) => {
  const stack = await Stack.start(["--cache-bytes", "0", "--shed-loop-delay-ms", "50"]);
  t.teardown(() => stack.close());
  await stack.deploy("behind", "bm", "1", "doubles");
  await stack.worker("bm", "1", "doubles", SUM);
  const grpcPredict = (x: number) => call<unknown, any>(stack.predict, "predict", PredictRequest.fromPartial({ app: "behind", input: { doubles: [x, 1] } }), { deadlineMs: 20_000 });
  t.true(await eventually(async () => (await stack.http("/behind/predict", { input: [1, 2] })).json?.output === 3, 20_000), "the app never answered");
  t.true((await grpcPredict(0)).ok, "a gRPC Predict before the stall");

  const pid = stack.gateway.proc.child.pid!;
  const base = `http://127.0.0.1:${stack.gateway.http}`;
  const post = (path: string, body: unknown) => fetch(base + path, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });
  process.kill(pid, "SIGSTOP");
  let clipper: Array<Promise<Response>>;
  let transcoded: Promise<Response>;
  let oip: Promise<Response>;
  let grpc: Promise<Awaited<ReturnType<typeof grpcPredict>>>;
  let health: Promise<Response>;
  let live: Promise<Response>;
  try {
    clipper = Array.from({ length: 8 }, (_, i) => post("/behind/predict", { input: [i, 10] }));
    transcoded = post("/v1/apps/behind:predict", { input: { doubles: [5, 5] } });
    oip = post("/v2/models/behind/infer", { inputs: [{ name: "input", shape: [1, 2], datatype: "FP64", data: [2, 2] }] });
    grpc = grpcPredict(41);
    health = fetch(`${base}/healthz`);
    live = fetch(`${base}/v2/health/live`);
    // Long enough for this process to have written every request; not an assertion on time.
    await new Promise((resolve) => setTimeout(resolve, 1000));
  } finally {
    process.kill(pid, "SIGCONT");
  }

  // Every call is either refused at the door or answered by the model: nothing else, nothing lost.
  let refusedHttp = 0;
  for (const r of await Promise.all(clipper)) {
    const body = (await r.json()) as any;
    if (r.status === 429) {
      refusedHttp++;
      t.is(r.headers.get("retry-after"), "1");
      t.is(body.code, Status.RESOURCE_EXHAUSTED);
      t.regex(body.message, /event loop is behind/);
    } else {
      t.is(r.status, 200, JSON.stringify(body));
    }
  }
  t.true(refusedHttp > 0, "no Clipper REST call was refused after the stall");
  for (const r of [await transcoded, await oip]) {
    const text = await r.text();
    t.true(r.status === 429 || r.status === 200, `${r.url}: ${r.status} ${text}`);
    if (r.status === 429) refusedHttp++;
  }
  const g = await grpc;
  if (!g.ok) {
    t.is(g.error.code, Status.RESOURCE_EXHAUSTED, g.error.details);
    t.deepEqual(g.error.metadata.get("grpc-retry-pushback-ms"), ["1000"]);
  }
  t.is((await health).status, 200, "health is never refused at the door");
  t.is((await live).status, 200, "OIP liveness is never refused at the door");

  t.log(`refused after the stall: ${refusedHttp} of 10 HTTP calls, gRPC ${g.ok ? "served" : "refused"}`);
  const m = await Scrape.of(`${base}/metrics`);
  t.is(m.value("clipper_behind_refusals_total", { transport: "http" }), refusedHttp);
  t.is(m.value("clipper_behind_refusals_total", { transport: "grpc" }), g.ok ? 0 : 1);

  // Caught up: calls are served again.
  t.true(await eventually(async () => (await stack.http("/behind/predict", { input: [20, 22] })).json?.output === 42, 20_000), "calls were not served again after the stall");
  t.true((await grpcPredict(1)).ok);
});
