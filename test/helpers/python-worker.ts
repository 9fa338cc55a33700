import { spawn } from "node:child_process";
import { join } from "node:path";
import { PYTHON_INTERPRETER } from "../../core/python-worker.js";
import { Proc, ROOT, workerArgs } from "./processes.js";

/** Debian's interpreter, whose python3-* packages the worker and the Python tests use (another python3 may be first on PATH). */
export const PYTHON = PYTHON_INTERPRETER;

/** The Python worker's environment: its package on PYTHONPATH, and no CLIPPER_* inherited from the test run. */
export function pythonWorkerEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("CLIPPER_")));
  return { ...clean, PYTHONPATH: join(ROOT, "worker", "python"), PYTHONDONTWRITEBYTECODE: "1", CLIPPER_LOG_LEVEL: "info", ...env };
}

/** Spawns `/usr/bin/python3 -m clipper_worker args…` from the checkout root (not waiting for anything). */
export function spawnPythonWorker(args: readonly string[], env: NodeJS.ProcessEnv = {}): Proc {
  return new Proc(spawn(PYTHON, ["-m", "clipper_worker", ...args], { cwd: ROOT, env: pythonWorkerEnv(env), stdio: ["ignore", "pipe", "pipe"] }));
}

/** A Python worker serving `module` for a model version at `gateway` (tcp://…); resolves once it has registered. */
export async function startPythonWorker(
  gateway: string,
  model: string,
  version: string,
  inputType: string,
  module: string,
  extra: readonly string[] = [],
  env: NodeJS.ProcessEnv = {},
): Promise<Proc> {
  const proc = spawnPythonWorker(workerArgs({ model, version, inputType, gateway, module }, extra), env);
  await proc.waitFor(/worker registered/);
  return proc;
}
