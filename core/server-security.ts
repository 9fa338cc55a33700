/**
 * A server's security from its flags, in one step for the gateway and
 * management: tokens, TLS, and the exposure rule (core/exposure.ts). Every
 * problem is an error naming the flag.
 */
import { loadServerAuth, type ServerAuth } from "./auth/server-auth.js";
import type { Decoded } from "./decoded.js";
import { exposureError, insecureWarning, type Protection } from "./exposure.js";
import { ServerTls } from "./tls/server-tls.js";

/** The security flags every server shares (core/config.ts COMMON_OPTIONS). */
export interface SecurityFlags {
  readonly host: string;
  readonly insecure: boolean;
  readonly "auth-tokens": string;
  readonly "auth-anonymous": string;
  readonly "tls-cert": string;
  readonly "tls-key": string;
  readonly "tls-client-ca": string;
}

export interface ServerSecurity {
  readonly auth: ServerAuth;
  readonly tls: ServerTls | null;
  /** The --insecure warning to log and show in /readyz, or null. */
  readonly warning: string | null;
}

/** Loads tokens and certificates and applies the exposure rule; `workerPort` says whether the server has an authenticated worker port. */
export async function loadServerSecurity(flags: SecurityFlags, workerPort: Protection["workerPort"]): Promise<Decoded<ServerSecurity>> {
  const auth = await loadServerAuth(flags);
  if (!auth.ok) return auth;
  const tls = await ServerTls.fromFlags(flags);
  if (!tls.ok) return tls;
  const protection: Protection = { tls: tls.value !== null, tokens: auth.value.authorizer !== null, workerPort };
  const exposed = exposureError(flags.host, protection, flags.insecure);
  if (exposed !== null) return { ok: false, error: exposed };
  return { ok: true, value: { auth: auth.value, tls: tls.value, warning: insecureWarning(flags.host, protection, flags.insecure) } };
}
