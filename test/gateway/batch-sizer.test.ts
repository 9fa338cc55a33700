import test from "ava";
import { budgetMs, chooseBatchSize, choosePlan, isDoomed, type Plan } from "../../gateway/batch-sizer.js";
import { LatencyModel } from "../../gateway/latency-model.js";

/** A simulated replica: `fixed` ms per batch plus `perItem` ms per item, plus optional noise. */
type Cost = (n: number) => number;
const linear = (fixed: number, perItem: number): Cost => (n) => fixed + perItem * n;

/** Deterministic noise in [0, 1) (LCG), so runs are reproducible. */
function lcg(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

/**
 * Closed loop: the sizer picks a size, the simulated replica "runs" it and
 * the latency is fed back. Returns the sizes chosen and how many batches
 * finished after the budget.
 */
function run(model: LatencyModel, cost: Cost, budgetMs: number, iterations: number, queued = 100_000, cap = Infinity) {
  const sizes: number[] = [];
  let late = 0;
  for (let i = 0; i < iterations; i++) {
    const n = chooseBatchSize({ model, queued, budgetMs, cap });
    const ms = cost(n);
    if (ms > budgetMs) late++;
    model.observe(n, ms);
    sizes.push(n);
  }
  return { sizes, late, last: sizes[sizes.length - 1]! };
}

test("with no observations the batch size is 1, and 0 when nothing is queued", (t) => {
  const model = new LatencyModel();
  t.is(chooseBatchSize({ model, queued: 50, budgetMs: 1000, cap: Infinity }), 1);
  t.is(chooseBatchSize({ model, queued: 0, budgetMs: 1000, cap: Infinity }), 0);
  model.observe(1, 1);
  t.is(chooseBatchSize({ model, queued: 0, budgetMs: 1000, cap: Infinity }), 0);
});

test("a model costing 5 ms + 0.1 ms/item settles at a large batch under a 100 ms budget", (t) => {
  const model = new LatencyModel();
  const { sizes, late, last } = run(model, linear(5, 0.1), 100, 60);
  // The best size is 950 (5 + 0.1·950 = 100).
  t.true(last >= 900, `settled at ${last}`);
  t.true(last <= 950, `settled at ${last}`);
  t.is(late, 0);
  t.true(sizes.indexOf(last) < 25, `took ${sizes.indexOf(last)} batches to get there: ${sizes.join(",")}`);
  // Growth is gradual: never more than +1 below 10, never more than ×2 beyond.
  for (let i = 1; i < sizes.length; i++) {
    const prev = Math.max(...sizes.slice(0, i));
    t.true(sizes[i]! <= (prev < 10 ? prev + 1 : prev * 2), `step ${i}: ${sizes[i]} after max ${prev}`);
  }
});

test("the same model settles at a small batch under a 6 ms budget", (t) => {
  const { sizes, late, last } = run(new LatencyModel(), linear(5, 0.1), 6, 60);
  // The best size is 10 (5 + 0.1·10 = 6); batch 1 alone already costs 5.1 ms.
  t.true(last >= 8, `settled at ${last}: ${sizes.join(",")}`);
  t.true(last <= 10, `settled at ${last}: ${sizes.join(",")}`);
  t.is(late, 0);
});

test("with noisy latencies it still settles near the best size and rarely runs late", (t) => {
  const rnd = lcg(7);
  const noisy: Cost = (n) => 5 + 0.1 * n + 2 * rnd();
  const { sizes, late } = run(new LatencyModel(), noisy, 100, 300);
  const tail = sizes.slice(-100);
  const avg = tail.reduce((a, b) => a + b, 0) / tail.length;
  // Best is ~930 (worst-case noise 2 ms); the 3σ margin costs a little.
  t.true(avg > 800, `average ${avg}`);
  t.true(avg <= 930, `average ${avg}`);
  t.true(late <= 3, `${late} late batches`);
});

test("never exceeds what predict() says fits, once a slope is known", (t) => {
  const rnd = lcg(99);
  const model = new LatencyModel();
  for (let i = 0; i < 40; i++) {
    const n = 1 + (i % 20) * 3;
    model.observe(n, 4 + 0.3 * n + rnd());
  }
  t.true(model.hasSlope);
  for (const budgetMs of [3, 5, 8, 10, 15, 20, 30, 50, 80]) {
    for (const queued of [1, 2, 7, 30, 100, 5000]) {
      const n = chooseBatchSize({ model, queued, budgetMs, cap: Infinity });
      t.true(n >= 1, `size ${n}`);
      t.true(n <= queued, `size ${n} of ${queued} queued`);
      if (n > 1) t.true(model.predict(n) <= budgetMs, `budget ${budgetMs}: size ${n} predicted ${model.predict(n)}`);
      // ...and it is the largest such size up to the exploration ceiling.
      const ceiling = Math.min(queued, model.largestObserved * 2);
      if (n < ceiling) t.true(model.predict(n + 1) > budgetMs, `budget ${budgetMs}: ${n + 1} would also fit`);
    }
  }
  // Nothing fits: 1, never 0.
  t.is(chooseBatchSize({ model, queued: 100, budgetMs: 1, cap: Infinity }), 1);
  t.is(chooseBatchSize({ model, queued: 100, budgetMs: 0, cap: Infinity }), 1);
  t.is(chooseBatchSize({ model, queued: 100, budgetMs: -50, cap: Infinity }), 1);
});

test("respects queued (never padded), the fixed batch_size cap and maxBatchSize", (t) => {
  const model = new LatencyModel({ maxBatchSize: 64 });
  run(model, linear(1, 0.01), 1000, 40);
  t.is(chooseBatchSize({ model, queued: 1000, budgetMs: 1000, cap: Infinity }), 64);
  t.is(chooseBatchSize({ model, queued: 1000, budgetMs: 1000, cap: 16 }), 16);
  t.is(chooseBatchSize({ model, queued: 5, budgetMs: 1000, cap: 16 }), 5);
  t.is(chooseBatchSize({ model, queued: 1, budgetMs: 1000, cap: 16 }), 1);
  t.is(chooseBatchSize({ model, queued: 1000, budgetMs: 1000, cap: 0 }), 1); // nonsense cap acts as 1
  t.is(chooseBatchSize({ model, queued: 1000, budgetMs: 1000, cap: Number.NaN }), 64);
});

test("a capped loop never exceeds the cap or the queue", (t) => {
  const { sizes } = run(new LatencyModel(), linear(5, 0.1), 100, 60, 100_000, 32);
  t.is(Math.max(...sizes), 32);
  t.is(sizes[sizes.length - 1], 32);
  const small = run(new LatencyModel(), linear(5, 0.1), 100, 60, 3, Infinity);
  t.is(Math.max(...small.sizes), 3);
});

test("adapts down when the model gets slower, and back up when it recovers", (t) => {
  const model = new LatencyModel();
  const fast = run(model, linear(5, 0.1), 100, 60);
  t.true(fast.last >= 900);
  // 4× slower per item: best size is now (100 − 5) / 0.4 = 237.
  const slow = run(model, linear(5, 0.4), 100, 60);
  t.true(slow.last >= 200, `slow settled at ${slow.last}`);
  t.true(slow.last <= 237, `slow settled at ${slow.last}`);
  // The batch that revealed it and the one that confirmed it (a lone slow batch is treated as an outlier).
  t.true(slow.late <= 2, `${slow.late} late batches after the slowdown`);
  t.true(slow.sizes.slice(5).every((n) => n <= 237), slow.sizes.join(","));
  const again = run(model, linear(5, 0.1), 100, 60);
  t.true(again.last >= 900, `recovered to ${again.last}`);
  t.is(again.late, 0);
});

test("decay alone also adapts to a gradual slowdown", (t) => {
  const model = new LatencyModel();
  let perItem = 0.1;
  const drifting: Cost = (n) => 5 + perItem * n;
  let late = 0;
  let n = 0;
  for (let i = 0; i < 600; i++) {
    perItem = 0.1 + (0.3 * Math.min(i, 400)) / 400; // 0.1 → 0.4 over 400 batches
    n = chooseBatchSize({ model, queued: 100_000, budgetMs: 100, cap: Infinity });
    const ms = drifting(n);
    if (ms > 100) late++;
    model.observe(n, ms);
  }
  t.true(n >= 200, `settled at ${n}`);
  t.true(n <= 237, `settled at ${n}`);
  t.true(late <= 20, `${late} late batches`);
});

// LatencyModel on its own.

test("predict is Infinity with no data, 0 for empty batches, never NaN", (t) => {
  const model = new LatencyModel();
  t.is(model.samples, 0);
  t.is(model.largestObserved, 0);
  t.is(model.predict(1), Infinity);
  t.is(model.predict(0), 0);
  t.is(model.predict(Number.NaN), Infinity);
  model.observe(4, 10);
  t.false(Number.isNaN(model.predict(1)));
  t.false(Number.isNaN(model.predict(1000)));
});

test("with one size seen, predictions are flat below it and proportional above it", (t) => {
  const model = new LatencyModel();
  model.observe(4, 10);
  t.false(model.hasSlope);
  t.is(model.predict(4), 10);
  t.is(model.predict(2), 10); // could be all fixed overhead
  t.is(model.predict(8), 20); // could be all per-item cost
  t.is(model.samples, 1);
  t.is(model.largestObserved, 4);
});

test("recovers an exact linear cost and extrapolates it", (t) => {
  const model = new LatencyModel();
  for (const n of [1, 2, 3, 5, 8, 13, 21]) model.observe(n, 5 + 0.1 * n);
  t.true(model.hasSlope);
  for (const n of [1, 10, 21, 40]) t.true(Math.abs(model.predict(n) - (5 + 0.1 * n)) < 1e-6, `size ${n}: ${model.predict(n)}`);
});

test("with noise the prediction is an upper estimate that widens away from the data", (t) => {
  const rnd = lcg(3);
  const model = new LatencyModel();
  const seen = new Map<number, number[]>();
  for (let i = 0; i < 200; i++) {
    const n = 10 + (i % 11);
    const ms = 5 + 0.1 * n + 2 * (rnd() - 0.5);
    model.observe(n, ms);
    seen.set(n, [...(seen.get(n) ?? []), ms]);
  }
  for (const [n, list] of seen) {
    const mean = list.reduce((a, b) => a + b, 0) / list.length;
    t.true(model.predict(n) > mean + 1, `size ${n}: ${model.predict(n)} vs mean ${mean}`);
    t.true(model.predict(n) < mean + 4, `size ${n}: margin too large`);
  }
  // The margin above the true line grows with extrapolation distance.
  const margin = (n: number): number => model.predict(n) - (5 + 0.1 * n);
  t.true(margin(100) > margin(30));
  t.true(margin(30) > margin(15));
});

test("per-size statistics widen the margin where a size is noisier than the pooled fit", (t) => {
  // Realistic heteroscedasticity: large batches jitter more. The pooled σ of
  // the line underestimates the spread at the size the sizer actually uses.
  const rnd = lcg(11);
  const model = new LatencyModel();
  const at50: number[] = [];
  for (let i = 0; i < 60; i++) {
    for (const n of [1, 2, 3, 4, 5]) model.observe(n, 5 + 0.1 * n + 0.2 * (rnd() - 0.5));
    for (let k = 0; k < 5; k++) {
      const ms = 10 + 20 * (rnd() - 0.5);
      model.observe(50, ms);
      if (i >= 40) at50.push(ms);
    }
  }
  const mean = at50.reduce((a, b) => a + b, 0) / at50.length;
  const sd = Math.sqrt(at50.reduce((a, b) => a + (b - mean) ** 2, 0) / (at50.length - 1));
  t.true(model.predict(50) >= mean + 2.7 * sd, `predict(50) = ${model.predict(50)}, mean ${mean}, sd ${sd}`);
  // Sizes with no per-size statistics of their own use the line only.
  t.true(model.predict(49) < model.predict(50) - 2, `predict(49) = ${model.predict(49)}`);
  // Once size 50 is no longer used, its statistics age out with the rest.
  for (let i = 0; i < 100; i++) for (const n of [1, 5, 45]) model.observe(n, 5 + 0.1 * n);
  t.true(model.predict(50) < 12, `stale predict(50) = ${model.predict(50)}`);
});

test("invalid observations are ignored", (t) => {
  const model = new LatencyModel();
  model.observe(0, 5);
  model.observe(-1, 5);
  model.observe(1.5, 5);
  model.observe(2, Number.NaN);
  model.observe(2, -1);
  model.observe(2, Infinity);
  t.is(model.samples, 0);
  t.is(model.predict(2), Infinity);
});

test("old observations decay: the fit follows the recent cost", (t) => {
  // Long half-life keeps surprises out of it: a gradual change, fed at fixed sizes.
  const model = new LatencyModel({ halfLifeSamples: 8 });
  for (let i = 0; i < 100; i++) for (const n of [10, 20]) model.observe(n, 10 + n);
  t.true(Math.abs(model.predict(30) - 40) < 1e-6);
  let last = 0;
  for (let i = 0; i < 100; i++) for (const n of [10, 20]) model.observe(n, 10 + n + 0.01 * i);
  last = model.predict(15);
  // Recent latencies at 15 are ~25 + 0.99; without decay the mean shift would be half that.
  t.true(last > 25.9, `predict(15) = ${last}`);
  t.is(model.restarts, 0);
});

test("a step slowdown restarts the fit on its second slow batch", (t) => {
  const model = new LatencyModel();
  for (let i = 0; i < 50; i++) for (const n of [10, 20]) model.observe(n, 10 + n);
  model.observe(20, 120); // 4× slower
  t.is(model.restarts, 0);
  t.true(model.predict(20) < 120);
  model.observe(20, 121);
  t.is(model.restarts, 1);
  t.true(model.predict(20) >= 120);
  t.is(model.samples, 102);
});

test("a lone spike is an outlier: it neither restarts the fit nor blows up the small-batch estimate", (t) => {
  const next = lcg(7);
  const model = new LatencyModel();
  const cost: Cost = (n) => 5 + 0.1 * n + next();
  run(model, cost, 40, 200, 16);
  const before = model.predict(1);
  model.observe(16, 45); // a GC pause, a busy moment on the host
  t.is(model.restarts, 0);
  const after = run(model, cost, 40, 60, 16);
  t.deepEqual(new Set(after.sizes), new Set([16]));
  t.true(model.predict(1) < before + 2, `predict(1) ${before} before the spike, ${model.predict(1)} after`);
  // Two opposite surprises do not confirm each other either.
  model.observe(16, 45);
  model.observe(16, 0.1);
  t.is(model.restarts, 0);
});

test("a steady batch size does not inflate the estimate for smaller batches", (t) => {
  // Under steady closed-loop load every batch has the same size, so the
  // spread of sizes decays away; the estimate for one item must stay near
  // the observed cost (the dispatcher sheds queries by it).
  const next = lcg(7);
  const model = new LatencyModel();
  const result = run(model, (n) => 5 + 0.1 * n + next(), 40, 500, 16);
  t.is(result.last, 16);
  t.true(model.predict(1) <= model.predict(16), `predict(1) ${model.predict(1)} > predict(16) ${model.predict(16)}`);
  t.true(model.predict(16) < 9, `predict(16) = ${model.predict(16)}`);
  // And larger batches stay reachable when more callers arrive.
  t.true(chooseBatchSize({ model, queued: 32, budgetMs: 40, cap: Infinity }) >= 32);
});

test("rejects bad options", (t) => {
  t.throws(() => new LatencyModel({ maxBatchSize: 0 }), { instanceOf: RangeError });
  t.throws(() => new LatencyModel({ maxBatchSize: 2.5 }), { instanceOf: RangeError });
  t.throws(() => new LatencyModel({ halfLifeSamples: 0 }), { instanceOf: RangeError });
  t.is(new LatencyModel().maxBatchSize, 1024);
});

// Plans: which tasks the next batch takes.

/** A model that has seen 5 ms + 0.1 ms per item at sizes 1..64. */
function trainedModel(): LatencyModel {
  const model = new LatencyModel();
  for (let round = 0; round < 8; round++) for (const n of [1, 8, 16, 32, 64]) model.observe(n, 5 + 0.1 * n);
  return model;
}

test("with no backlog a plan skips nothing and sizes by the earliest deadline", (t) => {
  const model = trainedModel();
  const budgetsMs = Array.from({ length: 40 }, (_, i) => 40 + i * 0.1);
  t.deepEqual(choosePlan({ model, budgetsMs, queued: 40, cap: Infinity }), { skip: 0, size: 40 });
  // A tight head whose followers fit in the batch after it: nothing is skipped.
  const tight = [7, 7, ...Array.from({ length: 10 }, () => 40)];
  const plan = choosePlan({ model, budgetsMs: tight, queued: tight.length, cap: Infinity });
  t.is(plan.skip, 0);
  t.is(plan.size, chooseBatchSize({ model, queued: tight.length, budgetMs: 7, cap: Infinity }));
});

test("under a backlog a plan skips the head that cannot wait and takes a large batch", (t) => {
  const model = trainedModel();
  const budgetsMs = [...Array.from({ length: 20 }, () => 6), ...Array.from({ length: 200 }, (_, i) => 25 + i * 0.1)];
  const plan = choosePlan({ model, budgetsMs, queued: 220, cap: Infinity });
  t.true(plan.skip <= 20, `skipped ${plan.skip}`);
  t.true(plan.size >= 100, `batch of ${plan.size}`);
  t.true(model.predict(plan.size) <= budgetsMs[plan.skip]!, "every task in the batch makes its deadline");
  t.deepEqual(choosePlan({ model, budgetsMs: [], queued: 0, cap: Infinity }), { skip: 0, size: 0 });
});

/**
 * The planning rules alone, without the dispatcher around them (its own
 * open-loop test is in dispatcher.test.ts), so that planning by the plan
 * and by the earliest deadline can be compared under the same drop rule.
 * Open-loop arrivals at `perMs` queries per ms with a 50 ms SLO against a
 * 5 ms + 0.1 ms/item model (capacity within that SLO: 8 per ms), simulated
 * for 3 s. Returns the share of queries answered by the model in time.
 */
function openLoop(perMs: number, pick: (model: LatencyModel, budgetsMs: number[], queued: number) => Plan): number {
  const model = new LatencyModel();
  const cost = linear(5, 0.1);
  const queue: number[] = []; // deadlines, ascending
  let now = 0;
  let next = 0;
  let onTime = 0;
  let missed = 0;
  while (now < 3_000) {
    for (; next <= now; next += 1 / perMs) queue.push(next + 50);
    while (queue.length > 0 && isDoomed(model, budgetMs(queue[0]!, now))) {
      queue.shift();
      missed++;
    }
    if (queue.length === 0) {
      now = next;
      continue;
    }
    const plan = pick(model, queue.slice(0, 2048).map((d) => budgetMs(d, now)), queue.length);
    missed += plan.skip;
    const batch = queue.splice(0, plan.skip + Math.max(1, plan.size)).slice(plan.skip);
    const ms = cost(batch.length);
    now += ms;
    model.observe(batch.length, ms);
    for (const d of batch) if (now <= d) onTime++; else missed++;
  }
  return onTime / (onTime + missed);
}

test("open-loop arrivals at 75 % of capacity are served in time, where sizing by the earliest deadline collapses", (t) => {
  const planned = openLoop(6, (model, budgetsMs, queued) => choosePlan({ model, budgetsMs, queued, cap: Infinity }));
  const earliest = openLoop(6, (model, budgetsMs, queued) => ({ skip: 0, size: chooseBatchSize({ model, queued, budgetMs: budgetsMs[0]!, cap: Infinity }) }));
  t.true(planned > 0.95, `planned: ${planned}`);
  t.log(`on time: planned ${planned.toFixed(3)}, earliest deadline only ${earliest.toFixed(3)}`);
  t.true(earliest < planned, `earliest deadline only: ${earliest}, planned: ${planned}`);
});
