/**
 * Original line numbers for CPU-profile frames of TypeScript files run
 * through tsx. tsx compiles each file with esbuild's minifyWhitespace, so
 * V8 reports nearly every function at line 1 of the compiled code; the
 * compiled code and its source map sit in tsx's on-disk cache
 * (<tmpdir>/tsx-<uid>/), which is read here to map a frame's compiled
 * (line, column) back to its line in the .ts file.
 */
import { readdirSync, readFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";

const VLQ_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const VLQ_VALUE = new Map([...VLQ_CHARS].map((c, i) => [c, i]));

/** One compiled line's mappings: [compiled column, original line (0-based)], sorted by column. */
type LineMap = [number, number][];

/** Decodes a source map's `mappings` (single source) into per-line segment lists. */
export function decodeMappings(mappings: string): LineMap[] {
  const lines: LineMap[] = [];
  let srcLine = 0;
  for (const line of mappings.split(";")) {
    const segs: LineMap = [];
    let col = 0;
    for (const seg of line.split(",")) {
      if (seg === "") continue;
      const fields: number[] = [];
      let value = 0;
      let shift = 0;
      for (const ch of seg) {
        const digit = VLQ_VALUE.get(ch) ?? 0;
        value += (digit & 31) << shift;
        if (digit & 32) {
          shift += 5;
        } else {
          fields.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      col += fields[0] ?? 0;
      if (fields.length >= 4) {
        srcLine += fields[2]!;
        segs.push([col, srcLine]);
      }
    }
    lines.push(segs);
  }
  return lines;
}

interface CacheEntry {
  readonly code: string;
  readonly map: { readonly mappings: string; readonly sources: readonly string[] };
}

/** A frame's position in compiled code and the function name V8 gave it. */
export interface FramePosition {
  readonly functionName: string;
  readonly lineNumber: number;
  readonly columnNumber: number;
}

function lineStarts(code: string): number[] {
  const starts = [0];
  for (let i = 0; i < code.length; i++) if (code.charCodeAt(i) === 10) starts.push(i + 1);
  return starts;
}

/**
 * Maps frames of `path` to original 1-based lines, or null when no cached
 * compilation of the file matches the frames (the cache was cleared, or the
 * file changed since). Among several cached versions of the file, the one
 * whose code has the frames' function names at their positions wins.
 */
export function originalLines(path: string, frames: readonly FramePosition[], entries: readonly CacheEntry[]): ((f: FramePosition) => number | null) | null {
  let best: { entry: CacheEntry; score: number } | null = null;
  const named = frames.filter((f) => f.functionName !== "" && !f.functionName.startsWith("("));
  for (const entry of entries) {
    if (entry.map.sources[0] !== path) continue;
    const starts = lineStarts(entry.code);
    let score = 0;
    for (const f of named) {
      const at = (starts[f.lineNumber] ?? 0) + f.columnNumber;
      const name = f.functionName.split(".").pop()!.replace(/^#/, "");
      if (entry.code.slice(Math.max(0, at - 80), at + 80).includes(name)) score++;
    }
    if (best === null || score > best.score) best = { entry, score };
  }
  if (best === null || (named.length > 0 && best.score < named.length * 0.8)) return null;
  const lines = decodeMappings(best.entry.map.mappings);
  return (f) => {
    const segs = lines[f.lineNumber];
    if (segs === undefined || segs.length === 0) return null;
    let lo = 0;
    let hi = segs.length - 1;
    if (segs[0]![0] > f.columnNumber) return segs[0]![1] + 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (segs[mid]![0] <= f.columnNumber) lo = mid;
      else hi = mid - 1;
    }
    return segs[lo]![1] + 1;
  };
}

/** Reads tsx's cache entries that compiled one of `paths` (absolute .ts paths). */
export function readTsxCache(paths: ReadonlySet<string>, dir = join(tmpdir(), `tsx-${userInfo().uid}`)): CacheEntry[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: CacheEntry[] = [];
  for (const name of names) {
    let text: string;
    try {
      text = readFileSync(join(dir, name), "utf8");
    } catch {
      continue;
    }
    // Cheap filter before parsing: the source path appears in the map.
    if (![...paths].some((p) => text.includes(JSON.stringify(p)))) continue;
    try {
      const entry = JSON.parse(text) as CacheEntry;
      if (typeof entry.code === "string" && typeof entry.map?.mappings === "string") out.push(entry);
    } catch {
      // not a cache entry
    }
  }
  return out;
}
