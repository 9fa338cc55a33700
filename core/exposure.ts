/**
 * The rule that keeps a server from being exposed by accident: bound to an
 * address other than loopback, a server must have TLS and tokens (and the
 * gateway a CURVE worker port), or be started with --insecure, which it
 * then says loudly.
 */
import { isLoopbackHost } from "./loopback.js";

/** What protects a server. */
export interface Protection {
  readonly tls: boolean;
  readonly tokens: boolean;
  /** The gateway's worker port authenticates its peers (ZeroMQ CURVE); false for servers without one. */
  readonly workerPort: boolean | "none";
}

/** What is missing, in words an operator can act on; empty when nothing is. */
export function missingProtection(p: Protection): string[] {
  const missing: string[] = [];
  if (!p.tls) missing.push("TLS (--tls-cert, --tls-key)");
  if (!p.tokens) missing.push("tokens (--auth-tokens)");
  if (p.workerPort === false) missing.push("worker authentication (--curve-secret-key, --worker-keys: without CURVE anyone who reaches --rpc-port can register as a model, see its inputs and answer its callers)");
  return missing;
}

/**
 * Null when the server may start as configured; else the error to print
 * (exit 2). Loopback binds are always allowed.
 */
export function exposureError(host: string, p: Protection, insecure: boolean): string | null {
  if (isLoopbackHost(host) || insecure) return null;
  const missing = missingProtection(p);
  if (missing.length === 0) return null;
  return `--host ${host} is reachable from other machines, and this server would run without ${missing.join("; ")}. Add what is missing, bind to 127.0.0.1, or pass --insecure (env CLIPPER_INSECURE=1) to start anyway.`;
}

/** The warning an --insecure server logs at start and shows in /readyz; null when it is not exposed unprotected. */
export function insecureWarning(host: string, p: Protection, insecure: boolean): string | null {
  if (!insecure || isLoopbackHost(host)) return null;
  const missing = missingProtection(p);
  return missing.length === 0 ? null : `INSECURE: listening on ${host} without ${missing.join("; ")}`;
}

/**
 * Null when the gateway's plaintext port for Clipper containers may listen
 * on `host`; else the error to print (exit 2). Those containers cannot
 * authenticate, so the port stays on loopback unless --insecure says otherwise.
 */
export function clipperV3PortError(host: string, insecure: boolean): string | null {
  if (isLoopbackHost(host) || insecure) return null;
  return `--clipper-v3-host ${host} is reachable from other machines, and Clipper containers cannot authenticate: anyone who reaches --clipper-v3-port could register as a model (limit which with --clipper-v3-models). Bind it to 127.0.0.1, or pass --insecure (env CLIPPER_INSECURE=1) to start anyway.`;
}
