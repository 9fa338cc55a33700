/**
 * Loads a model module given by `--module` (design.md § Commands): its
 * default export, or its named export `predict`, is the model function; an
 * optional named export `setup` runs once before the worker registers
 * (load weights, warm up, define metrics).
 */
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Logger } from "../core/telemetry/logger.js";
import type { PredictFn } from "./batch-executor.js";
import type { ModelMetrics } from "./model-metrics.js";

/** What a model's `setup` export receives. */
export interface ModelRuntime {
  /** Define and report the model's own metrics (served on the worker's --metrics-port). */
  readonly metrics: ModelMetrics;
  readonly model: string;
  readonly version: string;
  /** The input type as given to the worker. */
  readonly inputType: string;
  /** A child logger for the model's own lifecycle lines. */
  readonly log: Logger;
}

/**
 * A model module's optional `setup` export: runs once, awaited, before the
 * worker registers with the gateway, so no query arrives before it is done.
 * A throw stops the worker (exit 1) instead of serving a half-ready model.
 */
export type ModelSetup = (runtime: ModelRuntime) => unknown;

/** The model function (and setup hook) and the absolute path it came from, or what to fix. */
export type LoadedModel = { ok: true; predict: PredictFn; setup: ModelSetup | null; path: string } | { ok: false; error: string };

/**
 * Imports `modulePath` (resolved against `cwd`) with a dynamic `import()`:
 * .js/.mjs/.cjs as they are, .ts/.mts/.cts through tsx. Never throws: a
 * missing file, a module that fails to load, or one without a usable export
 * gives `{ok: false}` with a message saying what to fix.
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
    if (TYPESCRIPT_MODULE.test(path)) await tsxRegistered();
    mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (err) {
    return { ok: false, error: `model module ${path} failed to load: ${err instanceof Error ? err.message : String(err)}` };
  }
  const predict = pickExport(mod);
  if (predict === null) {
    const names = Object.keys(mod).join(", ") || "none";
    return { ok: false, error: `model module ${path} has no model function: export default async (inputs) => outputs, or export a function named predict (exports found: ${names})` };
  }
  return { ok: true, predict, setup: pickSetup(mod), path };
}

const TYPESCRIPT_MODULE = /\.[cm]?ts$/;

let tsx: Promise<void> | null = null;

/**
 * Run from dist/ (bin/launch.js), the worker has no TypeScript loader, and
 * registering tsx for every worker would add a loader thread with its own
 * isolate to each one (bench/README.md, "Memory", has the cost): only a .ts
 * model pays for it. Run from this .ts file, a loader is already there.
 */
function tsxRegistered(): Promise<void> {
  if (import.meta.url.endsWith(".ts")) return Promise.resolve();
  tsx ??= import("tsx/esm/api").then(({ register }) => void register());
  return tsx;
}

function pickSetup(mod: Record<string, unknown>): ModelSetup | null {
  if (typeof mod.setup === "function") return mod.setup as ModelSetup;
  return commonJsMethod<ModelSetup>(mod, "setup");
}

function pickExport(mod: Record<string, unknown>): PredictFn | null {
  if (typeof mod.default === "function") return mod.default as PredictFn;
  if (typeof mod.predict === "function") return mod.predict as PredictFn;
  return commonJsMethod<PredictFn>(mod, "predict");
}

/**
 * A function property `name` of a CommonJS module, bound to its exports: such
 * a module arrives as `default = module.exports`, and its methods may use `this`.
 */
function commonJsMethod<F extends (...args: never[]) => unknown>(mod: Record<string, unknown>, name: string): F | null {
  const cjs = mod.default;
  if (typeof cjs !== "object" || cjs === null) return null;
  const fn = (cjs as Record<string, unknown>)[name];
  return typeof fn === "function" ? (fn.bind(cjs) as F) : null;
}
