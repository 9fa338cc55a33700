import test from "ava";
import { decodeDeployment } from "../../core/deployment-layout.js";
import { REPLICAS } from "../../core/limits.js";
import { decodeApp } from "../../core/redis-layout.js";

const WORKER = JSON.stringify({ module: "/m.js", command: [], env: {}, workingDir: "", concurrency: 1, maxBatchSize: 0 });
const deployment = (fields: Record<string, string>) =>
  decodeDeployment("clipper-ts:deployment:m:1", { model_name: "m", model_version: "1", input_type: "doubles", replicas: "2", worker: WORKER, ...fields });

test("a deployment's replicas above the per-machine limit are clamped with a warning; garbage is refused", (t) => {
  const huge = deployment({ replicas: "1000000000" });
  t.true(huge.ok);
  if (huge.ok) {
    t.is(huge.value.replicas, REPLICAS.max);
    t.regex(huge.warning ?? "", /replicas must be a whole number from 0 to 64, got 1000000000; using 64/);
  }
  for (const replicas of ["-1", "two", "", "1.5", "Infinity"]) t.false(deployment({ replicas }).ok, replicas);
  const fine = deployment({});
  t.true(fine.ok && fine.warning === undefined);
});

test("worker settings out of range in DB 8 are clamped or fall back to the worker's default", (t) => {
  const d = deployment({ worker: JSON.stringify({ module: "/m.js", command: [], concurrency: 1e9, maxBatchSize: -3 }) });
  t.true(d.ok);
  if (d.ok) {
    t.is(d.value.worker.concurrency, 1_024);
    t.is(d.value.worker.maxBatchSize, 0);
    t.regex(d.warning ?? "", /worker\.concurrency/);
  }
});

test("an app's SLO is clamped above the limit and refused below it", (t) => {
  const app = (slo: string) => decodeApp("a", { input_type: "doubles", latency_slo_micros: slo });
  const big = app("99999999999999999999");
  t.true(big.ok && big.value.latencySloMicros === 1_800_000_000 && big.warning !== undefined);
  t.true(app("5000").ok && (app("5000") as { warning?: string }).warning === undefined);
  for (const slo of ["0", "-1", "x", "", "1e-3"]) t.false(app(slo).ok, slo);
});
