/**
 * Who refused a run's failed calls, from the gateway's own counters: the
 * door (event loop behind), admission (predicted to miss the deadline) or
 * a full queue; and the calls the model never saw for another reason: an
 * answer with the app's default, or a call that ended with a gRPC status
 * other than OK (h2load counts any HTTP 200 as a success, and gRPC sends its
 * errors in a 200's trailers). A failed check then says which, without a
 * second run.
 */
import { Scrape } from "../../test/helpers/prometheus.js";

export interface Refusals {
  readonly door: number;
  readonly admission: number;
  readonly full: number;
  readonly defaults: number;
  /** Calls of every method and transport that ended with a status other than OK. */
  readonly notOk: number;
}

const sum = (m: Scrape, name: string, labels: Record<string, string> = {}): number => m.all(name, labels).reduce((a, s) => a + s.value, 0);

/** The gateway's refusal counters now (every label summed). */
export async function readRefusals(httpPort: number): Promise<Refusals> {
  const m = await Scrape.of(`http://127.0.0.1:${httpPort}/metrics`);
  return {
    door: sum(m, "clipper_behind_refusals_total"),
    admission: sum(m, "clipper_queue_dropped_total", { reason: "overloaded" }),
    full: sum(m, "clipper_queue_dropped_total", { reason: "full" }),
    defaults: sum(m, "clipper_default_outputs_total"),
    notOk: sum(m, "clipper_rpc_calls_total") - sum(m, "clipper_rpc_calls_total", { code: "OK" }),
  };
}

export function refusalsDelta(after: Refusals, before: Refusals): Refusals {
  return {
    door: after.door - before.door,
    admission: after.admission - before.admission,
    full: after.full - before.full,
    defaults: after.defaults - before.defaults,
    notOk: after.notOk - before.notOk,
  };
}

export function formatRefusals(r: Refusals): string {
  return `refused at the door ${r.door}, by admission ${r.admission}, queue full ${r.full}; default answers ${r.defaults}; calls ended not OK ${r.notOk}`;
}
