/**
 * The batching benchmark's model: costs a fixed time per batch plus a time
 * per item (5 ms + 0.1 ms by default, like test/fixtures/models/
 * batch-reporter.js; BENCH_MODEL_FIXED_MS and BENCH_MODEL_ITEM_MS change
 * them, so a bench can pick a capacity its driver can reach), answers each
 * input with its sum and the size of its batch, and counts calls, items and
 * time inside the model on a counter endpoint (bench/lib/counter.ts).
 */
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { startCounterEndpoint } from "../lib/counter.js";

function msFromEnv(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === "") return fallback;
  const ms = Number(text);
  if (!(ms >= 0 && ms < 60_000)) throw new Error(`${name} must be a number of ms in [0, 60000), got ${JSON.stringify(text)}`);
  return ms;
}

const fixedMs = msFromEnv("BENCH_MODEL_FIXED_MS", 5);
const itemMs = msFromEnv("BENCH_MODEL_ITEM_MS", 0.1);
const counts = startCounterEndpoint();

export default async function predict(inputs: readonly number[][]): Promise<string[]> {
  const t0 = performance.now();
  try {
    await sleep(fixedMs + itemMs * inputs.length);
    return inputs.map((x) => JSON.stringify({ sum: x.reduce((a, b) => a + b, 0), batch: inputs.length }));
  } finally {
    counts.calls++;
    counts.items += inputs.length;
    counts.busyMicros += Math.round((performance.now() - t0) * 1000);
  }
}
