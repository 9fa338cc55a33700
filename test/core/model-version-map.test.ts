import test from "ava";
import { ModelVersionMap } from "../../core/model-version-map.js";

test("entries are keyed by name and version, not by a joined spelling", (t) => {
  const m = new ModelVersionMap<number>();
  m.set("a", "1", 1).set("a", "2", 2).set("b", "1", 3);
  t.is(m.get("a", "2"), 2);
  t.is(m.get("a:2", ""), undefined);
  t.is(m.size, 3);
  t.true(m.delete("a", "1"));
  t.false(m.delete("a", "1"));
  t.deepEqual([...m.values()].sort(), [2, 3]);
});
