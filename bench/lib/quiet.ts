/**
 * Background load: how busy the machine is while the benchmark sends
 * nothing. The 2-core box may be shared (test suites of other work), so
 * each run first waits, within a budget, for the machine to be quiet, and
 * records how busy it was.
 */
import { readFileSync } from "node:fs";

/** How long one look at /proc/stat lasts, ms. */
const SAMPLE_MS = 300;

/** Busier than this (in cores, with the benchmark idle) is not quiet. */
export const QUIET_CORES = 0.25;

/** Longest one run waits for quiet, ms. */
const WAIT_PER_RUN_MS = 10_000;

function cpuTicks(): { busy: number; total: number } {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  // idle + iowait
  return { busy: total - fields[3]! - (fields[4] ?? 0), total };
}

/** Cores busy over one sample (0..number of CPUs); NaN where /proc/stat is missing. */
export async function busyCores(cpus: number): Promise<number> {
  try {
    const a = cpuTicks();
    await new Promise((r) => setTimeout(r, SAMPLE_MS));
    const b = cpuTicks();
    return b.total > a.total ? ((b.busy - a.busy) / (b.total - a.total)) * cpus : 0;
  } catch {
    return NaN;
  }
}

/**
 * Waits until the machine is quiet or the wait allowed is used up; returns
 * the last background load seen, in cores. `budget.ms` is shared by all runs
 * and shrinks by the time waited.
 */
export async function waitForQuiet(cpus: number, budget: { ms: number }): Promise<number> {
  const start = Date.now();
  const end = start + Math.min(WAIT_PER_RUN_MS, Math.max(0, budget.ms));
  let cores = await busyCores(cpus);
  while (!(cores <= QUIET_CORES) && Date.now() < end) cores = await busyCores(cpus);
  budget.ms -= Date.now() - start;
  return cores;
}
