/**
 * Clipper's Redis layout (clipper.md §1), the one module that spells Redis
 * DB numbers, keys, fields and values. Everything that reads or writes
 * Redis goes through these builders and decoders, so clipper-ts and Clipper
 * can share one Redis. clipper-ts's own records (DB 8) are spelled in
 * core/deployment-layout.ts.
 */
import { undecodable, type Decoded } from "./decoded.js";
import { parseInputType, type InputType } from "./input-types.js";
import { BATCH_SIZE, boundsMessage, clampStored, LATENCY_SLO_MICROS } from "./limits.js";

/** Logical databases, one per table (`RedisDBTable`). DB 4 is declared by Clipper but never used. */
export const DB = {
  STATE: 1,
  MODELS: 2,
  CONTAINERS: 3,
  APPS: 5,
  CURRENT_VERSIONS: 6,
  LINKS: 7,
} as const;
export type DbNumber = (typeof DB)[keyof typeof DB];

/** Joins list items and the parts of a container key (`ITEM_DELIMITER`). */
const ITEM_DELIMITER = ",";
/** Joins model name and version (`ITEM_PART_CONCATENATOR`). */
const ITEM_PART_CONCATENATOR = ":";

/** Characters Clipper forbids in model names, versions and labels; core/names.ts holds the check. */
export const PROHIBITED_CHARS: readonly string[] = [ITEM_DELIMITER, ITEM_PART_CONCATENATOR];

/** The only selection policy Clipper's management writes. */
const DEFAULT_POLICY = "DefaultOutputSelectionPolicy";
/** `batch_size` meaning "adaptive" (`DEFAULT_BATCH_SIZE`). */
export const ADAPTIVE_BATCH_SIZE = -1;
/** `container_name` of a model registered without a container image. */
export const NO_CONTAINER = "NO_CONTAINER";
/** `model_data_path` that clipper_admin always sends. */
export const DEPRECATED_DATA_PATH = "DEPRECATED";
/** `load` as Clipper writes it: `std::to_string(0.0)`. */
const MODEL_LOAD = "0.000000";
/** DB 1 keys use user id 0 and model hash 0 (`DEFAULT_USER_ID`). */
const STATE_KEY_SUFFIX = ":0:0";
const CURRENT_VERSION_PREFIX = "CURRENT_MODEL_VERSION:";

// ---------------------------------------------------------------- keys

/** DB 5 key of an application, and DB 7 key of its links. */
export const appKey = (app: string): string => app;
export const linksKey = (app: string): string => app;
/** DB 1 key of an application's selection state: `<app>:0:0`. */
export const stateKey = (app: string): string => `${app}${STATE_KEY_SUFFIX}`;
/** DB 2 key of a model version: `<name>:<version>`. */
export const modelKey = (name: string, version: string): string => `${name}${ITEM_PART_CONCATENATOR}${version}`;
/** DB 2 `KEYS` pattern matching every version of a model. */
export const modelVersionsPattern = (name: string): string => `${escapeGlob(name)}${ITEM_PART_CONCATENATOR}*`;
/** DB 6 key holding a model's current version. */
export const currentVersionKey = (name: string): string => `${CURRENT_VERSION_PREFIX}${name}`;
/** DB 3 key of a replica: `<name>,<version>,<replica_id>`. */
export const containerKey = (name: string, version: string, replicaId: number): string =>
  [name, version, String(replicaId)].join(ITEM_DELIMITER);
/**
 * DB 3 match pattern (SCAN) for the replicas of one model and version; an
 * empty part matches any.
 */
export const containerKeysPattern = (name: string, version: string): string =>
  [name === "" ? "*" : escapeGlob(name), version === "" ? "*" : escapeGlob(version), "*"].join(ITEM_DELIMITER);
/** `model_id` / the colon form `name:version` used in listings. */
export const modelId = modelKey;

/** Splits a DB 2 key into name and version (names cannot contain ':'). */
export function parseModelKey(key: string): { name: string; version: string } | null {
  const i = key.indexOf(ITEM_PART_CONCATENATOR);
  return i <= 0 || i === key.length - 1 ? null : { name: key.slice(0, i), version: key.slice(i + 1) };
}

/** Splits a DB 3 key into name, version and replica id. */
export function parseContainerKey(key: string): { name: string; version: string; replicaId: number } | null {
  const parts = key.split(ITEM_DELIMITER);
  if (parts.length !== 3 || !/^\d+$/.test(parts[2]!)) return null;
  return { name: parts[0]!, version: parts[1]!, replicaId: Number(parts[2]) };
}

/** The model name of a DB 6 key, or null for other keys. */
export function parseCurrentVersionKey(key: string): string | null {
  return key.startsWith(CURRENT_VERSION_PREFIX) ? key.slice(CURRENT_VERSION_PREFIX.length) : null;
}

/** Escapes Redis glob metacharacters so a name is matched literally by KEYS. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

// ---------------------------------------------------------------- values

/** DB 5 application hash. */
export interface AppRecord {
  name: string;
  inputType: InputType;
  policy: string;
  defaultOutput: string;
  latencySloMicros: number;
}

/** Fields of a DB 5 hash, in the order Clipper's HMSET writes them. */
export function encodeApp(app: Omit<AppRecord, "name" | "policy">): Record<string, string> {
  return {
    input_type: app.inputType,
    policy: DEFAULT_POLICY,
    default_output: app.defaultOutput,
    latency_slo_micros: String(app.latencySloMicros),
  };
}

export function decodeApp(name: string, h: Record<string, string>): Decoded<AppRecord> {
  const inputType = parseInputType(h.input_type ?? "");
  if (inputType === null) return undecodable(`app '${name}' has invalid input_type '${h.input_type ?? ""}'`);
  const slo = h.latency_slo_micros === undefined ? null : clampStored(Number(h.latency_slo_micros), LATENCY_SLO_MICROS);
  if (slo === null) {
    return undecodable(`app '${name}' has invalid latency_slo_micros '${h.latency_slo_micros ?? ""}' (${boundsMessage(LATENCY_SLO_MICROS, h.latency_slo_micros ?? "nothing")})`);
  }
  return {
    ok: true,
    value: { name, inputType, policy: h.policy ?? DEFAULT_POLICY, defaultOutput: h.default_output ?? "", latencySloMicros: slo.value },
    ...(slo.warning === null ? {} : { warning: `app '${name}': ${slo.warning}` }),
  };
}

/** DB 2 model-version hash. */
export interface ModelRecord {
  name: string;
  version: string;
  inputType: InputType;
  labels: string[];
  containerName: string;
  modelDataPath: string;
  batchSize: number;
  /** False once `valid` was HDEL'd (version marked for deletion). */
  valid: boolean;
}

/** The nine fields of a DB 2 hash, in the order of Clipper's `add_model`. */
export function encodeModel(m: Omit<ModelRecord, "valid">): Record<string, string> {
  return {
    model_name: m.name,
    model_version: m.version,
    load: MODEL_LOAD,
    input_type: m.inputType,
    labels: m.labels.join(ITEM_DELIMITER),
    container_name: m.containerName,
    model_data_path: m.modelDataPath,
    batch_size: String(m.batchSize),
    valid: "",
  };
}

/** Field whose absence marks a model version invalid. */
export const MODEL_VALID_FIELD = "valid";

export function decodeModel(key: string, h: Record<string, string>): Decoded<ModelRecord> {
  const parsed = parseModelKey(key);
  const name = h.model_name ?? parsed?.name;
  const version = h.model_version ?? parsed?.version;
  if (name === undefined || version === undefined) return undecodable(`model key '${key}' has no name or version`);
  const inputType = parseInputType(h.input_type ?? "");
  if (inputType === null) return undecodable(`model '${key}' has invalid input_type '${h.input_type ?? ""}'`);
  // Clipper treats a missing batch_size as adaptive.
  const stored = h.batch_size === undefined ? ADAPTIVE_BATCH_SIZE : Number(h.batch_size);
  const batch = stored === ADAPTIVE_BATCH_SIZE ? { value: stored, warning: null } : clampStored(stored, BATCH_SIZE);
  if (batch === null) {
    return undecodable(`model '${key}' has invalid batch_size '${h.batch_size ?? ""}' (${boundsMessage(BATCH_SIZE, h.batch_size)}, or -1 for adaptive)`);
  }
  const batchSize = batch.value;
  return {
    ...(batch.warning === null ? {} : { warning: `model '${key}': ${batch.warning}` }),
    ok: true,
    value: {
      name,
      version,
      inputType,
      // Clipper splits "" into [""]; we return no labels for an empty field.
      labels: h.labels === undefined || h.labels === "" ? [] : h.labels.split(ITEM_DELIMITER),
      containerName: h.container_name ?? NO_CONTAINER,
      modelDataPath: h.model_data_path ?? DEPRECATED_DATA_PATH,
      batchSize,
      valid: MODEL_VALID_FIELD in h,
    },
  };
}

/** DB 3 container (replica) hash. */
export interface ContainerRecord {
  name: string;
  version: string;
  replicaId: number;
  zmqConnectionId: number;
  inputType: InputType;
}

/** The seven fields of a DB 3 hash, as Clipper's RPC service writes them. */
export function encodeContainer(c: ContainerRecord): Record<string, string> {
  return {
    model_id: modelId(c.name, c.version),
    model_name: c.name,
    model_version: c.version,
    model_replica_id: String(c.replicaId),
    zmq_connection_id: String(c.zmqConnectionId),
    // Clipper always writes 1 here; the field is unused.
    batch_size: "1",
    input_type: c.inputType,
  };
}

export function decodeContainer(key: string, h: Record<string, string>): Decoded<ContainerRecord> {
  const parsed = parseContainerKey(key);
  if (parsed === null) return undecodable(`container key '${key}' is not name,version,replica_id`);
  const inputType = parseInputType(h.input_type ?? "");
  if (inputType === null) return undecodable(`container '${key}' has invalid input_type '${h.input_type ?? ""}'`);
  const conn = Number(h.zmq_connection_id ?? "0");
  return {
    ok: true,
    value: {
      name: h.model_name ?? parsed.name,
      version: h.model_version ?? parsed.version,
      replicaId: parsed.replicaId,
      zmqConnectionId: Number.isSafeInteger(conn) ? conn : 0,
      inputType,
    },
  };
}

/** DB 1 value for DefaultOutputSelectionPolicy: compact `{"y_hat":"<default>"}`. */
export function encodeSelectionState(defaultOutput: string): string {
  return JSON.stringify({ y_hat: defaultOutput });
}

export function decodeSelectionState(text: string): Decoded<{ defaultOutput: string }> {
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v === "object" && v !== null && typeof (v as { y_hat?: unknown }).y_hat === "string") {
      return { ok: true, value: { defaultOutput: (v as { y_hat: string }).y_hat } };
    }
  } catch {
    // fall through to the error below
  }
  return undecodable(`selection state '${text.slice(0, 80)}' is not {"y_hat": "<text>"}`);
}

// ---------------------------------------------------------------- change events

/** Keyspace-notification flags Clipper's query frontend sets: all events, on keyspace channels. */
export const NOTIFY_KEYSPACE_EVENTS = "AKE";

/** PSUBSCRIBE pattern for every key of one DB. */
export const keyspacePattern = (db: DbNumber): string => `__keyspace@${db}__:*`;

/** The DB and key a keyspace channel names, or null for other channels. */
export function parseKeyspaceChannel(channel: string): { db: number; key: string } | null {
  const m = /^__keyspace@(\d+)__:(.*)$/s.exec(channel);
  return m === null ? null : { db: Number(m[1]), key: m[2]! };
}
