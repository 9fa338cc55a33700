import type { Logger } from "../telemetry/logger.js";
import { Authorizer } from "./authorizer.js";
import { parseScopes } from "./scopes.js";
import { readTokenFile } from "./token-file.js";

/** A server's auth, built from its --auth-tokens and --auth-anonymous flags. */
export interface ServerAuth {
  /** Null when --auth-tokens is not given: every call is admitted, as without auth. */
  readonly authorizer: Authorizer | null;
  /** Re-reads the tokens file; on an error the tokens in force stay and the error is logged. */
  reload(log: Logger): Promise<void>;
}

/** Checks the flags and reads the tokens file; the error names the flag. */
export async function loadServerAuth(flags: { readonly "auth-tokens": string; readonly "auth-anonymous": string }): Promise<{ ok: true; value: ServerAuth } | { ok: false; error: string }> {
  const path = flags["auth-tokens"];
  const anonymous = parseScopes(flags["auth-anonymous"]);
  if (!anonymous.ok) return { ok: false, error: `--auth-anonymous: ${anonymous.error}` };
  if (path === "") {
    if (anonymous.value.size > 0) return { ok: false, error: "--auth-anonymous needs --auth-tokens: without a tokens file every call is admitted anyway" };
    return { ok: true, value: { authorizer: null, reload: async () => {} } };
  }
  const tokens = await readTokenFile(path);
  if (!tokens.ok) return { ok: false, error: `--auth-tokens: ${tokens.error}` };
  const authorizer = new Authorizer(tokens.value, anonymous.value);
  return {
    ok: true,
    value: {
      authorizer,
      async reload(log) {
        const next = await readTokenFile(path);
        if (!next.ok) {
          log.error({ error: next.error }, "tokens file not reloaded; the tokens in force stay");
          return;
        }
        authorizer.replaceTokens(next.value);
        log.info({ tokens: next.value.length }, "tokens file reloaded");
      },
    },
  };
}
