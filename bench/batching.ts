/**
 * Adaptive batching under load: 64 concurrent callers on a model costing
 * 5 ms + 0.1 ms per item per batch, through Clipper's POST /<app>/predict.
 * Runs the same load twice in one command, against the adaptive batcher and
 * against a baseline with batch_size fixed at 1, and reports mean batch
 * size, status counts, p50/p99 latency against the SLO, and the throughput
 * ratio. Everything runs on 127.0.0.1 and stops by itself.
 *
 *   npx tsx bench/batching.ts [--callers 64] [--calls-per-caller 50] [--slo-ms 100]
 */
import { parseArgs } from "node:util";
import { Stack } from "../test/helpers/stack.js";

const { values } = parseArgs({
  options: {
    callers: { type: "string", default: "64" },
    "calls-per-caller": { type: "string", default: "50" },
    "slo-ms": { type: "string", default: "100" },
  },
});
const CALLERS = Number(values.callers);
const PER_CALLER = Number(values["calls-per-caller"]);
const SLO_MS = Number(values["slo-ms"]);

interface Run {
  label: string;
  statuses: Map<number, number>;
  defaults: number;
  batchSizes: number[];
  latenciesMs: number[];
  seconds: number;
}

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
};

async function run(stack: Stack, app: string, label: string): Promise<Run> {
  const r: Run = { label, statuses: new Map(), defaults: 0, batchSizes: [], latenciesMs: [], seconds: 0 };
  const url = `http://127.0.0.1:${stack.gateway.http}/${app}/predict`;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CALLERS }, async (_, c) => {
      for (let i = 0; i < PER_CALLER; i++) {
        const t0 = performance.now();
        const res = await fetch(url, { method: "POST", body: JSON.stringify({ input: [c, i, Math.random()] }) });
        const body = (await res.json()) as { output?: { batch?: number }; default?: boolean };
        r.latenciesMs.push(performance.now() - t0);
        r.statuses.set(res.status, (r.statuses.get(res.status) ?? 0) + 1);
        if (body.default === true) r.defaults++;
        else if (typeof body.output?.batch === "number") r.batchSizes.push(body.output.batch);
      }
    }),
  );
  r.seconds = (performance.now() - start) / 1000;
  return r;
}

function report(r: Run): string {
  const mean = r.batchSizes.reduce((a, b) => a + b, 0) / Math.max(1, r.batchSizes.length);
  const calls = r.latenciesMs.length;
  return [
    `${r.label}:`,
    `  calls ${calls}, statuses ${JSON.stringify(Object.fromEntries(r.statuses))}, defaults ${r.defaults}`,
    `  mean batch size seen by the model ${mean.toFixed(2)} (max ${Math.max(0, ...r.batchSizes)})`,
    `  latency p50 ${quantile(r.latenciesMs, 0.5).toFixed(1)} ms, p99 ${quantile(r.latenciesMs, 0.99).toFixed(1)} ms (SLO ${SLO_MS} ms)`,
    `  throughput ${(calls / r.seconds).toFixed(0)} calls/s`,
  ].join("\n");
}

const stack = await Stack.start();
try {
  await stack.deploy("adaptive", "cost-adaptive", "1", "doubles", { sloMicros: SLO_MS * 1000 });
  await stack.deploy("baseline", "cost-fixed-1", "1", "doubles", { sloMicros: SLO_MS * 1000, batchSize: 1 });
  await stack.worker("cost-adaptive", "1", "doubles", "test/fixtures/models/batch-reporter.js");
  await stack.worker("cost-fixed-1", "1", "doubles", "test/fixtures/models/batch-reporter.js");
  // Warm-up: let the latency model see a few batches.
  await run(stack, "adaptive", "warm-up");
  const adaptive = await run(stack, "adaptive", "adaptive batching");
  const baseline = await run(stack, "baseline", "baseline (batch_size 1)");
  console.log(report(adaptive));
  console.log(report(baseline));
  const ratio = (adaptive.latenciesMs.length / adaptive.seconds) / (baseline.latenciesMs.length / baseline.seconds);
  console.log(`throughput ratio adaptive / baseline: ${ratio.toFixed(2)}x`);
} finally {
  await stack.close();
}
