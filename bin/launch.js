// What every bin/ script does: run the compiled entry point from dist/ when
// a build is there and no build input changed since it started, else the
// TypeScript source through tsx. tsx costs about 35 MiB of RSS per process
// (its loader thread has an isolate of its own) and compiles at start, but
// running a stale dist/ while someone edits the sources would be worse.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import v8 from "node:v8";

/** The checkout (or installed package) root. */
export const ROOT = fileURLToPath(new URL("../", import.meta.url));

/**
 * Written by scripts/build.mjs when the build starts and moved into dist/
 * with the output, so its mtime is the moment the compiler's view of the
 * sources was taken: anything changed after that makes dist/ stale.
 */
export const STAMP = "dist/.build-stamp";

/** What dist/ is built from (tsconfig.build.json's inputs and the copied assets), relative to the root. */
export const RUNTIME_INPUTS = ["core", "gateway", "management", "worker", "clients", "gen", "tsconfig.json", "tsconfig.build.json"];

// Only files the build reads: a test or Python leaving __pycache__ or logs
// around must not make dist/ look stale.
const INPUT_FILE = /\.(?:[cm]?[jt]s|json|binpb)$/;
const SKIP_DIR = new Set(["node_modules", "__pycache__"]);

/**
 * Whether some build input under `paths` (files or folders, relative to
 * `root`) has an mtime at or after `sinceMs`. Stops at the first one: stale
 * is the cheap answer, fresh needs a stat of every input (about a hundred,
 * 2–4 ms at start-up).
 * "At or after": the file system's clock ticks coarsely, and an edit in the
 * same tick as the build's start may have been missed by it.
 */
export function changedSince(root, paths, sinceMs) {
  const visit = (path) => {
    let entries;
    try {
      entries = readdirSync(path, { withFileTypes: true });
    } catch (err) {
      if (err.code === "ENOTDIR") return statSync(path).mtimeMs >= sinceMs;
      if (err.code === "ENOENT") return false;
      throw err;
    }
    for (const e of entries) {
      const p = join(path, e.name);
      if (e.isDirectory()) {
        if (!SKIP_DIR.has(e.name) && !e.name.startsWith(".") && visit(p)) return true;
      } else if (INPUT_FILE.test(e.name) && statSync(p, { throwIfNoEntry: false })?.mtimeMs >= sinceMs) {
        return true;
      }
    }
    return false;
  };
  return paths.some((p) => visit(join(root, p)));
}

/** Whether `root`/dist holds a complete build newer than every input under `paths`. */
export function distIsFresh(root = ROOT, paths = RUNTIME_INPUTS) {
  const stamp = statSync(join(root, STAMP), { throwIfNoEntry: false });
  return stamp !== undefined && !changedSince(root, paths, stamp.mtimeMs);
}

/** Whether this process runs dist/: decided once, on first use. */
let fromDist = null;
let tsxRegistered = false;

/**
 * Imports `entry` ("gateway/main": no extension, relative to the root) from
 * dist/ when fresh, else from its .ts source through tsx.
 * CLIPPER_FROM_SOURCE=1 forces the source.
 */
async function load(entry) {
  fromDist ??= process.env.CLIPPER_FROM_SOURCE !== "1" && distIsFresh();
  if (fromDist) return import(pathToFileURL(join(ROOT, "dist", `${entry}.js`)).href);
  if (!tsxRegistered) {
    const { register } = await import("tsx/esm/api");
    register();
    tsxRegistered = true;
  }
  return import(pathToFileURL(join(ROOT, `${entry}.ts`)).href);
}

/** Runs `entry` (see load). */
export async function launch(entry) {
  await load(entry);
}

/**
 * Runs the gateway `entry` with the heap flags of core/gateway-heap.ts that
 * it was not started with.
 *
 * V8 reads the heap growing percentage at every full GC, so setting it here
 * works. It sizes the young generation once, when the isolate is created:
 * `v8.setFlagsFromString("--max-semi-space-size=8")` is accepted but changes
 * nothing (tried: new space still grows to 32 MiB). So where Node can replace
 * the process image in place (process.execve, Node ≥ 22.15) the launcher
 * re-executes itself with the flag: same pid and stdio, so whoever started
 * it (signals, RSS read from /proc) sees no difference. Node 20 cannot;
 * re-spawning a child instead would keep a second Node of ~40 MiB alive
 * behind a pid that is not the gateway's, more than the flag saves, so there
 * the semi-space size is the starter's to give (`clipper up` and the bench
 * pass gatewayNodeFlags).
 */
export async function launchGateway(entry) {
  const { gatewayNodeFlags, SEMI_SPACE_FLAG, HEAP_GROWING_FLAG } = await load("core/gateway-heap");
  const missing = gatewayNodeFlags(process.env, process.execArgv);
  const script = process.argv[1];
  if (missing.some((f) => SEMI_SPACE_FLAG.test(f)) && typeof process.execve === "function" && script !== undefined) {
    try {
      // process.execve's env defaults to an empty environment, not process.env.
      process.execve(process.execPath, [process.execPath, ...process.execArgv, ...missing, script, ...process.argv.slice(2)], { ...process.env });
    } catch {
      // Refused (a permission model, a sandbox): a default young generation is no reason not to serve.
    }
  }
  for (const f of missing) if (HEAP_GROWING_FLAG.test(f)) v8.setFlagsFromString(f);
  await load(entry);
}
