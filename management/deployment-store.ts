/**
 * The replica manager's persistent state in Redis DB 8 (core/deployment-layout.ts
 * spells the keys): the desired deployments, and the worker processes this
 * host runs, so that a restarted management picks up both.
 */
import type { Redis } from "ioredis";
import { DbBatch } from "../core/redis-batch.js";
import {
  decodeDeployment,
  DEPLOYMENT_DB,
  decodeWorkerProcess,
  DEPLOYMENT_KEYS_PATTERN,
  deploymentKey,
  encodeDeployment,
  encodeWorkerProcess,
  workerProcessesKey,
  type DeploymentRecord,
  type WorkerProcessRecord,
} from "../core/deployment-layout.js";

/** Reads and writes deployments and process records; every failure is a ServingError (UNAVAILABLE). */
export class DeploymentStore {
  readonly #redis: Redis;
  readonly #where: string;
  readonly #processesKey: string;

  /** `host` names this machine's process records (pids only mean something on their own host). */
  constructor(redis: Redis, where: string, host: string) {
    this.#redis = redis;
    this.#where = where;
    this.#processesKey = workerProcessesKey(host);
  }

  /**
   * Every stored deployment; malformed entries (written by another tool)
   * are skipped and reported, and out-of-range numbers are clamped and
   * reported (core/limits.ts).
   */
  async list(): Promise<{ deployments: DeploymentRecord[]; malformed: string[]; corrected: string[] }> {
    const [keys] = await this.#batch().keys(DEPLOYMENT_DB, DEPLOYMENT_KEYS_PATTERN).run();
    const sorted = (keys as string[]).sort();
    if (sorted.length === 0) return { deployments: [], malformed: [], corrected: [] };
    const batch = this.#batch();
    for (const k of sorted) batch.hgetall(DEPLOYMENT_DB, k);
    const replies = await batch.run();
    const deployments: DeploymentRecord[] = [];
    const malformed: string[] = [];
    const corrected: string[] = [];
    sorted.forEach((k, i) => {
      const hash = replies[i] as Record<string, string>;
      if (Object.keys(hash).length === 0) return;
      const d = decodeDeployment(k, hash);
      if (!d.ok) {
        malformed.push(d.error);
        return;
      }
      deployments.push(d.value);
      if (d.warning !== undefined) corrected.push(d.warning);
    });
    return { deployments, malformed, corrected };
  }

  async save(d: DeploymentRecord): Promise<void> {
    const key = deploymentKey(d.name, d.version);
    // DEL first: HSET alone would keep fields a newer layout dropped.
    await this.#batch().del(DEPLOYMENT_DB, key).hset(DEPLOYMENT_DB, key, encodeDeployment(d)).run();
  }

  async remove(name: string, version: string): Promise<void> {
    await this.#batch().del(DEPLOYMENT_DB, deploymentKey(name, version)).run();
  }

  /** The process records of this host. */
  async processes(): Promise<WorkerProcessRecord[]> {
    const [hash] = await this.#batch().hgetall(DEPLOYMENT_DB, this.#processesKey).run();
    const records: WorkerProcessRecord[] = [];
    for (const [pid, value] of Object.entries(hash as Record<string, string>)) {
      const r = decodeWorkerProcess(pid, value);
      if (r.ok) records.push(r.value);
    }
    return records;
  }

  async recordProcess(p: WorkerProcessRecord): Promise<void> {
    await this.#batch().hset(DEPLOYMENT_DB, this.#processesKey, { [String(p.pid)]: encodeWorkerProcess(p) }).run();
  }

  async forgetProcess(pid: number): Promise<void> {
    await this.#batch().hdel(DEPLOYMENT_DB, this.#processesKey, String(pid)).run();
  }

  #batch(): DbBatch {
    return new DbBatch(this.#redis, this.#where);
  }
}
