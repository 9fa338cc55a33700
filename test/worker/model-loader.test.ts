import test from "ava";
import { backoffDelayMs, RECONNECT_BASE_DELAY_MS, RECONNECT_MAX_DELAY_MS } from "../../core/backoff.js";
import { loadModel } from "../../worker/model-loader.js";

test("a default export and a named predict export both load", async (t) => {
  const a = await loadModel("test/fixtures/sum-doubles.ts");
  t.true(a.ok);
  if (a.ok) t.deepEqual(await a.predict([new Float64Array([1, 2])]), [3]);
  const b = await loadModel("test/fixtures/describe-inputs.ts");
  t.true(b.ok);
  if (b.ok) t.deepEqual(await b.predict(["x"]), ["X"]);
});

test("a missing file or a module without a model function is a clear error", async (t) => {
  const missing = await loadModel("test/fixtures/does-not-exist.js");
  t.false(missing.ok);
  if (!missing.ok) t.regex(missing.error, /does not exist/);
  const none = await loadModel("test/fixtures/no-model-export.ts");
  t.false(none.ok);
  if (!none.ok) t.regex(none.error, /no model function.*answer/);
  const dir = await loadModel("test/fixtures");
  t.false(dir.ok);
});

test("reconnect backoff grows exponentially, is jittered, and is capped", (t) => {
  t.is(backoffDelayMs(0, () => 0), RECONNECT_BASE_DELAY_MS / 2);
  t.is(backoffDelayMs(0, () => 1), RECONNECT_BASE_DELAY_MS);
  t.is(backoffDelayMs(3, () => 1), RECONNECT_BASE_DELAY_MS * 8);
  t.is(backoffDelayMs(100, () => 1), RECONNECT_MAX_DELAY_MS);
  t.is(backoffDelayMs(100, () => 0), RECONNECT_MAX_DELAY_MS / 2);
});
