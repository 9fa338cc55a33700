import test from "ava";
import { Registry } from "prom-client";
import { ModelMetrics } from "../../worker/model-metrics.js";
import { WorkerMetrics } from "../../worker/metrics.js";
import { status as Code } from "@grpc/grpc-js";
import { failAll, runBatch } from "../../worker/batch-executor.js";
import { Scrape } from "../helpers/prometheus.js";

const fresh = () => {
  const registry = new Registry();
  return { registry, metrics: new ModelMetrics(registry), scrape: async () => new Scrape(await registry.metrics()) };
};

test("counters, gauges and histograms get the clipper_model_ prefix and their values", async (t) => {
  const { metrics, scrape } = fresh();
  const c = metrics.counter("tokens_total", "Tokens produced", { labelNames: ["kind"] });
  c.inc();
  c.inc(4, { kind: "word" });
  const g = metrics.gauge("queue_items", "Items queued inside the model");
  g.set(7);
  g.dec(2);
  g.inc();
  const h = metrics.histogram("decode_seconds", "Time decoding", { buckets: [0.1, 1] });
  h.observe(0.05);
  h.observe(0.5);
  const s = await scrape();
  t.is(s.value("clipper_model_tokens_total", { kind: "word" }), 4);
  t.is(s.all("clipper_model_tokens_total").reduce((n, x) => n + x.value, 0), 5);
  t.is(s.value("clipper_model_queue_items"), 6);
  t.is(s.value("clipper_model_decode_seconds_bucket", { le: "0.1" }), 1);
  t.is(s.value("clipper_model_decode_seconds_bucket", { le: "1" }), 2);
  t.is(s.value("clipper_model_decode_seconds_count"), 2);
  t.regex(s.text, /# HELP clipper_model_tokens_total Tokens produced/);
});

test("Clipper's add_metric / report_metric: a counter adds, a gauge sets, a histogram observes", async (t) => {
  const { metrics, scrape } = fresh();
  metrics.addMetric("requests", "Counter", "Requests");
  metrics.addMetric("temperature", "gauge", "Degrees");
  metrics.addMetric("latency_seconds", "HISTOGRAM", "Latency", [0.5, 5]);
  metrics.reportMetric("requests", 2);
  metrics.reportMetric("requests", 3);
  metrics.reportMetric("temperature", 20);
  metrics.reportMetric("temperature", 18.5);
  metrics.reportMetric("latency_seconds", 1);
  const s = await scrape();
  t.is(s.value("clipper_model_requests"), 5);
  t.is(s.value("clipper_model_temperature"), 18.5);
  t.is(s.value("clipper_model_latency_seconds_bucket", { le: "0.5" }), 0);
  t.is(s.value("clipper_model_latency_seconds_bucket", { le: "5" }), 1);
});

test("defining a name again returns the same metric; another kind, a bad name or label is a TypeError naming the fix", (t) => {
  const { metrics } = fresh();
  const a = metrics.counter("x_total", "x");
  t.is(metrics.counter("x_total", "x again"), a);
  t.throws(() => metrics.gauge("x_total", "x"), { instanceOf: TypeError, message: /already defined as a counter/ });
  t.throws(() => metrics.counter("1bad", "x"), { instanceOf: TypeError, message: /invalid/ });
  t.throws(() => metrics.counter("has-dash", "x"), { instanceOf: TypeError });
  t.throws(() => metrics.counter("y_total", "y", { labelNames: ["model"] }), { instanceOf: TypeError, message: /reserved/ });
  t.throws(() => metrics.addMetric("s", "Summary", "s"), { instanceOf: TypeError, message: /use Histogram/ });
  t.throws(() => metrics.addMetric("m", "Meter", "m"), { instanceOf: TypeError, message: /Counter, Gauge or Histogram/ });
  t.throws(() => metrics.reportMetric("never_defined", 1), { instanceOf: TypeError, message: /define it first/ });
});

test("the worker counts items by outcome, model time per model call and failed model calls", async (t) => {
  const m = new WorkerMetrics("sum", "3");
  const request = { batchId: 1, deadlineUnixMicros: 0, itemDeadlinesUnixMicros: [0, 1, 0], trace: undefined, inputType: "" };
  const doubles = (...xs: number[]) => Buffer.from(new Float64Array(xs).buffer);
  // Item 1 is past its deadline; item 2 is not a whole number of doubles.
  m.batchRan(await runBatch({ inputType: "doubles", predict: async (xs) => xs.map(() => "ok"), maxBatchSize: 0 }, request, [doubles(1), doubles(2), Buffer.from([1, 2, 3])]));
  m.batchRan(await runBatch({ inputType: "doubles", predict: async () => { throw new Error("boom"); }, maxBatchSize: 0 }, { ...request, itemDeadlinesUnixMicros: [] }, [doubles(1)]));
  m.batchRan(failAll(2, Code.UNAVAILABLE, "draining"));
  m.rejected(4);
  const s = new Scrape(await m.registry.metrics());
  const own = { service: "clipper-worker", model: "sum", version: "3" };
  t.is(s.value("clipper_worker_items_total", { ...own, outcome: "ok" }), 1);
  t.is(s.value("clipper_worker_items_total", { ...own, outcome: "expired" }), 1);
  t.is(s.value("clipper_worker_items_total", { ...own, outcome: "invalid" }), 1);
  t.is(s.value("clipper_worker_items_total", { ...own, outcome: "error" }), 3);
  t.is(s.value("clipper_worker_items_total", { ...own, outcome: "rejected" }), 4);
  // Two model calls; the failAll batch never reached the model.
  t.is(s.value("clipper_worker_predict_duration_seconds_count", own), 2);
  t.is(s.value("clipper_worker_model_errors_total", own), 1);
});
