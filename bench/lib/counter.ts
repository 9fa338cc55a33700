/**
 * Call counting on the far side of the load: the model module in a worker,
 * or a bare ceiling server, counts what it really handled and serves the
 * counts on a tiny HTTP endpoint, so the harness can check that every call a
 * load generator counted as a success did the work (h2load counts an HTTP 200
 * carrying grpc-status ≠ 0 as a success).
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

/** What a counted process has handled since it started. */
export interface Counts {
  /** Model calls (batches), or requests for a bare server. */
  calls: number;
  /** Items in those calls (equals `calls` for a bare server). */
  items: number;
  /** Time spent inside the model, in microseconds (0 for a bare server). */
  busyMicros: number;
}

/** The line a counted process prints once its endpoint listens; the harness waits for it. */
export const COUNTER_LINE = /bench-counter: port=(\d+)/;

/** Longest the harness waits for a counter to stop moving, in ms (in-flight calls finishing). */
const SETTLE_TIMEOUT_MS = 5_000;

/** Gap between two equal reads that counts as settled, in ms. */
const SETTLE_GAP_MS = 60;

/** Makes the process-wide counts and serves them as JSON on 127.0.0.1 (a free port, printed as {@link COUNTER_LINE}). */
export function startCounterEndpoint(): Counts {
  const counts: Counts = { calls: 0, items: 0, busyMicros: 0 };
  const server = createServer((_req, res) => {
    const text = JSON.stringify(counts);
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  });
  server.listen(0, "127.0.0.1", () => {
    process.stdout.write(`bench-counter: port=${(server.address() as AddressInfo).port}\n`);
  });
  // The endpoint must never keep a process alive that is otherwise done.
  server.unref();
  return counts;
}

/** Reads a counter endpoint. */
export async function readCounts(port: number): Promise<Counts> {
  const res = await fetch(`http://127.0.0.1:${port}/`);
  if (res.status !== 200) throw new Error(`counter on port ${port} answered ${res.status}`);
  return (await res.json()) as Counts;
}

/**
 * Reads a counter once it has stopped moving (calls still in flight when a
 * load generator exits land first), bounded by {@link SETTLE_TIMEOUT_MS}.
 */
export async function settledCounts(port: number): Promise<Counts> {
  const end = Date.now() + SETTLE_TIMEOUT_MS;
  let last = await readCounts(port);
  for (;;) {
    await new Promise((r) => setTimeout(r, SETTLE_GAP_MS));
    const now = await readCounts(port);
    if (now.items === last.items || Date.now() > end) return now;
    last = now;
  }
}

/** What happened between two reads of one counter. */
export function countsDelta(before: Counts, after: Counts): Counts {
  return {
    calls: after.calls - before.calls,
    items: after.items - before.items,
    busyMicros: after.busyMicros - before.busyMicros,
  };
}
