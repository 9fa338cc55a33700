/**
 * Loads a model module given by `--module` (design.md § Commands): its
 * default export, or its named export `predict`, is the model function.
 */
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { PredictFn } from "./batch-executor.js";

/** The model function and the absolute path it came from, or what to fix. */
export type LoadedModel = { ok: true; predict: PredictFn; path: string } | { ok: false; error: string };

/**
 * Imports `modulePath` (resolved against `cwd`) with a dynamic `import()`, so
 * .js/.mjs/.cjs work everywhere and .ts works where tsx is registered (as
 * bin/clipper-worker.js does). Never throws: a missing file, a module that
 * fails to load, or one without a usable export gives `{ok: false}` with a
 * message saying what to fix.
 */
export async function loadModel(modulePath: string, cwd: string = process.cwd()): Promise<LoadedModel> {
  if (modulePath.trim() === "") return { ok: false, error: "no model module given: pass --module PATH (or CLIPPER_MODULE)" };
  const path = resolve(cwd, modulePath);
  try {
    const s = await stat(path);
    if (!s.isFile()) return { ok: false, error: `model module ${path} is not a file` };
  } catch {
    return { ok: false, error: `model module ${path} does not exist (--module ${modulePath}, resolved against ${cwd})` };
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (err) {
    return { ok: false, error: `model module ${path} failed to load: ${err instanceof Error ? err.message : String(err)}` };
  }
  const predict = pickExport(mod);
  if (predict === null) {
    const names = Object.keys(mod).join(", ") || "none";
    return { ok: false, error: `model module ${path} has no model function: export default async (inputs) => outputs, or export a function named predict (exports found: ${names})` };
  }
  return { ok: true, predict, path };
}

function pickExport(mod: Record<string, unknown>): PredictFn | null {
  if (typeof mod.default === "function") return mod.default as PredictFn;
  if (typeof mod.predict === "function") return mod.predict as PredictFn;
  // A CommonJS module arrives as `default = module.exports`; accept its `predict`.
  const cjs = mod.default;
  if (typeof cjs === "object" && cjs !== null && typeof (cjs as Record<string, unknown>).predict === "function") {
    const fn = (cjs as Record<string, unknown>).predict as PredictFn;
    return (inputs) => fn.call(cjs, inputs);
  }
  return null;
}
