/**
 * The PNG chart of latency against load, drawn by gnuplot (Debian's
 * gnuplot-nox, pngcairo terminal): mean and p99 latency against throughput
 * for each path and its ceiling, one point per concurrency (medians), and
 * the batching points.
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BenchResults } from "./report.js";
import { CEILING_OF, type PathName } from "./results.js";

/** Longest gnuplot may take, in ms. */
const GNUPLOT_TIMEOUT_MS = 30_000;

/** One colour per series, in the order seriesOf() returns them (gateway paths, ceilings, batching). */
const COLOURS: Readonly<Record<string, string>> = {
  "gateway, grpc": "#6a1b9a",
  "gateway, http-transcoded": "#2e7d32",
  "gateway, clipper-rest": "#1565c0",
  "ceiling, bare grpc-js": "#e65100",
  "ceiling, bare node:http": "#424242",
};
const BATCH_COLOUR = "#c62828";

interface Series {
  readonly title: string;
  /** Rows: concurrency, req/s, mean ms, p99 ms. */
  readonly rows: [number, number, number, number][];
}

function seriesOf(r: BenchResults): Series[] {
  const out: Series[] = [];
  const paths: PathName[] = ["grpc", "http-transcoded", "clipper-rest"];
  const ceilings = new Map<string, Series>();
  for (const path of paths) {
    const points = r.points.filter((p) => p.path === path && p.median !== null).sort((a, b) => a.concurrency - b.concurrency);
    if (points.length === 0) continue;
    out.push({ title: `gateway, ${path}`, rows: points.map((p) => [p.concurrency, p.median!.gatewayRps, p.median!.gatewayMeanMs, p.median!.gatewayP99Ms]) });
    const name = CEILING_OF[path];
    if (!ceilings.has(name)) {
      const rows = points.map((p): [number, number, number, number] => {
        const rounds = p.rounds.map((x) => x.ceiling.result);
        const med = (f: (x: (typeof rounds)[number]) => number): number => rounds.map(f).sort((a, b) => a - b)[rounds.length >> 1] ?? NaN;
        return [p.concurrency, p.median!.ceilingRps, p.median!.ceilingMeanMs, med((x) => x.p99Ms)];
      });
      ceilings.set(name, { title: `ceiling, ${name}`, rows });
    }
  }
  out.push(...ceilings.values());
  const batch = r.batching.filter((b) => b.median !== null);
  if (batch.length > 0) {
    const meanMs = (b: (typeof batch)[number]): number => b.rounds.map((x) => x.result.meanMs).sort((a, c) => a - c)[b.rounds.length >> 1] ?? NaN;
    out.push({ title: `batching model, clipper-rest (SLO ${r.settings.sloMs} ms)`, rows: batch.map((b) => [b.callers, b.median!.rps, meanMs(b), b.median!.p99Ms]) });
  }
  return out;
}

/** Writes `pngPath`; returns null, or why no chart was drawn. */
export function drawChart(r: BenchResults, workDir: string, pngPath: string): string | null {
  const series = seriesOf(r);
  if (series.length === 0) return "nothing to draw";
  const dataPath = join(workDir, "chart.dat");
  // gnuplot's "index" blocks are separated by two blank lines.
  writeFileSync(dataPath, series.map((s) => s.rows.map((row) => row.map((x) => (Number.isFinite(x) ? x : "NaN")).join(" ")).join("\n")).join("\n\n\n") + "\n");
  const plot = (column: number): string =>
    series
      .map((s, i) => `'${dataPath}' index ${i} using 2:${column} with linespoints linecolor rgb "${COLOURS[s.title] ?? BATCH_COLOUR}"${s.title.startsWith("ceiling") ? " dashtype 2" : ""} pointtype ${5 + i} pointsize 1.3 linewidth 2 title "${s.title}"`)
      .join(", \\\n  ");
  const labels = series
    .filter((s) => s.title.startsWith("gateway, grpc"))
    .map((s) => `'${dataPath}' index ${series.indexOf(s)} using 2:COL:(sprintf("c=%d", $1)) with labels offset 0,1.2 font ",9" notitle`);
  const script = `
set terminal pngcairo size 1500,680 font "DejaVu Sans,11"
set output '${pngPath}'
set multiplot layout 1,2 title "clipper-ts: latency against load (medians of ${r.settings.rounds} rounds; points are c = ${r.settings.concurrency.join(", ")} callers; batching: ${r.settings.callers.join(", ")} callers)"
set grid
set logscale y
set xlabel "throughput (req/s)"
set key below maxrows 2 font ",9"
set ylabel "mean latency (ms)"
plot ${plot(3)}${labels.length > 0 ? `, \\\n  ${labels[0]!.replace("COL", "3")}` : ""}
set ylabel "p99 latency (ms)"
plot ${plot(4)}${labels.length > 0 ? `, \\\n  ${labels[0]!.replace("COL", "4")}` : ""}
unset multiplot
`;
  const scriptPath = join(workDir, "chart.gp");
  writeFileSync(scriptPath, script);
  const res = spawnSync("gnuplot", [scriptPath], { encoding: "utf8", timeout: GNUPLOT_TIMEOUT_MS });
  if (res.status !== 0) return `gnuplot failed (${res.status ?? res.signal}): ${res.stderr}`;
  return null;
}
