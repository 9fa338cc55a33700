/**
 * gRPC load with h2load: unary Predict calls from pre-encoded gRPC frames.
 *
 * h2load posts the same body on every request, and the gateway coalesces
 * identical queries that are in flight at once (gateway/cache.ts InFlight,
 * on even with the cache off), so one h2load with many streams would mostly
 * measure coalescing. Instead, each concurrent caller is its own h2load
 * process (one connection, one stream at a time) with its own input: no two
 * calls in flight are ever identical, and concurrency c means c callers,
 * as wrk's c connections do for HTTP.
 */
import { spawn } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PredictRequest } from "../../gen/clipper/v1/predict.js";
import type { LoadResult } from "./load-result.js";
import { summarizeMicros } from "./stats.js";

/** The gRPC method every run calls. */
const PREDICT_PATH = "/clipper.v1.Predict/Predict";

/**
 * Extra time a run may take beyond its expected duration before its
 * callers are killed, ms: above the no-op app's 10 s SLO, so a call the
 * gateway loses still gets its default answer before the kill.
 */
const RUN_GRACE_MS = 15_000;

/**
 * A steady window (every caller active) shorter than this share of the whole
 * run is not trusted (callers started too far apart); the whole run is used.
 */
const MIN_STEADY_SHARE = 0.5;

/**
 * Writes one pre-encoded gRPC frame per caller (flag 0, 4-byte big-endian
 * length, PredictRequest bytes) with distinct inputs; returns their paths.
 */
export function writeFrames(dir: string, app: string, callers: number, salt: number): string[] {
  return Array.from({ length: callers }, (_, i) => {
    const message = PredictRequest.encode(PredictRequest.fromPartial({ app, input: { doubles: [salt, i, 0.5] } })).finish();
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt8(0, 0);
    frame.writeUInt32BE(message.length, 1);
    frame.set(message, 5);
    const path = join(dir, `${app}-${salt}-${i}.grpc`);
    writeFileSync(path, frame);
    return path;
  });
}

interface H2loadOutput {
  readonly done: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly errored: number;
  readonly timeout: number;
  readonly status2xx: number;
  readonly reqPerSec: number;
}

/** Parses h2load's summary; null when it printed none (it crashed or was killed). */
export function parseH2loadOutput(text: string): H2loadOutput | null {
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(text);
  const codes = /status codes: (\d+) 2xx/.exec(text);
  const fin = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(text);
  if (req === null || codes === null || fin === null) return null;
  return {
    done: Number(req[3]),
    succeeded: Number(req[4]),
    failed: Number(req[5]),
    errored: Number(req[6]),
    timeout: Number(req[7]),
    status2xx: Number(codes[1]),
    reqPerSec: Number(fin[1]),
  };
}

/** How calls reach the server: plaintext or TLS, and extra headers (a token). */
export interface GrpcTarget {
  readonly tls: boolean;
  readonly headers: readonly string[];
}

const PLAINTEXT: GrpcTarget = { tls: false, headers: [] };

function h2loadArgs(port: number, frame: string, extra: readonly string[], target: GrpcTarget): string[] {
  return [
    "-t", "1", "-c", "1", "-m", "1", ...extra, "-d", frame,
    "-H", "content-type: application/grpc", "-H", "te: trailers",
    ...target.headers.flatMap((h) => ["-H", h]),
    `${target.tls ? "https" : "http"}://127.0.0.1:${port}${PREDICT_PATH}`,
  ];
}

/** Runs h2load processes side by side; resolves with their outputs, killing them all after `timeoutMs`. */
function runAll(argsList: readonly string[][], timeoutMs: number): Promise<{ text: string; code: number | null }[]> {
  const children = argsList.map((args) => spawn("h2load", args, { stdio: ["ignore", "pipe", "pipe"] }));
  const timer = setTimeout(() => {
    for (const c of children) c.kill("SIGKILL");
  }, timeoutMs);
  return Promise.all(
    children.map(
      (child) =>
        new Promise<{ text: string; code: number | null }>((resolve) => {
          let text = "";
          child.stdout!.on("data", (d: Buffer) => (text += d.toString()));
          child.stderr!.on("data", (d: Buffer) => (text += d.toString()));
          child.once("error", (err) => resolve({ text: `${text}\n${err.message}`, code: -1 }));
          child.once("close", (code) => resolve({ text, code }));
        }),
    ),
  ).finally(() => clearTimeout(timer));
}

/**
 * Drives `frames.length` callers for about `seconds` (timing mode) and
 * returns the total rate: a warm-up that also sizes the counted run.
 */
export async function warmUpGrpc(port: number, frames: readonly string[], seconds: number, target: GrpcTarget = PLAINTEXT): Promise<number> {
  const outs = await runAll(frames.map((f) => h2loadArgs(port, f, ["-D", String(seconds)], target)), seconds * 1000 + RUN_GRACE_MS);
  let rate = 0;
  for (const o of outs) {
    const p = parseH2loadOutput(o.text);
    if (p === null) throw new Error(`h2load warm-up printed no summary:\n${o.text}`);
    rate += p.reqPerSec;
  }
  return rate;
}

/**
 * A counted run: every caller sends `perCaller` calls (count mode, so the
 * totals are exact and can be checked against the server's own count).
 * Latency and throughput come from h2load's per-request log, over the
 * window in which every caller was active.
 */
export async function runGrpcLoad(
  port: number,
  frames: readonly string[],
  perCaller: number,
  expectedSeconds: number,
  logDir: string,
  target: GrpcTarget = PLAINTEXT,
): Promise<LoadResult> {
  const logs = frames.map((_, i) => join(logDir, `h2load-${i}.log`));
  for (const path of logs) rmSync(path, { force: true });
  const outs = await runAll(
    frames.map((f, i) => h2loadArgs(port, f, ["-n", String(perCaller), "--log-file", logs[i]!], target)),
    expectedSeconds * 1000 + RUN_GRACE_MS,
  );
  let succeeded = 0;
  let failed = 0;
  let stuck = 0;
  for (const o of outs) {
    const p = parseH2loadOutput(o.text);
    if (p === null) {
      // Killed at the time bound: some call never got its answer. Nothing it sent counts as a success.
      stuck++;
      failed += perCaller;
      continue;
    }
    succeeded += Math.min(p.succeeded, p.status2xx);
    failed += p.failed + p.errored + p.timeout + (p.succeeded - Math.min(p.succeeded, p.status2xx));
  }
  // Each log row: start (µs since epoch), HTTP status (-1 failed), µs to the end of the response.
  const perCallerRows = logs.map((path) =>
    readIfExists(path)
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => line.split("\t").map(Number) as [number, number, number]),
  );
  const spans = perCallerRows.filter((rows) => rows.length > 0).map((rows) => {
    let first = Infinity;
    let last = -Infinity;
    for (const [start, , dur] of rows) {
      first = Math.min(first, start);
      last = Math.max(last, start + dur);
    }
    return { first, last };
  });
  const all = { from: Math.min(...spans.map((s) => s.first)), to: Math.max(...spans.map((s) => s.last)) };
  let window = { from: Math.max(...spans.map((s) => s.first)), to: Math.min(...spans.map((s) => s.last)) };
  if (window.to - window.from < MIN_STEADY_SHARE * (all.to - all.from)) window = all;
  const durations: number[] = [];
  for (const rows of perCallerRows) {
    for (const [start, , dur] of rows) {
      const end = start + dur;
      if (end >= window.from && end <= window.to) durations.push(dur);
    }
  }
  const seconds = (window.to - window.from) / 1e6;
  return { ...summarizeMicros(durations), requests: durations.length, throughput: durations.length / seconds, seconds, succeeded, failed, defaults: -1, stuck };
}

function readIfExists(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
