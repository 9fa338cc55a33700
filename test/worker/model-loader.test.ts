import test from "ava";
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
