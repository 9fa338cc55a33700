import test from "ava";
import { parsePrometheusText, summarize, type Scrape } from "../../clients/cli/gateway-metrics.js";

const text = (calls: number, fast: number, slow: number, batches: number, items: number): string =>
  [
    "# HELP clipper_predictions_total Predictions.",
    "# TYPE clipper_predictions_total counter",
    `clipper_predictions_total{app="a",outcome="ok"} ${calls}`,
    `clipper_predictions_total{app="b",outcome="ok"} 0`,
    "# TYPE clipper_prediction_duration_seconds histogram",
    `clipper_prediction_duration_seconds_bucket{le="0.005",app="a"} ${fast}`,
    `clipper_prediction_duration_seconds_bucket{le="0.05",app="a"} ${fast + slow}`,
    `clipper_prediction_duration_seconds_bucket{le="+Inf",app="a"} ${fast + slow}`,
    `clipper_prediction_duration_seconds_sum{app="a"} 1`,
    `clipper_prediction_duration_seconds_count{app="a"} ${fast + slow}`,
    `clipper_batch_size_sum{model="m"} ${items}`,
    `clipper_batch_size_count{model="m"} ${batches}`,
    "process_cpu_seconds_total 1.5",
  ].join("\n");

const at = (ms: number, body: string): Scrape => ({ at: ms, samples: parsePrometheusText(body) });

test("parses series with labels and skips comments", (t) => {
  const s = parsePrometheusText(text(3, 1, 0, 1, 1));
  t.is(s.get('clipper_predictions_total{app="a",outcome="ok"}'), 3);
  t.is(s.get("process_cpu_seconds_total"), 1.5);
  t.false([...s.keys()].some((k) => k.startsWith("#")));
});

test("calls/s, p99 and mean batch size come from the window between two scrapes", (t) => {
  const m = summarize(at(2_000, text(150, 100, 2, 30, 120)), at(0, text(50, 0, 0, 10, 20)));
  t.is(m.callsPerSec, 50);
  t.is(m.totalCalls, 150);
  t.is(m.p99Ms, 50, "2 of 102 calls were slow: p99 is in the 50 ms bucket");
  t.is(m.meanBatchSize, 5);
});

test("missing metrics degrade to null instead of failing", (t) => {
  t.deepEqual(summarize(at(1, "process_cpu_seconds_total 1"), null), { callsPerSec: null, p99Ms: null, meanBatchSize: null, totalCalls: null });
  t.deepEqual(summarize(null, null), { callsPerSec: null, p99Ms: null, meanBatchSize: null, totalCalls: null });
  t.is(summarize(at(1, text(5, 1, 0, 1, 1)), null).callsPerSec, null, "a rate needs two scrapes");
});
