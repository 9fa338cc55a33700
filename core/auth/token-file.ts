/**
 * The tokens file of `--auth-tokens`: one token per line, `<scopes> <token>`,
 * scopes a comma-separated subset of predict, read, admin, deploy; `#`
 * starts a comment. A token written `sha256:<64 hex>` is its SHA-256 hash,
 * so the file need not hold the secret itself. Only hashes are kept in
 * memory either way.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { Decoded } from "../decoded.js";
import { parseScopes, type Scope } from "./scopes.js";

/** One accepted token: the SHA-256 of its text, and what it may do. */
export interface TokenEntry {
  readonly hash: Buffer;
  readonly scopes: ReadonlySet<Scope>;
  /** Where it was declared ("tokens.txt:3"), for logs: never the token itself. */
  readonly where: string;
}

/** Tokens shorter than this are refused: they could be guessed. */
const MIN_TOKEN_CHARS = 16;
const HASHED = /^sha256:([0-9a-fA-F]{64})$/;

/** SHA-256 of a token's text: how every token is compared and kept. */
export function tokenHash(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

/** Parses the file's text; errors name the line and never echo a token. */
export function parseTokenFile(text: string, name: string): Decoded<TokenEntry[]> {
  const entries: TokenEntry[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const where = `${name}:${i + 1}`;
    const line = lines[i]!.replace(/#.*$/, "").trim();
    if (line === "") continue;
    const fields = line.split(/\s+/);
    if (fields.length !== 2) return { ok: false, error: `${where}: expected '<scopes> <token>'` };
    const [scopeText, token] = fields as [string, string];
    const scopes = parseScopes(scopeText);
    if (!scopes.ok) return { ok: false, error: `${where}: ${scopes.error}` };
    if (scopes.value.size === 0) return { ok: false, error: `${where}: no scopes` };
    const hashed = HASHED.exec(token);
    if (hashed === null && token.startsWith("sha256:")) return { ok: false, error: `${where}: a hashed token is sha256: and 64 hex digits` };
    if (hashed === null && token.length < MIN_TOKEN_CHARS) return { ok: false, error: `${where}: token is shorter than ${MIN_TOKEN_CHARS} characters` };
    entries.push({ hash: hashed !== null ? Buffer.from(hashed[1]!, "hex") : tokenHash(token), scopes: scopes.value, where });
  }
  return { ok: true, value: entries };
}

/** Reads and parses a tokens file. */
export async function readTokenFile(path: string): Promise<Decoded<TokenEntry[]>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    return { ok: false, error: `cannot read ${path}: ${(err as Error).message}` };
  }
  return parseTokenFile(text, path);
}
