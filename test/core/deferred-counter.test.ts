import test from "ava";
import { Registry } from "prom-client";
import { DeferredCounter } from "../../core/telemetry/deferred-counter.js";

function counter(): { registry: Registry; c: DeferredCounter<"path"> } {
  const registry = new Registry();
  const c = new DeferredCounter<"path">({ name: "t_calls_total", help: "calls", labelNames: ["path"] as const, registers: [registry] });
  return { registry, c };
}

const valueOf = async (registry: Registry, path: string): Promise<number | undefined> => {
  const [metric] = await registry.getMetricsAsJSON();
  return (metric?.values as Array<{ labels: { path?: string }; value: number }>).find((v) => v.labels.path === path)?.value;
};

test("every increment made before a read is in it, by child, and a read does not count them twice", async (t) => {
  const { registry, c } = counter();
  const a = c.labels({ path: "a" });
  const b = c.labels({ path: "b" });
  for (let i = 0; i < 1000; i++) a.inc();
  b.inc(5);
  t.regex(await registry.metrics(), /t_calls_total\{path="a"\} 1000\n/);
  t.is(await valueOf(registry, "b"), 5);
  t.is(await valueOf(registry, "a"), 1000, "a second read adds nothing");
  a.inc(2);
  t.is(await valueOf(registry, "a"), 1002);
});

test("the counter is prom-client's own: its type, help and labels are what a plain Counter exposes", async (t) => {
  const { registry, c } = counter();
  c.labels({ path: "x" }).inc();
  const text = await registry.metrics();
  t.regex(text, /^# HELP t_calls_total calls$/m);
  t.regex(text, /^# TYPE t_calls_total counter$/m);
  t.is(registry.getSingleMetric("t_calls_total"), c.counter);
});
