import test from "ava";
import { KeyedLock } from "../../management/keyed-lock.js";

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

test("operations on one key run one at a time in call order, even when one fails", async (t) => {
  const lock = new KeyedLock();
  const log: string[] = [];
  const op = (name: string, fail = false) =>
    lock.run("m", async () => {
      log.push(`${name} start`);
      await tick();
      log.push(`${name} end`);
      if (fail) throw new Error(name);
      return name;
    });
  const results = await Promise.allSettled([op("a", true), op("b"), op("c")]);
  t.deepEqual(log, ["a start", "a end", "b start", "b end", "c start", "c end"]);
  t.deepEqual(results.map((r) => r.status), ["rejected", "fulfilled", "fulfilled"]);
});

test("operations on different keys run side by side", async (t) => {
  const lock = new KeyedLock();
  const log: string[] = [];
  const op = (key: string) =>
    lock.run(key, async () => {
      log.push(`${key} start`);
      await tick();
      log.push(`${key} end`);
    });
  await Promise.all([op("x"), op("y")]);
  t.deepEqual(log.slice(0, 2), ["x start", "y start"]);
});
