/**
 * clipper-ts's own Redis records: the replica manager's desired state, the
 * worker processes it runs, each registered model version's cache policy,
 * the gateways' replica id counters and liveness keys, and the fields
 * gateways add to Clipper's DB 3 hashes to say which gateway owns each
 * (docs/architecture.md, "DB 3 ownership"). They live outside Clipper's layout
 * (core/redis-layout.ts): in DB 8, which Clipper never selects (it declares
 * DBs 1-7; DB 4 is declared but unused, so a Clipper fork could still claim
 * it), under keys prefixed `clipper-ts:` so the DB can be shared. Clipper
 * reads none of them; the gateway follows the model policies and its
 * peers' liveness keys (besides Clipper's DBs 2, 5, 6 and 7). Deleting a
 * deployment only forgets what the manager runs; deleting a policy turns
 * cache and coalescing back on.
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
const REPLICA_IDS_PREFIX = `${CLIPPER_TS_PREFIX}replica-ids:`;
const GATEWAY_PREFIX = `${CLIPPER_TS_PREFIX}gateway:`;

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

/**
 * DB 8 counter of a model version's replica ids: `clipper-ts:replica-ids:<name>:<version>`.
 * INCR gives 1 for the first replica, which is replica id 0 (Clipper's ids start at 0).
 */
export const replicaIdCounterKey = (name: string, version: string): string => `${REPLICA_IDS_PREFIX}${modelKey(name, version)}`;
/** DB 8 liveness key of a gateway, `clipper-ts:gateway:<gateway id>`; its value is the gateway's run id, and it expires unless renewed. */
export const gatewayLivenessKey = (gatewayId: string): string => `${GATEWAY_PREFIX}${gatewayId}`;

/** Longest gateway id; ids are key parts and DB 3 field values. */
const MAX_GATEWAY_ID_LENGTH = 200;
/** Letters, digits and `. _ : @ -`: a host name and a port fit, and no glob metacharacter ever needs escaping. */
const GATEWAY_ID_CHARS = /^[A-Za-z0-9._:@-]+$/;

/** Why `id` cannot name a gateway, or null when it can. */
export function gatewayIdProblem(id: string): string | null {
  if (id.length === 0 || id.length > MAX_GATEWAY_ID_LENGTH || !GATEWAY_ID_CHARS.test(id)) {
    return `a gateway id is 1 to ${MAX_GATEWAY_ID_LENGTH} letters, digits or '._:@-', got '${id.slice(0, 80)}'`;
  }
  return null;
}

/** Letters, digits, '-' and '_' (a UUID fits), at most 64. */
const WORKER_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Why `id` cannot be a worker's instance id (RegisterWorker.worker_id), or null when it can; empty means none. */
export function workerIdProblem(id: string): string | null {
  return id === "" || WORKER_ID.test(id) ? null : `worker_id must be 1 to 64 letters, digits, '-' or '_', got '${id.slice(0, 80)}'`;
}

/**
 * Fields clipper-ts adds to Clipper's DB 3 hashes (Clipper reads only its
 * own seven fields of §1.3 by name, so extra fields are invisible to it).
 */
export const CONTAINER_OWNER_FIELDS = {
  /** The owning gateway's id: the same across its restarts on one host and port. */
  gateway: "clipper_ts_gateway",
  /** The owning gateway process's run id: new at every start. */
  run: "clipper_ts_gateway_run",
  /** The worker process's own instance id (native workers; absent for Clipper containers). */
  worker: "clipper_ts_worker",
} as const;

/** Who wrote a DB 3 entry. */
export interface ContainerOwner {
  gatewayId: string;
  run: string;
  /** The worker's instance id, or null when it sent none (Clipper containers, older workers). */
  workerId: string | null;
}

/** The owner fields of a DB 3 hash. */
export function encodeContainerOwner(o: ContainerOwner): Record<string, string> {
  return {
    [CONTAINER_OWNER_FIELDS.gateway]: o.gatewayId,
    [CONTAINER_OWNER_FIELDS.run]: o.run,
    ...(o.workerId === null ? {} : { [CONTAINER_OWNER_FIELDS.worker]: o.workerId }),
  };
}

/**
 * The owner of a DB 3 entry, from its owner fields in CONTAINER_OWNER_FIELDS
 * order (HMGET's reply), or null for an entry with no gateway field: one
 * written by Clipper or by a gateway that predates ownership.
 */
export function decodeContainerOwner(fields: readonly (string | null | undefined)[]): ContainerOwner | null {
  const [gatewayId, run, workerId] = fields;
  if (gatewayId === null || gatewayId === undefined || gatewayId === "") return null;
  return { gatewayId, run: run ?? "", workerId: workerId === null || workerId === undefined || workerId === "" ? null : workerId };
}

/**
 * The one rule for DB 3 entries: an entry counts (toward App.ready, replica
 * counts, the rollout gate) unless it has an owner whose liveness key does
 * not hold the run that wrote it: the gateway stopped renewing (killed,
 * hung, cut off), or restarted since (a new run). `liveRun` is the value of
 * the owner's liveness key, null when the key is absent. Entries without
 * an owner count as they always did.
 */
export function containerEntryIsLive(owner: ContainerOwner | null, liveRun: string | null): boolean {
  return owner === null || owner.run === liveRun;
}

/**
 * What a DB 3 entry counts as when replicas are counted: its worker (one
 * worker holds one entry per gateway it is connected to), or the entry
 * itself when the worker sent no instance id.
 */
export function containerWorker(key: string, owner: ContainerOwner | null): string {
  return owner?.workerId === null || owner === null ? `entry:${key}` : `worker:${owner.workerId}`;
}

/** How the replica manager starts a worker process (admin.proto WorkerSpec). */
export interface WorkerSpecRecord {
  module: string;
  command: string[];
  /** A Python model (core/python-worker.ts); "" for none, and in records written before it existed. */
  python: string;
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
        python: typeof w.python === "string" ? w.python : "",
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
