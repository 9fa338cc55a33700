import test from "ava";
import { appOfRequest, appThresholdMs, AUTO_FLOOR_MS, autoThresholdMs, parseDoorSetting } from "../../gateway/loop-door.js";
import { PredictRequest } from "../../gen/clipper/v1/predict.js";
import { ModelInferRequest } from "../../gen/inference/open_inference.js";

test("--shed-loop-delay-ms reads auto, 0 (off) and whole numbers of ms, and refuses anything else with a message naming the flag", (t) => {
  t.deepEqual(parseDoorSetting("auto"), { ok: true, setting: { kind: "auto" } });
  t.deepEqual(parseDoorSetting(" AUTO "), { ok: true, setting: { kind: "auto" } });
  t.deepEqual(parseDoorSetting("0"), { ok: true, setting: { kind: "off" } });
  t.deepEqual(parseDoorSetting("35"), { ok: true, setting: { kind: "fixed", ms: 35 } });
  for (const bad of ["", "-5", "2.5", "50ms", "off", "99999999999999999999"]) {
    const r = parseDoorSetting(bad);
    t.false(r.ok, bad);
    if (!r.ok) t.regex(r.error, /--shed-loop-delay-ms: .* is not 'auto' or a whole number of ms/);
  }
});

test("auto gives an app's calls half its SLO, and calls of unknown apps half the smallest SLO served; never under the floor, and Clipper's default SLO's half while no app is served", (t) => {
  t.is(autoThresholdMs([100_000, 400_000]), 50);
  t.is(autoThresholdMs([1_000_000, 300_000, 120_000]), 60);
  t.is(autoThresholdMs([10_000]), AUTO_FLOOR_MS, "a 10 ms SLO would ask for 5 ms");
  t.is(autoThresholdMs([]), 50);
  t.is(autoThresholdMs([0, -1]), 50, "SLOs that are not positive are not SLOs");
  t.is(autoThresholdMs([20_000_000]), 10_000);
  t.is(appThresholdMs(100_000), 50);
  t.is(appThresholdMs(10_000_000), 5_000);
  t.is(appThresholdMs(30_000), AUTO_FLOOR_MS);
});

test("a decoded Predict, PredictBatch or ModelInfer request names its app", (t) => {
  t.is(appOfRequest(PredictRequest.fromPartial({ app: "a1" })), "a1");
  t.is(appOfRequest({ app: "batch-app", inputs: [] }), "batch-app");
  t.is(appOfRequest(ModelInferRequest.fromPartial({ modelName: "m1" })), "m1");
  t.is(appOfRequest(null), undefined);
  t.is(appOfRequest({ app: 7 }), undefined);
  t.is(appOfRequest("app"), undefined);
});
