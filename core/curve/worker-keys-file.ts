/**
 * The gateway's allow-list of worker keys (`--worker-keys`): one line per
 * worker key, `<Z85 public key> [model[,model…]]`. A key without models
 * may register for any model; a key with models only for those. A comment
 * is a line starting with `#`, or ` #` and what follows it. This file is the fleet's contract too: every gateway of a
 * fleet mounts the same one (docs/security.md).
 */
import { readFile } from "node:fs/promises";
import type { Decoded } from "../decoded.js";
import { modelNameProblem } from "../names.js";
import { rawKey } from "./curve-keys.js";

/** One allowed worker key. */
export interface WorkerKeyEntry {
  /** The Z85 public key, as written. */
  readonly publicKey: string;
  /** Models it may serve; null for any. */
  readonly models: ReadonlySet<string> | null;
}

/** The allow-list, by the key's raw bytes in hex. */
export type WorkerKeyList = ReadonlyMap<string, WorkerKeyEntry>;

/** Parses the file's text; errors name the line. */
export function parseWorkerKeys(text: string, name: string): Decoded<WorkerKeyList> {
  const keys = new Map<string, WorkerKeyEntry>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const where = `${name}:${i + 1}`;
    // Z85 uses '#', so a comment is a line that starts with it or text after a blank and '#'
    // (no key starts with '#': the first character of a Z85 group is at most '%').
    const line = lines[i]!.trim().startsWith("#") ? "" : lines[i]!.replace(/\s#.*$/, "").trim();
    if (line === "") continue;
    const fields = line.split(/\s+/);
    if (fields.length > 2) return { ok: false, error: `${where}: expected '<Z85 public key> [model[,model...]]'` };
    const raw = rawKey(fields[0]!);
    if (raw === null) return { ok: false, error: `${where}: '${fields[0]}' is not a 40-character Z85 public key` };
    let models: Set<string> | null = null;
    if (fields[1] !== undefined) {
      models = new Set(fields[1].split(","));
      for (const m of models) {
        const problem = modelNameProblem("model name", m);
        if (problem !== null) return { ok: false, error: `${where}: ${problem}` };
      }
    }
    const hex = raw.toString("hex");
    if (keys.has(hex)) return { ok: false, error: `${where}: key ${fields[0]} is listed twice` };
    keys.set(hex, { publicKey: fields[0]!, models });
  }
  return { ok: true, value: keys };
}

/** Reads and parses an allow-list file. */
export async function readWorkerKeys(path: string): Promise<Decoded<WorkerKeyList>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    return { ok: false, error: `cannot read ${path}: ${(err as Error).message}` };
  }
  return parseWorkerKeys(text, path);
}

/** Whether the entry lets its key register for `model`. */
export function keyAllows(entry: WorkerKeyEntry | undefined, model: string): boolean {
  return entry !== undefined && (entry.models === null || entry.models.has(model));
}
