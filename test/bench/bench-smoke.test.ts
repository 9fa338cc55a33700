import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import type { BenchResults } from "../../bench/lib/report.js";
import { ROOT } from "../helpers/processes.js";

/** The smoke run starts a whole stack and may first install h2load, wrk and gnuplot from Debian. */
const SMOKE_TIMEOUT_MS = 240_000;

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

test("npm run bench -- --smoke completes and writes well-formed JSON, markdown and a PNG chart", async (t) => {
  t.timeout(SMOKE_TIMEOUT_MS);
  const out = mkdtempSync(join(tmpdir(), "clipper-bench-smoke-"));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, ["--import", "tsx", "bench/run.ts", "--smoke", "--out", out], { cwd: ROOT, timeout: SMOKE_TIMEOUT_MS - 10_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : null, stdout, stderr }),
    );
  });
  // Exit 1 means a run's check failed (reported in the results), 2 a harness failure.
  t.true(run.code === 0 || run.code === 1, `bench exited ${run.code}:\n${run.stderr.slice(-4000)}`);

  const r = JSON.parse(readFileSync(join(out, "latest.json"), "utf8")) as BenchResults;
  t.is(r.schema, "clipper-ts-bench/1");
  t.is(r.ok, run.code === 0);
  t.true(r.settings.smoke);
  // The no-op points measure the harness itself: their checks must pass. Batching
  // checks may fail on the gateway's own account (default outputs; bench/README.md).
  t.deepEqual(r.checks.failures.filter((f) => !f.includes("batching")), []);
  // Every path at every smoke concurrency, each round with a gateway run and a ceiling run that did work.
  const paths = ["clipper-rest", "grpc", "http-transcoded"];
  t.deepEqual([...new Set(r.points.map((p) => p.path))].sort(), paths);
  t.is(r.points.length, paths.length * r.settings.concurrency.length);
  for (const p of r.points) {
    t.is(p.rounds.length, r.settings.rounds, `${p.path} c=${p.concurrency}`);
    t.truthy(p.median);
    t.true(p.median!.gatewayRps > 0, `gateway ${p.path} c=${p.concurrency}`);
    t.true(p.median!.ceilingRps > 0, `ceiling ${p.path} c=${p.concurrency}`);
    t.true(Number.isFinite(p.median!.throughputRatio), `ratio ${p.median!.throughputRatio}`);
    t.true(p.median!.throughputRatio > 0, `ratio ${p.median!.throughputRatio}`);
    for (const round of p.rounds) {
      t.true(round.gateway.check.ok, round.gateway.check.detail);
      t.true(round.ceiling.check.ok, round.ceiling.check.detail);
      t.true(round.gateway.counted.items > 0, "the no-op model saw the calls");
    }
  }
  t.is(r.batching.length, r.settings.callers.length);
  for (const b of r.batching) {
    t.truthy(b.median);
    t.true(b.median!.capacityRps > 0, `capacity ${b.median!.capacityRps}`);
    t.true(b.median!.p99Ms > 0, `p99 ${b.median!.p99Ms}`);
    t.is(b.rounds.length, r.settings.rounds);
  }
  t.true((r.memory.gateway?.peakMiB ?? 0) > 0, "gateway RSS was read");
  t.true((r.memory["worker (no-op)"]?.peakMiB ?? 0) > 0, "worker RSS was read");
  t.true(r.targets.length > 0);

  const md = readFileSync(join(out, "latest.md"), "utf8");
  t.true(md.includes("| grpc vs bare grpc-js | 1 |"), md);
  t.true(md.includes("## Issue 6 targets"));
  t.true(run.stdout.includes("## Gateway (cache off, no-op worker) against the bare transport"), "the table is printed");
  t.true(existsSync(join(out, "latest.png")));
  t.deepEqual(readFileSync(join(out, "latest.png")).subarray(0, 8), PNG_SIGNATURE);
});
