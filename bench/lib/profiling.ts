/**
 * `npm run bench -- --profile`: the gateway (and the no-op worker) under
 * `node --cpu-prof`, driven by no-op load (gRPC by default), then a summary
 * of where their CPU time went (bench/profile-summary.ts).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { renderSummary, summarizeProfile, type CpuProfile } from "../profile-summary.js";
import { atStop, stopAll } from "./cleanup.js";
import { countsDelta, settledCounts } from "./counter.js";
import { runGrpcLoad, warmUpGrpc, writeFrames } from "./h2load.js";
import type { LoadResult } from "./load-result.js";
import { readCpuSeconds, readThreadCpuSeconds } from "./proc-status.js";
import { BenchStack, type WorkerTransport } from "./stack.js";
import type { Log } from "./benchmark.js";
import { CLIPPER_BODY, runHttpLoad, TRANSCODED_BODY } from "./wrk.js";

const NOOP_MODULE = fileURLToPath(new URL("../models/noop.ts", import.meta.url));

/** Sampling interval, µs: 4× V8's default, for more samples on a short run at modest overhead. */
const PROFILE_INTERVAL_US = 250;

/** Warm-up before the profiled run, seconds. */
const WARM_UP_SECONDS = 2;

/** Trimmed off each end of the counted run when summarizing, ms (h2load start-up and the last stragglers). */
const WINDOW_MARGIN_MS = 200;

/** The main thread's profile in a process's profile folder (thread 0 in Node's file name), or null. */
function mainThreadProfile(dir: string): string | null {
  if (!existsSync(dir)) return null;
  const main = readdirSync(dir).find((f) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f));
  return main === undefined ? null : join(dir, main);
}

function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}

/** Longest wait for a profile file after its process exits, ms. */
const PROFILE_WRITE_TIMEOUT_MS = 10_000;

/** Options of {@link runProfile}. */
export interface ProfileSettings {
  /** Which way in the load takes. */
  readonly path: "grpc" | "http-transcoded" | "clipper-rest";
  readonly concurrency: number;
  readonly seconds: number;
  readonly outDir: string;
  readonly top: number;
  /** How the worker reaches the gateway. */
  readonly workerTransport: WorkerTransport;
}

/** Profiles the gateway and worker under no-op load on one path; returns the markdown summary (also written to outDir/summary-<path>-c<c>.md). */
export async function runProfile(s: ProfileSettings, log: Log): Promise<string> {
  mkdirSync(s.outDir, { recursive: true });
  const tag = `${s.path}-c${s.concurrency}`;
  const names = [`gateway-${tag}`, `worker-${tag}`];
  for (const n of names) rmSync(join(s.outDir, `${n}.cpuprofile`), { force: true });
  const workDir = mkdtempSync(join(tmpdir(), "clipper-bench-profile-"));
  let text = "";
  let stack: BenchStack | null = null;
  let loadStart = 0;
  let loadEnd = 0;
  try {
    log(`profiling: gateway and worker under --cpu-prof, ${s.path} no-op load at c=${s.concurrency} for ~${s.seconds} s`);
    stack = await BenchStack.start({ profileDir: workDir, profileIntervalUs: PROFILE_INTERVAL_US, workerTransport: s.workerTransport });
    const started = stack;
    atStop(() => started.close());
    await stack.deploy("noop", "noop", { sloMicros: 10_000_000 });
    const worker = await stack.worker("noop", NOOP_MODULE);
    const gw = stack.gateway;
    let load: () => Promise<LoadResult>;
    let calls: string;
    if (s.path === "grpc") {
      // Fresh inputs after the warm-up: its abandoned last calls must not share an input with counted ones.
      const rate = await warmUpGrpc(gw.grpc, writeFrames(workDir, "noop", s.concurrency, 1), WARM_UP_SECONDS);
      const frames = writeFrames(workDir, "noop", s.concurrency, 2);
      const perCaller = Math.max(20, Math.round((rate * s.seconds) / s.concurrency));
      calls = `${perCaller * s.concurrency} calls`;
      load = () => runGrpcLoad(gw.grpc, frames, perCaller, s.seconds, workDir);
    } else {
      const scenario = s.path === "clipper-rest" ? { path: "/noop/predict", bodyFormat: CLIPPER_BODY } : { path: "/v1/apps/noop:predict", bodyFormat: TRANSCODED_BODY };
      await runHttpLoad(gw.http, scenario, s.concurrency, WARM_UP_SECONDS, workDir, 1);
      calls = `${s.seconds} s`;
      load = () => runHttpLoad(gw.http, scenario, s.concurrency, s.seconds, workDir, 2);
    }
    const before = await settledCounts(worker.counterPort);
    loadStart = monotonicMs();
    const cpu0 = [readCpuSeconds(gw.pid), readCpuSeconds(worker.pid)];
    const threads0 = [readThreadCpuSeconds(gw.pid), readThreadCpuSeconds(worker.pid)];
    const r = await load();
    loadEnd = monotonicMs();
    const cpu1 = [readCpuSeconds(gw.pid), readCpuSeconds(worker.pid)];
    const threads1 = [readThreadCpuSeconds(gw.pid), readThreadCpuSeconds(worker.pid)];
    const counted = countsDelta(before, await settledCounts(worker.counterPort));
    const perCall = (i: number): string => (((cpu1[i]! - cpu0[i]!) * 1e6) / Math.max(1, counted.items)).toFixed(0);
    text += `Load: ${s.path} Predict, no-op worker, cache off, c=${s.concurrency}, ${calls} in ${((loadEnd - loadStart) / 1000).toFixed(1)} s: ${r.throughput.toFixed(0)} req/s, mean ${r.meanMs.toFixed(3)} ms, p99 ${r.p99Ms.toFixed(2)} ms, max ${r.maxMs.toFixed(1)} ms (under the profiler). `;
    text += `Worker saw ${counted.items} items in ${counted.calls} calls (${(counted.items / Math.max(1, counted.calls)).toFixed(2)} per call); load generator ok ${r.succeeded}, failed ${r.failed}. `;
    text += `CPU per call: gateway ${perCall(0)} µs, worker ${perCall(1)} µs.\n\n`;
    // A sampling profile charges a thread for wall time, preemption included; /proc says what each thread really used.
    for (const [i, who] of [[0, "gateway"], [1, "worker"]] as const) {
      const rows = [...threads1[i]!.entries()]
        .map(([name, sec]) => [name, sec - (threads0[i]!.get(name) ?? 0)] as const)
        .filter(([, sec]) => sec > 0)
        .sort((a, b) => b[1] - a[1])
        .map(([name, sec]) => `${name} ${((sec * 1e6) / Math.max(1, counted.items)).toFixed(0)} µs`);
      text += `${who} CPU per call by thread (/proc): ${rows.join(", ") || "none"}.\n`;
    }
    text += "\n";
  } finally {
    await stopAll();
  }
  // A profile covers its process's whole life; only the counted run is summarized
  // (start-up, where tsx compiles every module, and the warm-up are left out).
  for (const [file, name] of [["gateway", names[0]!], ["worker-noop", names[1]!]] as const) {
    const end = Date.now() + PROFILE_WRITE_TIMEOUT_MS;
    let src = mainThreadProfile(join(workDir, file));
    while (src === null && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
      src = mainThreadProfile(join(workDir, file));
    }
    if (src === null) {
      text += `No profile from the ${file} (it did not exit cleanly).\n\n`;
      continue;
    }
    const raw = readFileSync(src, "utf8");
    const dst = join(s.outDir, `${name}.cpuprofile`);
    writeFileSync(dst, raw);
    const profile = JSON.parse(raw) as CpuProfile;
    // V8 stamps profiles with CLOCK_MONOTONIC µs, the clock of process.hrtime.
    const t0 = profile.startTime / 1000;
    const window = { fromMs: loadStart - t0 + WINDOW_MARGIN_MS, toMs: loadEnd - t0 - WINDOW_MARGIN_MS };
    text += renderSummary(`${file}: ${dst}, the ${((window.toMs - window.fromMs) / 1000).toFixed(1)} s of the counted run`, summarizeProfile(profile, s.top, window)) + "\n";
  }
  rmSync(workDir, { recursive: true, force: true });
  writeFileSync(join(s.outDir, `summary-${tag}.md`), `# CPU profile under ${s.path} no-op load, c=${s.concurrency}\n\n${text}`);
  return text;
}
