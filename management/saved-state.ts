/**
 * What a restarted replica manager takes over from Redis DB 8: the
 * deployments it was running, and those of its recorded worker processes
 * that still live and still belong to one of them.
 */
import type { DeploymentRecord } from "../core/deployment-layout.js";
import type { ServingError } from "../core/errors.js";
import type { Logger } from "../core/telemetry/logger.js";
import type { DeploymentStore } from "./deployment-store.js";
import { WorkerProcess } from "./worker-process.js";

/** The deployments to supervise and the live workers found for them. */
export interface SavedState {
  readonly deployments: readonly DeploymentRecord[];
  readonly workers: readonly WorkerProcess[];
}

/**
 * Loads the saved state. Records of dead processes are dropped; live
 * processes of a deployment that no longer exists are stopped (with
 * `stop`) and dropped. Malformed deployments are logged and skipped.
 * Deployments `refuse` objects to (worker-policy.ts: a command deployment
 * under a management without --allow-worker-commands, say) are logged as
 * errors and not taken over: their live processes are stopped like those
 * of a deleted deployment, but their records stay in Redis, so a
 * management started with the permission runs them again.
 * Rejects while Redis is unreachable.
 */
export async function loadSavedState(
  state: DeploymentStore,
  log: Logger,
  stop: (p: WorkerProcess) => Promise<void>,
  refuse: (d: DeploymentRecord) => Promise<ServingError | null>,
): Promise<SavedState> {
  const [{ deployments: all, malformed, corrected }, records] = await Promise.all([state.list(), state.processes()]);
  for (const error of malformed) log.warn({ error }, "skipping malformed deployment in Redis");
  for (const warning of corrected) log.warn({ warning }, "deployment in Redis out of range; clamped");
  const deployments: DeploymentRecord[] = [];
  for (const d of all) {
    const refusal = await refuse(d);
    if (refusal === null) deployments.push(d);
    else log.error({ model: d.name, version: d.version, reason: refusal.reason, error: refusal.message }, "saved deployment not started: this management does not allow it");
  }
  const workers: WorkerProcess[] = [];
  for (const r of records) {
    const p = WorkerProcess.adopt(r, log);
    if (p === null) {
      await state.forgetProcess(r.pid).catch(() => {});
    } else if (!deployments.some((d) => d.name === r.name && d.version === r.version)) {
      void stop(p).then(() => state.forgetProcess(p.pid).catch(() => {}));
    } else {
      workers.push(p);
    }
  }
  return { deployments, workers };
}
