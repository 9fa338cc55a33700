/**
 * The batching model's capacity within an SLO, as the open-loop benches
 * count it: a query may wait for the batch in progress, then run in the
 * next, so a batch may take half the SLO; it holds as many items as its
 * fixed and per-item costs allow in that time.
 */
export function batchModelCapacity(sloMs: number, fixedMs: number, itemMs: number): { batchItems: number; perSecond: number } {
  const batchItems = Math.floor((sloMs / 2 - fixedMs) / itemMs);
  return { batchItems, perSecond: batchItems * (1000 / (sloMs / 2)) };
}
