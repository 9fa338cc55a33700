/**
 * clipper-ts's own Redis records: the replica manager's desired state, the
 * worker processes it runs, and each registered model version's cache
 * policy. They live outside Clipper's layout
 * (core/redis-layout.ts): in DB 8, which Clipper never selects (it declares
 * DBs 1-7; DB 4 is declared but unused, so a Clipper fork could still claim
 * it), under keys prefixed `clipper-ts:` so the DB can be shared. Neither
 * Clipper reads them; the gateway follows only the model policies (besides
 * Clipper's DBs 2, 5, 6 and 7). Deleting a deployment only forgets what
 * the manager runs; deleting a policy turns cache and coalescing back on.
 */
import { decoded, undecodable, type Decoded } from "./decoded.js";
import { parseInputType, type InputType } from "./input-types.js";
import { boundsMessage, clampStored, REPLICAS, WORKER_CONCURRENCY, WORKER_MAX_BATCH_SIZE } from "./limits.js";
import { modelKey } from "./redis-layout.js";

/** The logical database of these records. */
export const DEPLOYMENT_DB = 8;

const CLIPPER_TS_PREFIX = "clipper-ts:";
const DEPLOYMENT_PREFIX = `${CLIPPER_TS_PREFIX}deployment:`;
const WORKER_PROCESSES_PREFIX = `${CLIPPER_TS_PREFIX}worker-processes:`;
const MODEL_POLICY_PREFIX = `${CLIPPER_TS_PREFIX}model-policy:`;

/** DB 8 hash of one managed model version: `clipper-ts:deployment:<name>:<version>`. */
export const deploymentKey = (name: string, version: string): string => `${DEPLOYMENT_PREFIX}${modelKey(name, version)}`;
/** DB 8 pattern matching every deployment key. */
export const DEPLOYMENT_KEYS_PATTERN = `${DEPLOYMENT_PREFIX}*`;
/** DB 8 hash `pid → process record` of the workers one host's manager runs. */
export const workerProcessesKey = (host: string): string => `${WORKER_PROCESSES_PREFIX}${host}`;

/** DB 8 hash of one registered model version's policy: `clipper-ts:model-policy:<name>:<version>`. */
export const modelPolicyKey = (name: string, version: string): string => `${MODEL_POLICY_PREFIX}${modelKey(name, version)}`;
/** DB 8 pattern matching every model policy key. */
export const MODEL_POLICY_KEYS_PATTERN = `${MODEL_POLICY_PREFIX}*`;

/** PSUBSCRIBE pattern for changes to model policies (and no other DB 8 key). */
export const MODEL_POLICY_KEYSPACE_PATTERN = `__keyspace@${DEPLOYMENT_DB}__:${MODEL_POLICY_KEYS_PATTERN}`;

/** The DB 2 model key (`<name>:<version>`) a policy key is about, or null for other DB 8 keys. */
export function policyModelKey(key: string): string | null {
  return key.startsWith(MODEL_POLICY_PREFIX) ? key.slice(MODEL_POLICY_PREFIX.length) : null;
}

/**
 * How the gateway treats one model version's queries. Both on by default,
 * as in Clipper; a stochastic model (sampling) turns them off, since two
 * callers asking the same must get two draws.
 */
export interface ModelPolicy {
  /** Answers are stored and served again to identical queries (the gateway's --cache-bytes still applies). */
  readonly cache: boolean;
  /** Identical queries in flight at once share one model call. */
  readonly coalesce: boolean;
}

export const DEFAULT_MODEL_POLICY: ModelPolicy = { cache: true, coalesce: true };

const ON = "on";
const OFF = "off";

/** The fields of a policy hash. */
export function encodeModelPolicy(p: ModelPolicy): Record<string, string> {
  return { cache: p.cache ? ON : OFF, coalesce: p.coalesce ? ON : OFF };
}

/**
 * Reads a policy hash; an absent field is "on" (the default). A value that
 * is neither "on" nor "off" is read as "on", with a warning: a policy must
 * be turned off on purpose.
 */
export function decodeModelPolicy(key: string, h: Record<string, string>): Decoded<ModelPolicy> {
  const bad: string[] = [];
  const flag = (field: keyof ModelPolicy): boolean => {
    const v = h[field];
    if (v === undefined || v === ON) return true;
    if (v === OFF) return false;
    bad.push(`${field} '${v}'`);
    return true;
  };
  const value = { cache: flag("cache"), coalesce: flag("coalesce") };
  return bad.length === 0 ? decoded(value) : { ...decoded(value), warning: `model policy '${key}' has ${bad.join(", ")} (on or off); using on` };
}

/** How the replica manager starts a worker process (admin.proto WorkerSpec). */
export interface WorkerSpecRecord {
  module: string;
  command: string[];
  env: Record<string, string>;
  workingDir: string;
  concurrency: number;
  maxBatchSize: number;
}

/** A managed model version: what runs and how many. */
export interface DeploymentRecord {
  name: string;
  version: string;
  inputType: InputType;
  replicas: number;
  worker: WorkerSpecRecord;
}

/** The fields of a deployment hash. */
export function encodeDeployment(d: DeploymentRecord): Record<string, string> {
  return {
    model_name: d.name,
    model_version: d.version,
    input_type: d.inputType,
    replicas: String(d.replicas),
    worker: JSON.stringify(d.worker),
  };
}

/** Checks and reads a deployment hash written by any version of clipper-ts (or by hand). */
export function decodeDeployment(key: string, h: Record<string, string>): Decoded<DeploymentRecord> {
  const inputType = parseInputType(h.input_type ?? "");
  const replicas = h.replicas === undefined || h.replicas === "" ? null : clampStored(Number(h.replicas), REPLICAS);
  if (h.model_name === undefined || h.model_version === undefined) return undecodable(`deployment '${key}' has no model name or version`);
  if (inputType === null) return undecodable(`deployment '${key}' has invalid input_type '${h.input_type ?? ""}'`);
  if (replicas === null) return undecodable(`deployment '${key}' has invalid replicas '${h.replicas ?? ""}' (${boundsMessage(REPLICAS, h.replicas ?? "nothing")})`);
  let w: Partial<WorkerSpecRecord>;
  try {
    w = JSON.parse(h.worker ?? "") as Partial<WorkerSpecRecord>;
  } catch {
    return undecodable(`deployment '${key}' has a worker field that is not JSON`);
  }
  const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");
  if (typeof w !== "object" || w === null || typeof w.module !== "string" || !strings(w.command)) {
    return undecodable(`deployment '${key}' has a malformed worker field`);
  }
  const env = typeof w.env === "object" && w.env !== null ? Object.fromEntries(Object.entries(w.env).filter(([, v]) => typeof v === "string")) : {};
  // A worker setting that is no whole number in range falls back to the worker's default (0).
  const concurrency = typeof w.concurrency === "number" ? clampStored(w.concurrency, WORKER_CONCURRENCY) : null;
  const maxBatchSize = typeof w.maxBatchSize === "number" ? clampStored(w.maxBatchSize, WORKER_MAX_BATCH_SIZE) : null;
  const warnings = [replicas.warning, concurrency?.warning ?? null, maxBatchSize?.warning ?? null].filter((x) => x !== null);
  return {
    ok: true,
    value: {
      name: h.model_name,
      version: h.model_version,
      inputType,
      replicas: replicas.value,
      worker: {
        module: w.module,
        command: w.command,
        env,
        workingDir: typeof w.workingDir === "string" ? w.workingDir : "",
        concurrency: concurrency?.value ?? 0,
        maxBatchSize: maxBatchSize?.value ?? 0,
      },
    },
    ...(warnings.length === 0 ? {} : { warning: `deployment '${key}': ${warnings.join("; ")}` }),
  };
}

/** One worker process a manager started, kept so a restarted manager can adopt it. */
export interface WorkerProcessRecord {
  pid: number;
  name: string;
  version: string;
  /** Start time of the process (Linux /proc/<pid>/stat field 22), so a reused pid is not mistaken for it. */
  startTime: string;
}

/** The value of a process record (its pid is the hash field). */
export function encodeWorkerProcess(p: WorkerProcessRecord): string {
  return JSON.stringify({ name: p.name, version: p.version, startTime: p.startTime });
}

/** Checks and reads one process record. */
export function decodeWorkerProcess(pidField: string, value: string): Decoded<WorkerProcessRecord> {
  const pid = Number(pidField);
  try {
    const v = JSON.parse(value) as Partial<WorkerProcessRecord>;
    if (Number.isSafeInteger(pid) && pid > 0 && typeof v.name === "string" && typeof v.version === "string" && typeof v.startTime === "string") {
      return decoded({ pid, name: v.name, version: v.version, startTime: v.startTime });
    }
  } catch {
    // fall through to the error below
  }
  return undecodable(`worker process record '${pidField}' is malformed`);
}
