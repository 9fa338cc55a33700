/**
 * The token `clipper up` makes for its stack, and where every command finds
 * one: `--token`, else CLIPPER_TOKEN, else `<data-dir>/token` (`--data-dir`
 * / CLIPPER_DATA_DIR, default .clipper), else none.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

/** The data directory when nothing names one. */
export const DEFAULT_DATA_DIR = ".clipper";

/** `<dataDir>/token`: the all-scope token, for people and the CLI (mode 0600). */
export function tokenPath(dataDir: string): string {
  return join(dataDir, "token");
}

/** `<dataDir>/tokens`: the servers' --auth-tokens file, holding only the token's hash (mode 0600). */
export function tokensFilePath(dataDir: string): string {
  return join(dataDir, "tokens");
}

/**
 * The stack's token: the one already in `<dataDir>/token` (so a restarted
 * stack keeps the token scripts use), else a new random one. Writes the
 * servers' tokens file beside it. Both files are readable by their owner
 * only.
 */
export function ensureStackToken(dataDir: string): { token: string; tokensFile: string } {
  const path = tokenPath(dataDir);
  let token = existsSync(path) ? readFileSync(path, "utf8").trim() : "";
  if (token.length < 16) {
    token = randomBytes(32).toString("base64url");
    writeFileSync(path, `${token}\n`, { mode: 0o600 });
  }
  const hash = createHash("sha256").update(token, "utf8").digest("hex");
  const tokensFile = tokensFilePath(dataDir);
  writeFileSync(tokensFile, `# written by clipper up: the all-scope token of ${path}\npredict,read,admin,deploy sha256:${hash}\n`, { mode: 0o600 });
  return { token, tokensFile };
}

/** The token a command sends, by the precedence above; undefined when there is none. */
export function resolveToken(flags: { token?: string | undefined; dataDir?: string | undefined }, env: NodeJS.ProcessEnv): string | undefined {
  if (flags.token !== undefined && flags.token !== "") return flags.token;
  const fromEnv = env.CLIPPER_TOKEN;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  const path = tokenPath(resolve(flags.dataDir ?? env.CLIPPER_DATA_DIR ?? DEFAULT_DATA_DIR));
  if (!existsSync(path)) return undefined;
  const saved = readFileSync(path, "utf8").trim();
  return saved === "" ? undefined : saved;
}
