/**
 * A no-op model for the benchmark: answers every input with "0" at once and
 * counts calls and items on a counter endpoint (bench/lib/counter.ts), so
 * the harness can check every call it sent reached the model.
 */
import { startCounterEndpoint } from "../lib/counter.js";

const counts = startCounterEndpoint();

export default function predict(inputs: readonly unknown[]): string[] {
  counts.calls++;
  counts.items += inputs.length;
  return inputs.map(() => "0");
}
