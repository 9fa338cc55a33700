/**
 * The batching benchmark's model: test/fixtures/models/batch-reporter.js
 * (5 ms + 0.1 ms per item per batch) with calls, items and time inside the
 * model counted on a counter endpoint (bench/lib/counter.ts).
 */
import { performance } from "node:perf_hooks";
import { startCounterEndpoint } from "../lib/counter.js";

type Model = (inputs: readonly unknown[]) => Promise<unknown[]>;

// A computed specifier: the fixture is plain JS without type declarations.
const FIXTURE = new URL("../../test/fixtures/models/batch-reporter.js", import.meta.url).href;
const inner = ((await import(FIXTURE)) as { default: Model }).default;
const counts = startCounterEndpoint();

export default async function predict(inputs: readonly unknown[]): Promise<unknown[]> {
  const t0 = performance.now();
  try {
    return await inner(inputs);
  } finally {
    counts.calls++;
    counts.items += inputs.length;
    counts.busyMicros += Math.round((performance.now() - t0) * 1000);
  }
}
