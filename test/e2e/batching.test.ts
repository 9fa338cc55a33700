import test from "ava";
import { credentials, status } from "@grpc/grpc-js";
import { PredictClient, PredictRequest } from "../../gen/clipper/v1/predict.js";
import { call } from "../helpers/grpc.js";
import { startGatewayProcess, startWorkerProcess, untilReady } from "../helpers/processes.js";
import { Stack } from "../helpers/stack.js";

let stack: Stack;

test.before(async () => {
  stack = await Stack.start();
});

test.after.always(async () => {
  await stack?.close();
});

test.serial("batches larger than 1 form under 64 concurrent callers, and every call is answered", async (t) => {
  await stack.deploy("batch-app", "reporter", "1", "doubles", { sloMicros: 1_000_000 });
  await stack.worker("reporter", "1", "doubles", "test/fixtures/models/batch-reporter.js");
  const sizes: number[] = [];
  let defaults = 0;
  // Distinct inputs so the cache cannot answer; 64 callers, 10 calls each.
  await Promise.all(
    Array.from({ length: 64 }, async (_, caller) => {
      for (let i = 0; i < 10; i++) {
        const r = await call<unknown, any>(stack.predict, "predict", PredictRequest.fromPartial({ app: "batch-app", input: { doubles: [caller, i] } }));
        if (!r.ok) throw new Error(r.error.message);
        if (r.value.default) defaults++;
        else {
          const out = JSON.parse(r.value.output);
          t.is(out.sum, caller + i);
          sizes.push(out.batch);
        }
      }
    }),
  );
  t.is(sizes.length + defaults, 640);
  t.is(defaults, 0);
  t.true(Math.max(...sizes) > 1, `largest batch the worker received: ${Math.max(...sizes)}`);
});

test.serial("a fixed batch_size caps every batch", async (t) => {
  await stack.deploy("capped-app", "capped", "1", "doubles", { sloMicros: 1_000_000, batchSize: 3 });
  await stack.worker("capped", "1", "doubles", "test/fixtures/models/batch-reporter.js");
  const outs = await Promise.all(
    Array.from({ length: 40 }, (_, i) => call<unknown, any>(stack.predict, "predict", PredictRequest.fromPartial({ app: "capped-app", input: { doubles: [1000 + i] } }))),
  );
  const sizes = outs.map((r) => (r.ok ? JSON.parse(r.value.output).batch : 0));
  t.deepEqual(sizes.filter((s) => s < 1 || s > 3), [], `batch sizes outside 1..3: ${JSON.stringify(sizes)}`);
});

test.serial("a full queue answers RESOURCE_EXHAUSTED / 429 with a retry hint; other calls still succeed", async (t) => {
  // A second gateway on the same Redis, with a tiny queue bound so a few calls reach it.
  const gw = await startGatewayProcess(stack.redis.url, ["--queue-capacity", "4"]);
  t.teardown(() => gw.proc.stop());
  await untilReady(gw.http); // calls before its first catalog load get 503 by design
  await stack.deploy("busy-app", "busy", "1", "doubles", { sloMicros: 5_000_000 });
  const w = await startWorkerProcess(gw.rpc, "busy", "1", "doubles", "test/fixtures/models/slow.js");
  t.teardown(() => w.stop("SIGKILL"));
  const post = async (i: number) => {
    const res = await fetch(`http://127.0.0.1:${gw.http}/busy-app/predict`, { method: "POST", body: JSON.stringify({ input: [2000 + i] }) });
    return { status: res.status, headers: res.headers, json: await res.json() as any };
  };
  const posts = Promise.all(Array.from({ length: 30 }, (_, i) => post(i)));
  // gRPC callers refused the same way get the hint as trailers: Retry-After and gRPC's own server pushback.
  const predict = new PredictClient(`127.0.0.1:${gw.grpc}`, credentials.createInsecure());
  t.teardown(() => predict.close());
  const grpcResults = await Promise.all(Array.from({ length: 10 }, (_, i) => call<unknown, any>(predict, "predict", PredictRequest.fromPartial({ app: "busy-app", input: { doubles: [3000 + i] } }))));
  const grpcRefused = grpcResults.flatMap((r) => (r.ok ? [] : [r.error]));
  t.true(grpcRefused.length > 0, "some gRPC calls are refused");
  for (const e of grpcRefused) {
    t.is(e.code, status.RESOURCE_EXHAUSTED);
    t.deepEqual(e.metadata.get("retry-after"), ["1"]);
    t.deepEqual(e.metadata.get("grpc-retry-pushback-ms"), ["1000"]);
  }
  const results = await posts;
  const refused = results.filter((r) => r.status === 429);
  const served = results.filter((r) => r.status === 200);
  t.true(refused.length > 0, `statuses: ${results.map((r) => r.status).join(",")}`);
  t.true(served.length > 0);
  t.is(refused.length + served.length, 30);
  t.is(refused[0]!.headers.get("retry-after"), "1");
  t.is(refused[0]!.json.code, 8);
  t.regex(refused[0]!.json.message, /queue of model busy:1 is full/);
});
