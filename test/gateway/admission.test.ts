import test from "ava";
import { AdmissionShare, BusyShare, drainEstimate, NO_ESTIMATE, predictedWaitMs } from "../../gateway/admission.js";
import { LatencyModel } from "../../gateway/latency-model.js";

/** A latency model that has seen `cost` at several sizes, without noise. */
function trained(cost: (n: number) => number): LatencyModel {
  const m = new LatencyModel();
  for (let round = 0; round < 8; round++) for (const n of [1, 10, 50, 100, 200]) m.observe(n, cost(n));
  return m;
}

const cost = (n: number): number => 5 + 0.1 * n;

test("a replica's drain rate is the largest batch within half the budget over its latency", (t) => {
  const e = drainEstimate([{ latency: trained(cost), slots: 1, cap: Infinity }], 46);
  // Half of 46 ms fits 180 items (5 + 18 ms).
  t.true(Math.abs(e.itemsPerMs - 180 / 23) < 0.1, `rate ${e.itemsPerMs}`);
  t.true(Math.abs(e.batchMs - 23) < 0.5, `batch ${e.batchMs}`);
  t.is(e.batchSize, 180);
  t.true(Math.abs(e.batchMsFor(10) - 6) < 0.01);
});

test("rates add up over replicas and slots, and a batch cap lowers them", (t) => {
  const one = drainEstimate([{ latency: trained(cost), slots: 1, cap: Infinity }], 46).itemsPerMs;
  const two = drainEstimate([{ latency: trained(cost), slots: 1, cap: Infinity }, { latency: trained(cost), slots: 2, cap: Infinity }], 46).itemsPerMs;
  t.true(Math.abs(two - 3 * one) < 0.01);
  const capped = drainEstimate([{ latency: trained(cost), slots: 1, cap: 20 }], 46);
  t.true(Math.abs(capped.itemsPerMs - 20 / 7) < 0.05, `capped rate ${capped.itemsPerMs}`);
});

test("a replica with no latency estimate yet (fewer than 32 batches) predicts nothing: every query is admitted", (t) => {
  const young = new LatencyModel();
  for (let i = 0; i < 31; i++) young.observe(1 + (i % 4), cost(1 + (i % 4)));
  t.deepEqual(drainEstimate([{ latency: young, slots: 1, cap: Infinity }], 46), NO_ESTIMATE);
  young.observe(1, cost(1));
  t.not(drainEstimate([{ latency: young, slots: 1, cap: Infinity }], 46), NO_ESTIMATE);
  const e = drainEstimate([{ latency: trained(cost), slots: 1, cap: Infinity }, { latency: new LatencyModel(), slots: 1, cap: Infinity }], 46);
  t.deepEqual(e, NO_ESTIMATE);
  t.is(predictedWaitMs(10_000, e), 0);
  t.deepEqual(drainEstimate([], 46), NO_ESTIMATE);
});

test("the predicted wait: a free slot, then the queue and the query in one batch while they fit, else the queue drained at the rate and a batch", (t) => {
  const e = { itemsPerMs: 8, batchSize: 200, batchMs: 25, batchMsFor: (n: number) => 5 + 0.1 * n };
  t.is(predictedWaitMs(0, e), 5.1);
  t.is(predictedWaitMs(99, e, 10), 10 + 15);
  t.is(predictedWaitMs(400, e), 400 / 8 + 25);
  t.is(predictedWaitMs(400, e, 20), 20 + 400 / 8 + 25);
});

test("a model that cannot run one query within the budget predicts nothing (slow, not overloaded); one that can, only not in half of it, drains one query per batch; with a faster replica beside it, it adds its one-item rate", (t) => {
  t.deepEqual(drainEstimate([{ latency: trained((n) => 50 + n), slots: 1, cap: Infinity }], 46), NO_ESTIMATE);
  const slow = { latency: trained((n) => 30 + n), slots: 1, cap: Infinity };
  t.true(Math.abs(drainEstimate([slow], 46).itemsPerMs - 1 / 31) < 0.005);
  const fast = { latency: trained(cost), slots: 1, cap: Infinity };
  const both = drainEstimate([slow, fast], 46);
  t.true(Math.abs(both.itemsPerMs - (180 / 23 + 1 / 31)) < 0.1, `rate ${both.itemsPerMs}`);
});

test("with one batch size seen, larger batches are taken to cost the same (the sizer must be free to try them)", (t) => {
  const m = new LatencyModel();
  for (let i = 0; i < 40; i++) m.observe(1, 6);
  t.false(m.hasSlope);
  t.is(m.expected(1), 6);
  t.is(m.expected(50), 6);
  const e = drainEstimate([{ latency: m, slots: 1, cap: 100 }], 46);
  t.is(e.itemsPerMs, 100 / 6);
});

test("the admission share falls by 15 % after a window with more than 1 % late, and climbs by 0.02 after one without, within 0.2..0.9", (t) => {
  const share = new AdmissionShare();
  t.is(share.value, 0.8);
  const window = (late: number): void => {
    for (let i = 0; i < late; i++) share.late();
    for (let i = 0; i < 200; i++) share.admitted();
  };
  window(2); // exactly 1 %: tolerated
  t.true(Math.abs(share.value - 0.82) < 1e-9);
  window(3);
  t.true(Math.abs(share.value - 0.82 * 0.85) < 1e-9);
  for (let i = 0; i < 40; i++) window(50);
  t.is(share.value, 0.2);
  for (let i = 0; i < 100; i++) window(0);
  t.is(share.value, 0.9);
});

test("refusals close windows too: a share that refuses everything climbs back, and lateness is a share of the queries admitted", (t) => {
  const share = new AdmissionShare();
  for (let w = 0; w < 3; w++) {
    for (let i = 0; i < 10; i++) share.late();
    for (let i = 0; i < 200; i++) share.admitted();
  }
  const low = 0.8 * 0.85 ** 3;
  t.true(Math.abs(share.value - low) < 1e-9);
  // Nothing admitted, nothing late: each window of refusals raises the share.
  for (let i = 0; i < 400; i++) share.refused();
  t.true(Math.abs(share.value - (low + 0.04)) < 1e-9);
  // 100 refused and 100 admitted with 2 late: 2 % of those admitted, lowered.
  for (let i = 0; i < 2; i++) share.late();
  for (let i = 0; i < 100; i++) share.refused();
  for (let i = 0; i < 100; i++) share.admitted();
  t.true(Math.abs(share.value - (low + 0.04) * 0.85) < 1e-9);
});

test("the central estimate keeps a non-negative intercept: a slope fitted from sizes that barely vary cannot make larger batches cost more than in proportion", (t) => {
  const m = new LatencyModel();
  // Batches of 60–62 items with latencies that look steep only by noise.
  for (let i = 0; i < 40; i++) m.observe(60 + (i % 3), 10 + 3 * (i % 3));
  t.true(m.hasSlope);
  const meanRate = 61 / 13;
  // Proportional growth at most (the line through the origin and the mean point)…
  t.true(m.expected(200) <= 1.05 * ((13 * 200) / 61), `expected(200) = ${m.expected(200)}`);
  // …and at least proportional shrinking below the mean size.
  t.true(m.expected(1) >= 0.95 * (13 / 61), `expected(1) = ${m.expected(1)}`);
  // So the drain rate a budget allows is at least the rate seen at the mean size.
  const e = drainEstimate([{ latency: m, slots: 1, cap: Infinity }], 46);
  t.true(e.itemsPerMs >= 0.95 * meanRate, `rate ${e.itemsPerMs} below ${meanRate}`);
});

test("the busy share is unknown until two whole windows held answers, then the model time reported over the time elapsed, per slot", (t) => {
  const busy = new BusyShare(0);
  t.is(busy.value(0, 1), null);
  // 10 ms of model time every 50 ms: a fifth of one slot's time.
  for (let at = 50; at <= 450; at += 50) busy.add(10, at);
  t.is(busy.value(450, 1), null, "one window, and it may hold the quiet before the load");
  for (let at = 500; at <= 950; at += 50) busy.add(10, at);
  t.is(busy.value(950, 1), null, "the window the load started in is only now the previous one");
  for (let at = 1000; at <= 1200; at += 50) busy.add(10, at);
  t.is(busy.value(1200, 1), (10 * 10 + 5 * 10) / (1200 - 500), "the previous window and the current one");
  t.is(busy.value(1200, 2), (10 * 10 + 5 * 10) / (1200 - 500) / 2, "two slots: half the share");
});

test("a quiet spell forgets the busy share; model times that are not numbers are ignored", (t) => {
  const busy = new BusyShare(0);
  for (let at = 0; at <= 1500; at += 50) busy.add(45, at);
  t.true(busy.value(1500, 1)! > 0.8);
  t.is(busy.value(4000, 1), null, "nothing answered for seconds: nothing known");
  busy.add(Number.NaN, 4010);
  busy.add(-5, 4020);
  t.is(busy.value(4020, 1), null);
});
