/**
 * `npm run bench`: the gateway against the bare transport on this machine
 * (issue 6). Installs h2load, wrk and gnuplot from Debian when missing,
 * measures the ceilings (bare grpc-js, bare node:http) and the gateway
 * (cache off, no-op worker) over gRPC, transcoded HTTP and Clipper REST,
 * then batching on a 5 ms + 0.1 ms/item model; writes results/latest.json,
 * latest.md and latest.png and prints the table. Everything runs on
 * 127.0.0.1, each run is bounded in time, and it all stops by itself.
 *
 *   npm run bench [-- --rounds 3 --seconds 4 --concurrency 1,16,64 --callers 32,128 --slo-ms 50 --batch-seconds 5 --quiet-wait 120 --worker-transport ipc --out DIR]
 *   npm run bench -- --smoke            tiny run (the test suite's smoke check)
 *   npm run bench -- --profile [--profile-path grpc --profile-concurrency 64 --profile-seconds 15]
 *                                       CPU profiles of gateway and worker under no-op load
 *
 * Exit code: 0 when every run's check passed (every call reached the model
 * or the bare server), 1 when one failed, 2 for bad flags or a failed setup.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runBenchmark } from "./lib/benchmark.js";
import { drawChart } from "./lib/chart.js";
import { stopAll } from "./lib/cleanup.js";
import { runProfile } from "./lib/profiling.js";
import { renderMarkdown, type BenchSettings } from "./lib/report.js";
import { parseWorkerTransport } from "./lib/stack.js";
import { ensureTools } from "./lib/tools.js";

const DEFAULT_OUT = fileURLToPath(new URL("./results/", import.meta.url));

/** Settings of a full run: about 6 minutes on the 2-core box. */
const FULL = { rounds: "3", seconds: "4", concurrency: "1,16,64", callers: "32,128", batchSeconds: "5", quietWait: "120" };
/** Settings of `--smoke`: enough to exercise every step, in well under a minute. */
const SMOKE = { rounds: "1", seconds: "1", concurrency: "1,4", callers: "8", batchSeconds: "1", quietWait: "0" };

/** The whole benchmark is stopped after this long whatever happens, ms (each step has its own bound too). */
const HARD_LIMIT_MS = 30 * 60_000;

const log = (line: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

function numberList(name: string, text: string): number[] {
  if (text.trim() === "") return [];
  const xs = text.split(",").map((x) => Number(x.trim()));
  if (xs.some((x) => !Number.isSafeInteger(x) || x < 1)) fail(`--${name} takes whole numbers ≥ 1 separated by commas, got '${text}'`);
  return xs;
}

function positive(name: string, text: string): number {
  const x = Number(text);
  if (!Number.isFinite(x) || x <= 0) fail(`--${name} takes a positive number, got '${text}'`);
  return x;
}

let args: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    options: {
      rounds: { type: "string" },
      seconds: { type: "string" },
      concurrency: { type: "string" },
      callers: { type: "string" },
      "slo-ms": { type: "string", default: "50" },
      "batch-seconds": { type: "string" },
      "quiet-wait": { type: "string" },
      out: { type: "string" },
      "worker-transport": { type: "string", default: "ipc" },
      smoke: { type: "boolean", default: false },
      "no-chart": { type: "boolean", default: false },
      profile: { type: "boolean", default: false },
      "profile-concurrency": { type: "string", default: "64" },
      "profile-path": { type: "string", default: "grpc" },
      "profile-seconds": { type: "string", default: "15" },
      top: { type: "string", default: "25" },
      help: { type: "boolean", default: false },
    },
  });
}
try {
  args = parse();
} catch (err) {
  fail((err as Error).message);
}
const v = args.values;
if (v.help) {
  process.stdout.write(readmeUsage());
  process.exit(0);
}

const hardStop = setTimeout(() => {
  log(`still running after ${HARD_LIMIT_MS / 60_000} min: giving up`);
  void stopAll().finally(() => process.exit(1));
}, HARD_LIMIT_MS);
hardStop.unref();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping everything`);
    void stopAll().finally(() => process.exit(130));
  });
}

const workerTransport = parseWorkerTransport(v["worker-transport"]) ?? fail(`--worker-transport is ipc or tcp, got '${v["worker-transport"]}'`);
const outDir = v.out ?? DEFAULT_OUT;
mkdirSync(outDir, { recursive: true });

if (v.profile) {
  const path = v["profile-path"];
  if (path !== "grpc" && path !== "http-transcoded" && path !== "clipper-rest") fail(`--profile-path is grpc, http-transcoded or clipper-rest, got '${path}'`);
  ensureTools(path === "grpc" ? ["h2load"] : ["wrk"], log);
  const text = await runProfile(
    {
      path,
      concurrency: positive("profile-concurrency", v["profile-concurrency"]),
      seconds: positive("profile-seconds", v["profile-seconds"]),
      outDir: join(outDir, "profile"),
      top: positive("top", v.top),
      workerTransport,
    },
    log,
  );
  process.stdout.write(text);
  process.exit(0);
}

const preset = v.smoke ? SMOKE : FULL;
const settings: BenchSettings = {
  rounds: positive("rounds", v.rounds ?? preset.rounds),
  runSeconds: positive("seconds", v.seconds ?? preset.seconds),
  concurrency: numberList("concurrency", v.concurrency ?? preset.concurrency),
  callers: numberList("callers", v.callers ?? preset.callers),
  sloMs: positive("slo-ms", v["slo-ms"]),
  batchSeconds: positive("batch-seconds", v["batch-seconds"] ?? preset.batchSeconds),
  quietWaitSeconds: Number(v["quiet-wait"] ?? preset.quietWait),
  workerTransport,
  smoke: v.smoke,
};
if (settings.concurrency.length === 0 && settings.callers.length === 0) fail("--concurrency and --callers cannot both be empty");
if (!Number.isInteger(settings.rounds)) fail("--rounds takes a whole number");
if (!(settings.quietWaitSeconds >= 0)) fail("--quiet-wait takes seconds ≥ 0");

try {
  ensureTools(v["no-chart"] ? ["h2load", "wrk"] : ["h2load", "wrk", "gnuplot"], log);
} catch (err) {
  fail((err as Error).message);
}
let results: Awaited<ReturnType<typeof runBenchmark>>;
try {
  results = await runBenchmark(settings, log);
} catch (err) {
  fail(`the benchmark stopped: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
}
const markdown = renderMarkdown(results);
writeFileSync(join(outDir, "latest.json"), JSON.stringify(results, null, 2) + "\n");
writeFileSync(join(outDir, "latest.md"), markdown);
let chart = false;
if (!v["no-chart"]) {
  const chartDir = mkdtempSync(join(tmpdir(), "clipper-bench-chart-"));
  const why = drawChart(results, chartDir, join(outDir, "latest.png"));
  rmSync(chartDir, { recursive: true, force: true });
  if (why !== null) log(`no chart: ${why}`);
  chart = why === null;
}
process.stdout.write(markdown);
log(`wrote ${join(outDir, "latest.json")}, latest.md${chart ? ", latest.png" : ""}`);
process.exit(results.ok ? 0 : 1);

function readmeUsage(): string {
  return [
    "usage: npm run bench [-- options]",
    "  --rounds N            rounds per point, target and ceiling alternating (3)",
    "  --seconds S           length of each run (4)",
    "  --concurrency LIST    concurrent callers of the no-op points (1,16,64; empty to skip)",
    "  --callers LIST        concurrent callers of the batching points (32,128; empty to skip)",
    "  --slo-ms MS           the batching app's latency SLO (50)",
    "  --batch-seconds S     length of each batching run (5)",
    "  --quiet-wait S        longest all runs together wait for other work on the machine to stop (120)",
    "  --out DIR             where latest.json, latest.md and latest.png go (bench/results)",
    "  --worker-transport T  how workers reach the gateway: ipc (its Unix domain socket, default) or tcp (127.0.0.1)",
    "  --smoke               a tiny run that only checks the harness works",
    "  --no-chart            skip the PNG (and gnuplot)",
    "  --profile             profile gateway and worker under no-op load instead (bench/results/profile/)",
    "  --profile-path P      grpc (default), http-transcoded or clipper-rest",
    "  --profile-concurrency C, --profile-seconds S, --top N   (64, 15, 25)",
    "",
  ].join("\n");
}
