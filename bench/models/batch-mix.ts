/**
 * The OIP benchmark's model: costs what the batching model does (5 ms +
 * 0.1 ms per item per batch) and answers each input with whether its batch
 * held rows of both APIs ("shared") or of one ("alone"). The benchmark tags
 * each row's second element with the API that sent it (1 Predict, 2
 * ModelInfer), so the answers show whether the two kinds of traffic were
 * batched together. Calls, items and time are counted (bench/lib/counter.ts).
 */
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { startCounterEndpoint } from "../lib/counter.js";

const counts = startCounterEndpoint();

export default async function predict(inputs: readonly Float64Array[]): Promise<string[]> {
  const t0 = performance.now();
  await sleep(5 + 0.1 * inputs.length);
  const tags = new Set(inputs.map((x) => x[1]));
  counts.calls++;
  counts.items += inputs.length;
  counts.busyMicros += Math.round((performance.now() - t0) * 1000);
  const answer = tags.size > 1 ? "shared" : "alone";
  return inputs.map(() => answer);
}
