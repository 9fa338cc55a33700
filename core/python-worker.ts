/**
 * The Python model worker (worker/python/clipper_worker) as the programs
 * that start it see it: the interpreter it runs with, where its package
 * lives, and the one rule for what `--python PATH_OR_MODULE` names. The
 * worker applies the same rule itself (model_loader.py). Imports only
 * Node built-ins, so the CLI may use it (test/architecture.test.ts).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Debian's interpreter: the worker's dependencies are Debian packages
 * (python3-zmq, python3-protobuf, python3-numpy), which only it sees; a
 * `python3` first on PATH may be another one (pyenv, a venv).
 */
export const PYTHON_INTERPRETER = "/usr/bin/python3";

/**
 * The directory to put on PYTHONPATH so `python3 -m clipper_worker` finds
 * the package: in the checkout (this file runs from core/, or from
 * dist/core/ when compiled), where it also finds gen/python/.
 */
export const PYTHON_WORKER_PATH = ((): string => {
  const candidates = ["../worker/python", "../../worker/python"].map((p) => fileURLToPath(new URL(p, import.meta.url)));
  return candidates.find((dir) => existsSync(join(dir, "clipper_worker", "__main__.py"))) ?? candidates[0]!;
})();

/** What the Debian packages the worker needs are called, for error messages. */
export const PYTHON_WORKER_PACKAGES = "python3 python3-zmq python3-protobuf python3-numpy python3-cryptography python3-prometheus-client";

/** What `--python` names: a .py file (an absolute path once resolved) or an importable module; either with an optional function. */
export type PythonTarget =
  | { readonly kind: "file"; readonly path: string; readonly function: string }
  | { readonly kind: "module"; readonly name: string; readonly function: string };

const IDENT = "[A-Za-z_][A-Za-z0-9_]*";
const MODULE_NAME = new RegExp(`^${IDENT}(\\.${IDENT})*$`);
const FUNCTION_SUFFIX = new RegExp(`^(.+):(${IDENT})$`);

/**
 * Splits `PATH_OR_MODULE[:FUNCTION]`: a file when the part before the
 * function holds a '/' or ends in .py (or is no dotted name), a module name
 * otherwise. The function defaults to `predict`.
 */
export function parsePythonTarget(spec: string): PythonTarget {
  const m = FUNCTION_SUFFIX.exec(spec);
  const target = m === null ? spec : m[1]!;
  const fn = m === null ? "predict" : m[2]!;
  if (target.includes("/") || target.endsWith(".py") || !MODULE_NAME.test(target)) return { kind: "file", path: target, function: fn };
  return { kind: "module", name: target, function: fn };
}

/** The spec text of a target (the inverse of {@link parsePythonTarget}); the function is written only when not `predict`. */
export function formatPythonTarget(t: PythonTarget): string {
  const base = t.kind === "file" ? t.path : t.name;
  return t.function === "predict" ? base : `${base}:${t.function}`;
}
