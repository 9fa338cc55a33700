/**
 * What management lets a deployment run. A `worker.command` runs any
 * program as management's user, so it is off unless the operator turns it
 * on (--allow-worker-commands); a module may be confined to one directory
 * (--worker-module-root). The same check guards a new deploy and a saved
 * deployment a restarted management would start again.
 */
import { realpath } from "node:fs/promises";
import { isAbsolute, relative, sep } from "node:path";
import type { WorkerSpecRecord } from "../core/deployment-layout.js";
import { permissionDenied, type ServingError } from "../core/errors.js";
import { parsePythonTarget } from "../core/python-worker.js";

/** What deployments may run on this management's host. */
export interface WorkerPolicy {
  /** Whether `worker.command` deployments may run (--allow-worker-commands). */
  readonly allowCommands: boolean;
  /**
   * Directory every `worker.module` (and `worker.python` file) must be
   * under, or "" for anywhere (--worker-module-root). With a root, a
   * `worker.python` module name is refused: what it imports is not a file
   * management can place.
   */
  readonly moduleRoot: string;
}

/** The default: modules anywhere, no commands. */
export const DEFAULT_WORKER_POLICY: WorkerPolicy = { allowCommands: false, moduleRoot: "" };

/**
 * Why `w` may not run under `policy` (PERMISSION_DENIED naming the flag
 * that would allow it), or null. Symlinks are resolved on both sides before
 * comparing, so a link under the root to a file elsewhere does not pass.
 * A module that does not exist passes here; checkWorker reports it.
 */
export async function workerPolicyRefusal(w: WorkerSpecRecord, policy: WorkerPolicy): Promise<ServingError | null> {
  if (w.command.length > 0 && !policy.allowCommands) {
    return permissionDenied(
      "WORKER_COMMANDS_DISABLED",
      "this management server does not run worker commands: start it with --allow-worker-commands (env CLIPPER_ALLOW_WORKER_COMMANDS=1) to let callers of DeployModel run programs on its host, or deploy a model module instead",
    );
  }
  const python = w.python === "" ? null : parsePythonTarget(w.python);
  if (python?.kind === "module" && policy.moduleRoot !== "") {
    return permissionDenied(
      "WORKER_MODULE_OUTSIDE_ROOT",
      `Python module name '${python.name}' cannot be checked against --worker-module-root ${policy.moduleRoot}: deploy a .py file under it instead`,
    );
  }
  const file = w.module !== "" ? w.module : python?.kind === "file" ? python.path : "";
  if (file !== "" && policy.moduleRoot !== "") {
    const [root, module] = await Promise.all([realpath(policy.moduleRoot).catch(() => null), realpath(file).catch(() => null)]);
    if (root === null) {
      return permissionDenied("WORKER_MODULE_OUTSIDE_ROOT", `--worker-module-root ${policy.moduleRoot} does not exist on the management host, so no module may be deployed`);
    }
    if (module !== null && !isUnder(module, root)) {
      return permissionDenied("WORKER_MODULE_OUTSIDE_ROOT", `model module ${file} is not under --worker-module-root ${policy.moduleRoot} (symlinks resolved)`);
    }
  }
  return null;
}

/** Throws {@link workerPolicyRefusal}'s error, if any. */
export async function checkWorkerPolicy(w: WorkerSpecRecord, policy: WorkerPolicy): Promise<void> {
  const refusal = await workerPolicyRefusal(w, policy);
  if (refusal !== null) throw refusal;
}

function isUnder(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel !== "" && !isAbsolute(rel) && rel.split(sep)[0] !== "..";
}
