import test from "ava";
import { hasKeySeparator, modelNameProblem } from "../../core/names.js";

test("Clipper's key separators are refused in names, anything else is kept", (t) => {
  t.true(hasKeySeparator("a,b"));
  t.true(hasKeySeparator("a:b"));
  t.false(hasKeySeparator("model-1.2_x y"));
});

test("the problem text names what was checked and why", (t) => {
  t.is(modelNameProblem("model name", "m"), null);
  t.is(modelNameProblem("model name", ""), "model name must not be empty");
  t.regex(modelNameProblem("model version", "1:2") ?? "", /^model version '1:2' must not contain ',' or ':'/);
});
