/**
 * The dependency rules of style.md "What we adopt" (2, 3), checked on every
 * import of the source tree: gen/ ← core/ ← gateway/ | management/ |
 * worker/, no imports between process folders, clients/ importing only
 * gen/, @grpc/grpc-js, Node built-ins and the import-free core/ modules of
 * CLIENT_CORE_MODULES, and no import cycle anywhere (type-only imports
 * included: a cycle of types is a cycle of design).
 */
import test from "ava";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { ROOT } from "./helpers/processes.js";

const FOLDERS = ["gen", "core", "gateway", "management", "worker", "clients"] as const;
type Folder = (typeof FOLDERS)[number];

/** Which first-party folders each folder may import from (its own is always allowed). */
const ALLOWED: Record<Folder, readonly Folder[]> = {
  gen: [],
  core: ["gen"],
  gateway: ["core", "gen"],
  management: ["core", "gen"],
  worker: ["core", "gen"],
  clients: ["gen"],
};
/**
 * The core/ modules clients/ may import. Each is a contract shared by the
 * servers and whoever starts them, like gen/ is for RPCs, and imports
 * nothing but Node built-ins and one another (checked below), so clients/
 * gains no dependency through it. core/ports-line.ts: the bins print their
 * ports line through it and `clipper up` reads it back, so the text has one
 * home. core/process-group.ts: management's supervisor and `clipper up` stop
 * a child and its children alike. core/curve/key-pair.ts and z85.ts:
 * `clipper keys generate` and `clipper up` write the CURVE key files the
 * servers and workers read. core/input-types.ts: `clipper k8s manifests`
 * checks --input-type offline by the rule the worker applies at start.
 * core/redis-url.ts: `clipper up` checks and redacts --redis-url by the
 * servers' own rule. core/python-worker.ts: `clipper models deploy
 * --python` resolves a file by the rule management checks it with.
 * core/worker-endpoint.ts (with core/decoded.ts): `clipper up` checks that
 * its gateway's worker sockets fit a socket path by the gateway's own rule.
 * core/gateway-heap.ts: `clipper up` starts its gateway with the heap flags
 * the gateway's launcher would apply.
 */
const CLIENT_CORE_MODULES: ReadonlySet<string> = new Set([
  "core/ports-line.ts",
  "core/process-group.ts",
  "core/curve/key-pair.ts",
  "core/curve/z85.ts",
  "core/input-types.ts",
  "core/redis-url.ts",
  "core/python-worker.ts",
  "core/worker-endpoint.ts",
  "core/decoded.ts",
  "core/gateway-heap.ts",
]);
/** npm packages clients/ may import (besides Node built-ins). */
const CLIENT_PACKAGES = new Set(["@grpc/grpc-js"]);
const BUILTINS = new Set(builtinModules);

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (/\.(ts|mts|js|mjs)$/.test(entry) && !entry.endsWith(".d.ts")) out.push(path);
  }
  return out;
}

/** Every module specifier a file imports, re-exports or dynamically imports with a literal. */
export function importsOf(source: string): string[] {
  const specs: string[] = [];
  const patterns = [
    /\b(?:import|export)\s[^'"`;]*?\sfrom\s*["']([^"']+)["']/g,
    /\bimport\s*["']([^"']+)["']/g,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
  ];
  // Comments may mention imports in examples; they are not edges.
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:])\/\/.*$/gm, "$1");
  for (const re of patterns) for (const m of code.matchAll(re)) specs.push(m[1]!);
  return specs;
}

function folderOf(path: string): Folder | null {
  const top = relative(ROOT, path).split(/[\\/]/)[0];
  return (FOLDERS as readonly string[]).includes(top ?? "") ? (top as Folder) : null;
}

/** The repository path of the source file an import of `path` (a .js specifier) loads. */
function sourceOf(path: string): string {
  return relative(ROOT, path).split(/[\\/]/).join("/").replace(/\.js$/, ".ts");
}

function isBuiltin(spec: string): boolean {
  return spec.startsWith("node:") || BUILTINS.has(spec);
}

function packageName(spec: string): string {
  const parts = spec.split("/");
  return spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!;
}

/** Violations: "file: imports X (why)". */
function violations(): string[] {
  const found: string[] = [];
  for (const folder of FOLDERS) {
    const dir = join(ROOT, folder);
    let files: string[];
    try {
      files = sourceFiles(dir);
    } catch {
      continue;
    }
    for (const file of files) {
      const rel = relative(ROOT, file);
      for (const spec of importsOf(readFileSync(file, "utf8"))) {
        if (spec.startsWith(".")) {
          const path = resolve(dirname(file), spec);
          const target = folderOf(path);
          if (target === null) found.push(`${rel}: imports ${spec}, outside the source folders`);
          else if (folder === "clients" && CLIENT_CORE_MODULES.has(sourceOf(path))) continue;
          else if (target !== folder && !ALLOWED[folder].includes(target)) found.push(`${rel}: imports ${spec} (${folder}/ may not depend on ${target}/)`);
        } else if (folder === "clients" && !isBuiltin(spec) && !CLIENT_PACKAGES.has(packageName(spec))) {
          found.push(`${rel}: imports ${spec} (clients/ may import only gen/, @grpc/grpc-js and Node built-ins)`);
        }
      }
    }
  }
  return found;
}

/** The source file a relative specifier names (`./x.js` is `./x.ts` on disk), or null when it is not a source file of the tree. */
function resolveSource(from: string, spec: string): string | null {
  const path = resolve(dirname(from), spec);
  for (const candidate of [path, path.replace(/\.js$/, ".ts"), path.replace(/\.mjs$/, ".mts")]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  return null;
}

/** Every import cycle among the given files, each as the list of files around it (Tarjan's strongly connected components). */
export function importCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    for (;;) {
      const w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
      if (w === v) break;
    }
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

/** The tree's relative-import graph, by path relative to the root. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const folder of [...FOLDERS, "test", "bench", "scripts", "bin"]) {
    let files: string[];
    try {
      files = sourceFiles(join(ROOT, folder));
    } catch {
      continue;
    }
    for (const file of files) {
      const targets = importsOf(readFileSync(file, "utf8"))
        .filter((spec) => spec.startsWith("."))
        .map((spec) => resolveSource(file, spec))
        .filter((target): target is string => target !== null)
        .map((target) => relative(ROOT, target));
      graph.set(relative(ROOT, file), targets);
    }
  }
  return graph;
}

test("imports follow the dependency rules: gen ← core ← gateway | management | worker; clients → gen, grpc-js, node", (t) => {
  t.deepEqual(violations(), []);
});

test("the import scanner sees static, re-export, side-effect and dynamic imports, not comments", (t) => {
  const src = [
    'import { a } from "../core/x.js";',
    'import type { B } from "ioredis";',
    'export { c } from "./c.js";',
    'import "./side.js";',
    'const m = await import("../gateway/y.js");',
    '// import { z } from "../worker/z.js";',
    'import {\n  d,\n  e,\n} from "node:fs";',
  ].join("\n");
  t.deepEqual(importsOf(src).sort(), ["../core/x.js", "../gateway/y.js", "./c.js", "./side.js", "ioredis", "node:fs"].sort());
});

test("no import cycle anywhere in the tree", (t) => {
  const graph = importGraph();
  t.true(graph.size > 100, `the scan found only ${graph.size} files`);
  t.deepEqual(importCycles(graph), []);
});

test("the cycle finder sees long cycles and self-imports, and not diamonds", (t) => {
  const graph = new Map<string, string[]>([
    ["a", ["b"]],
    ["b", ["c"]],
    ["c", ["a", "d"]],
    ["d", []],
    ["e", ["e"]],
    ["f", ["g", "h"]],
    ["g", ["i"]],
    ["h", ["i"]],
    ["i", []],
  ]);
  t.deepEqual(importCycles(graph).sort(), [["a", "b", "c"], ["e"]]);
});

test("the core/ modules clients/ may import import only Node built-ins and one another", (t) => {
  for (const module of CLIENT_CORE_MODULES) {
    const foreign = importsOf(readFileSync(join(ROOT, module), "utf8")).filter(
      (spec) => !(spec.startsWith("node:") && isBuiltin(spec)) && !(spec.startsWith(".") && CLIENT_CORE_MODULES.has(sourceOf(resolve(dirname(join(ROOT, module)), spec)))),
    );
    t.deepEqual(foreign, [], module);
  }
});

test("every process folder is scanned and has source files", (t) => {
  for (const folder of FOLDERS) t.true(sourceFiles(join(ROOT, folder)).length > 0, folder);
});
