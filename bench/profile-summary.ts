/**
 * Summarizes a V8 .cpuprofile (what `node --cpu-prof` writes): self time
 * per function, time per code area (project, grpc-js, Node internals,
 * zeromq, GC, idle …), and inclusive time of the project's own functions.
 *
 *   node --import tsx bench/profile-summary.ts FILE.cpuprofile [--top 30]
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { originalLines, readTsxCache, type FramePosition } from "./lib/source-lines.js";

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
  readonly columnNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

/** The parts of a .cpuprofile this reads. */
export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** One row of a summary: a function or an area, and its time. */
export interface TimeRow {
  readonly name: string;
  readonly ms: number;
  /** Share of the busy (non-idle) time. */
  readonly share: number;
}

export interface ProfileSummary {
  readonly totalMs: number;
  readonly idleMs: number;
  readonly busyMs: number;
  readonly areas: readonly TimeRow[];
  readonly selfTop: readonly TimeRow[];
  /** Inclusive time of project functions (gateway/, core/, worker/, gen/), recursion counted once. */
  readonly projectInclusiveTop: readonly TimeRow[];
}

const ROOT_URL = new URL("../", import.meta.url).href;

function shortUrl(url: string): string {
  if (url === "") return "";
  const nm = url.lastIndexOf("/node_modules/");
  if (nm >= 0) return url.slice(nm + "/node_modules/".length);
  return url.startsWith(ROOT_URL) ? url.slice(ROOT_URL.length) : url;
}

/** The code area a frame belongs to. */
export function areaOf(f: CallFrame): string {
  const u = f.url;
  if (u === "") return f.functionName.startsWith("(") ? f.functionName : "native / V8 builtins";
  if (u.startsWith("node:")) return "Node internals";
  const short = shortUrl(u);
  if (u.includes("/node_modules/")) {
    const parts = short.split("/");
    return parts[0]!.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  const top = short.split("/")[0]!;
  return ["gateway", "core", "worker", "gen", "management", "bench"].includes(top) ? `project: ${top}/` : short;
}

/** Original .ts line of a frame, when tsx's cache can tell; see lib/source-lines.ts. */
type LineOf = (f: CallFrame) => number | null;

function keyOf(f: CallFrame, lineOf: LineOf): string {
  const where = shortUrl(f.url);
  if (where === "") return f.functionName || "(anonymous)";
  const name = f.functionName || "(anonymous)";
  if (!f.url.endsWith(".ts")) return `${name} ${where}:${f.lineNumber + 1}`;
  const line = lineOf(f);
  return `${name} ${where}:${line ?? `${f.lineNumber + 1}:${f.columnNumber + 1} (compiled)`}`;
}

/** Resolves original lines of the project's .ts frames through tsx's cache. */
function projectLines(p: CpuProfile): LineOf {
  const byPath = new Map<string, CallFrame[]>();
  for (const n of p.nodes) {
    const u = n.callFrame.url;
    if (!u.startsWith("file://") || !u.endsWith(".ts") || u.includes("/node_modules/")) continue;
    const path = fileURLToPath(u);
    const list = byPath.get(path) ?? [];
    list.push(n.callFrame);
    byPath.set(path, list);
  }
  const entries = readTsxCache(new Set(byPath.keys()));
  const resolvers = new Map<string, ((f: FramePosition) => number | null) | null>();
  for (const [path, frames] of byPath) resolvers.set(path, originalLines(path, frames, entries));
  return (f) => {
    if (!f.url.startsWith("file://")) return null;
    return resolvers.get(fileURLToPath(f.url))?.(f) ?? null;
  };
}

const IDLE = new Set(["(idle)", "(program)"]);

/** A part of a profile, in ms since the profile started. */
export interface ProfileWindow {
  readonly fromMs: number;
  readonly toMs: number;
}

/** Summarizes a profile (only samples inside `window`, when given); `top` rows per list. */
export function summarizeProfile(p: CpuProfile, top = 30, window: ProfileWindow | null = null): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const lineOf = projectLines(p);
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time since the previous sample; charge it to sample i.
  let at = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    at += dt;
    if (window !== null && (at < window.fromMs * 1000 || at > window.toMs * 1000)) return;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
  });
  let totalUs = 0;
  let idleUs = 0;
  const self = new Map<string, number>();
  const areas = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    totalUs += us;
    if (IDLE.has(f.functionName) && f.url === "") {
      idleUs += us;
      continue;
    }
    const key = keyOf(f, lineOf);
    self.set(key, (self.get(key) ?? 0) + us);
    areas.set(areaOf(f), (areas.get(areaOf(f)) ?? 0) + us);
  }
  const busyUs = Math.max(1, totalUs - idleUs);

  // Inclusive time: walk the tree; a function already on the stack is not charged again.
  const inclusive = new Map<string, number>();
  const parentOf = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
  const rootIds = p.nodes.filter((n) => !parentOf.has(n.id)).map((n) => n.id);
  const subtree = new Map<number, number>();
  const order: number[] = [];
  const stack = [...rootIds];
  while (stack.length > 0) {
    const id = stack.pop()!;
    order.push(id);
    for (const c of byId.get(id)!.children ?? []) stack.push(c);
  }
  for (const id of order.reverse()) {
    let t = selfUs.get(id) ?? 0;
    for (const c of byId.get(id)!.children ?? []) t += subtree.get(c) ?? 0;
    subtree.set(id, t);
  }
  const visit = (id: number, onStack: Set<string>): void => {
    const f = byId.get(id)!.callFrame;
    const key = keyOf(f, lineOf);
    const project = areaOf(f).startsWith("project:");
    const fresh = project && !onStack.has(key);
    if (fresh) {
      inclusive.set(key, (inclusive.get(key) ?? 0) + (subtree.get(id) ?? 0));
      onStack.add(key);
    }
    for (const c of byId.get(id)!.children ?? []) visit(c, onStack);
    if (fresh) onStack.delete(key);
  };
  for (const id of rootIds) visit(id, new Set());

  const rows = (m: Map<string, number>): TimeRow[] =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, us]) => ({ name, ms: us / 1000, share: us / busyUs }));
  return {
    totalMs: totalUs / 1000,
    idleMs: idleUs / 1000,
    busyMs: (totalUs - idleUs) / 1000,
    areas: rows(areas),
    selfTop: rows(self),
    projectInclusiveTop: rows(inclusive),
  };
}

/** The summary as markdown tables. */
export function renderSummary(title: string, s: ProfileSummary): string {
  const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;
  const table = (head: string, rows: readonly TimeRow[]): string[] => [
    `| ${head} | ms | share of busy |`,
    "|---|--:|--:|",
    ...rows.map((r) => `| \`${r.name.replace(/\|/g, "\\|")}\` | ${r.ms.toFixed(1)} | ${pct(r.share)} |`),
  ];
  return [
    `### ${title}`,
    "",
    `Sampled ${s.totalMs.toFixed(0)} ms: busy ${s.busyMs.toFixed(0)} ms (${pct(s.busyMs / Math.max(1, s.totalMs))}), idle ${s.idleMs.toFixed(0)} ms.`,
    "",
    "Self time by area:",
    "",
    ...table("area", s.areas),
    "",
    "Top functions by self time:",
    "",
    ...table("function (file:line)", s.selfTop),
    "",
    "Project functions by inclusive time (self + callees):",
    "",
    ...table("function (file:line)", s.projectInclusiveTop),
    "",
  ].join("\n");
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: "string", default: "30" } } });
  if (positionals.length === 0) {
    process.stderr.write("usage: node --import tsx bench/profile-summary.ts FILE.cpuprofile [--top 30]\n");
    process.exit(2);
  }
  for (const file of positionals) {
    const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
    process.stdout.write(renderSummary(file, summarizeProfile(profile, Number(values.top))) + "\n");
  }
}
