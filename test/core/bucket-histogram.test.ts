/**
 * core/telemetry/bucket-histogram.ts against prom-client's own Histogram:
 * fed the same observations, a registry shows the same /metrics text byte
 * for byte, the same JSON, and the same cluster aggregate.
 */
import test from "ava";
import { AggregatorRegistry, Histogram, Registry } from "prom-client";
import { BucketHistogram } from "../../core/telemetry/bucket-histogram.js";
import { DURATION_BUCKETS_SECONDS } from "../../core/telemetry/metrics.js";

const NAME = "clipper_test_duration_seconds";
const HELP = "A test histogram, in seconds.";
const LABELS = ["method", "transport"] as const;

function pair(): { ours: BucketHistogram<(typeof LABELS)[number]>; theirs: Histogram<(typeof LABELS)[number]>; oursRegistry: Registry; theirsRegistry: Registry } {
  const oursRegistry = new Registry();
  const theirsRegistry = new Registry();
  for (const r of [oursRegistry, theirsRegistry]) r.setDefaultLabels({ service: "clipper-test" });
  const config = { name: NAME, help: HELP, labelNames: LABELS, buckets: [...DURATION_BUCKETS_SECONDS] };
  return {
    ours: new BucketHistogram({ ...config, registers: [oursRegistry] }),
    theirs: new Histogram({ ...config, registers: [theirsRegistry] }),
    oursRegistry,
    theirsRegistry,
  };
}

/** Values on, between, below and above the bounds, and a label value that needs escaping. */
function feed(h: { labels(l: { method: string; transport: string }): { observe(v: number): void } }, seed: number): void {
  const sets = [
    { method: "clipper.v1.Predict/Predict", transport: "grpc" },
    { method: "POST /{app}/predict", transport: "clipper-rest" },
    { method: 'a "quoted"\\name', transport: "http" },
  ];
  const children = sets.map((s) => h.labels(s));
  let x = seed;
  for (let i = 0; i < 5000; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const child = children[x % children.length]!;
    const kind = (x >> 4) % 5;
    const bound = DURATION_BUCKETS_SECONDS[(x >> 8) % DURATION_BUCKETS_SECONDS.length]!;
    child.observe(kind === 0 ? bound : kind === 1 ? bound * 0.999 : kind === 2 ? 20 + (x % 100) : kind === 3 ? -0.001 : ((x >> 3) % 100_000) / 1e6);
  }
}

test("the /metrics text and JSON are exactly prom-client's for the same observations", async (t) => {
  const p = pair();
  feed(p.ours, 7);
  feed(p.theirs, 7);
  t.is(await p.oursRegistry.metrics(), await p.theirsRegistry.metrics());
  t.deepEqual(project(await p.oursRegistry.getMetricsAsJSON()), project(await p.theirsRegistry.getMetricsAsJSON()));
  t.regex(await p.oursRegistry.metrics(), /clipper_test_duration_seconds_bucket\{le="\+Inf",service="clipper-test",method="clipper.v1.Predict\/Predict",transport="grpc"\} \d+/);
});

test("remove forgets one label set and reset all, as prom-client does", async (t) => {
  const p = pair();
  feed(p.ours, 11);
  feed(p.theirs, 11);
  for (const h of [p.ours, p.theirs]) h.remove({ method: "POST /{app}/predict", transport: "clipper-rest" });
  t.is(await p.oursRegistry.metrics(), await p.theirsRegistry.metrics());
  t.notRegex(await p.oursRegistry.metrics(), /clipper-rest/);
  // A child held across the removal starts its series again from zero; one never observed is not shown.
  for (const h of [p.ours, p.theirs]) {
    h.labels({ method: "POST /{app}/predict", transport: "clipper-rest" }).observe(0.003);
    h.labels({ method: "never", transport: "grpc" });
  }
  t.is(await p.oursRegistry.metrics(), await p.theirsRegistry.metrics());
  t.regex(await p.oursRegistry.metrics(), /_count\{service="clipper-test",method="POST \/\{app\}\/predict",transport="clipper-rest"\} 1\n/);
  t.notRegex(await p.oursRegistry.metrics(), /never/);
  p.oursRegistry.resetMetrics();
  p.theirsRegistry.resetMetrics();
  t.is(await p.oursRegistry.metrics(), await p.theirsRegistry.metrics());
  t.notRegex(await p.oursRegistry.metrics(), /_bucket/);
});

test("the cluster aggregate of several processes is prom-client's", async (t) => {
  const ours: Awaited<ReturnType<Registry["getMetricsAsJSON"]>>[] = [];
  const theirs: Awaited<ReturnType<Registry["getMetricsAsJSON"]>>[] = [];
  for (const seed of [1, 2, 3]) {
    const p = pair();
    feed(p.ours, seed);
    feed(p.theirs, seed);
    ours.push(await p.oursRegistry.getMetricsAsJSON());
    theirs.push(await p.theirsRegistry.getMetricsAsJSON());
  }
  t.is(await AggregatorRegistry.aggregate(ours).metrics(), await AggregatorRegistry.aggregate(theirs).metrics());
});

test("a value that is not a finite number, an unknown label and an 'le' label are refused as prom-client refuses them", (t) => {
  const { ours } = pair();
  const child = ours.labels({ method: "m", transport: "grpc" });
  for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) t.throws(() => child.observe(bad), { instanceOf: TypeError });
  t.is(child.count, 0, "nothing was counted");
  t.throws(() => ours.labels({ method: "m", code: "OK" } as never), { message: /unknown label 'code'/ });
  t.throws(() => new BucketHistogram({ name: "x", help: "x", labelNames: ["le"], buckets: [1], registers: [] }), { message: /le is a reserved/ });
  t.throws(() => new BucketHistogram({ name: "x", help: "x", labelNames: [], buckets: [2, 1], registers: [] }), { message: /ascending/ });
  t.is(ours.labels({ transport: "grpc", method: "m" }), child, "one child per label set, whatever the key order");
});

/** The fields the registry and the aggregator read, labels in a stable order. */
function project(metrics: Awaited<ReturnType<Registry["getMetricsAsJSON"]>>): unknown {
  return metrics.map((m) => ({
    name: m.name,
    help: m.help,
    type: m.type,
    aggregator: m.aggregator,
    values: (m.values as { labels: Record<string, unknown>; value: number; metricName?: string }[]).map((v) => ({
      metricName: v.metricName,
      value: v.value,
      labels: Object.fromEntries(Object.entries(v.labels).sort(([a], [b]) => a.localeCompare(b))),
    })),
  }));
}
