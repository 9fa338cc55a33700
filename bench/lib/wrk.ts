/**
 * HTTP/1.1 load with wrk (one thread, c keep-alive connections = c callers).
 * A generated Lua script posts a distinct JSON body on every request (so
 * the gateway never coalesces two calls), counts non-200 answers and
 * answers carrying `"default":true` (the app's default output instead of
 * the model's), and prints one JSON line with the totals and percentiles.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { LoadResult } from "./load-result.js";

/** wrk's per-request timeout: a call slower than this counts as an error. */
const REQUEST_TIMEOUT_S = 10;

/** Extra time a run may take beyond its duration before it is killed, in ms. */
const RUN_GRACE_MS = 20_000;

/** Marks the line the Lua `done` hook prints. */
const RESULT_MARK = "BENCH-JSON ";

/** One HTTP scenario: where to POST and the body, a Lua format string taking two integers (salt, counter). */
export interface HttpScenario {
  readonly path: string;
  readonly bodyFormat: string;
}

/** Body of Clipper's `POST /<app>/predict` (and of the bare HTTP server). */
export const CLIPPER_BODY = '{"input":[%d,%d,0.5]}';
/** Body of the transcoded `POST /v1/apps/<app>:predict` (protobuf JSON of PredictRequest). */
export const TRANSCODED_BODY = '{"input":{"doubles":[%d,%d,0.5]}}';

function luaScript(s: HttpScenario, salt: number): string {
  // Long brackets keep the JSON quotes as they are.
  return `
threads = {}
function setup(thread) table.insert(threads, thread) end
counter = 0
defaults = 0
non200 = 0
local headers = { ["Content-Type"] = "application/json" }
function request()
  counter = counter + 1
  return wrk.format("POST", [==[${s.path}]==], headers, string.format([==[${s.bodyFormat}]==], ${salt}, counter))
end
function response(status, hdrs, body)
  if status ~= 200 then non200 = non200 + 1
  elseif string.find(body, '"default":true', 1, true) then defaults = defaults + 1 end
end
function done(summary, latency, requests)
  local d, n = 0, 0
  for _, t in ipairs(threads) do d = d + t:get("defaults"); n = n + t:get("non200") end
  local e = summary.errors
  io.write(string.format('${RESULT_MARK}{"requests":%d,"durationUs":%d,"connectErrors":%d,"readErrors":%d,"writeErrors":%d,"statusErrors":%d,"timeouts":%d,"defaults":%d,"non200":%d,"meanUs":%.1f,"p50Us":%d,"p90Us":%d,"p99Us":%d,"maxUs":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, d, n,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
`;
}

interface WrkJson {
  requests: number;
  durationUs: number;
  connectErrors: number;
  readErrors: number;
  writeErrors: number;
  statusErrors: number;
  timeouts: number;
  defaults: number;
  non200: number;
  meanUs: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  maxUs: number;
}

/** Runs wrk for `seconds` with `connections` callers against http://127.0.0.1:port. */
export async function runHttpLoad(port: number, scenario: HttpScenario, connections: number, seconds: number, workDir: string, salt: number): Promise<LoadResult> {
  const script = join(workDir, `wrk-${salt}.lua`);
  writeFileSync(script, luaScript(scenario, salt));
  const args = ["-t", "1", "-c", String(connections), "-d", `${seconds}s`, "--timeout", `${REQUEST_TIMEOUT_S}s`, "-s", script, `http://127.0.0.1:${port}`];
  const text = await new Promise<string>((resolve) => {
    const child = spawn("wrk", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), seconds * 1000 + RUN_GRACE_MS);
    child.once("error", (err) => resolve(`${out}\n${err.message}`));
    child.once("close", () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
  const line = text.split("\n").find((l) => l.startsWith(RESULT_MARK));
  if (line === undefined) throw new Error(`wrk printed no result (killed after the time bound?):\n${text}`);
  const j = JSON.parse(line.slice(RESULT_MARK.length)) as WrkJson;
  const failed = j.connectErrors + j.readErrors + j.writeErrors + j.timeouts + Math.max(j.statusErrors, j.non200);
  const s = j.durationUs / 1e6;
  return {
    requests: j.requests,
    throughput: j.requests / s,
    seconds: s,
    succeeded: j.requests - Math.max(j.statusErrors, j.non200),
    failed,
    defaults: j.defaults,
    meanMs: j.meanUs / 1000,
    p50Ms: j.p50Us / 1000,
    p90Ms: j.p90Us / 1000,
    p99Ms: j.p99Us / 1000,
    maxMs: j.maxUs / 1000,
  };
}
