/**
 * How the workers the replica manager starts reach the gateway: the native
 * worker endpoints (clipper-worker's CLIPPER_GATEWAY, tcp:// or ipc://), the
 * endpoint Clipper's containers are given (CLIPPER_IP / CLIPPER_PORT: the
 * first tcp:// worker endpoint, or the gateway's --clipper-v3-port while the
 * worker port runs CURVE; they speak no ipc://), and the
 * CURVE keys native workers present. Keys travel as a file path and a
 * public key, never a secret on a command line or in the environment.
 */
import { readPublicKey, readSecretKeyFile } from "../core/curve/curve-keys.js";
import type { Decoded } from "../core/decoded.js";
import { parseTcpEndpoint, parseWorkerEndpointList, type TcpEndpoint, type WorkerEndpoint } from "../core/worker-endpoint.js";

export interface GatewayAccess {
  /** The gateways' worker RPC endpoints as given (tcp://host:port or ipc:///path, comma-separated: clipper-worker serves them all). */
  readonly rpc: string;
  /** Where Clipper containers connect (one gateway, as in Clipper); null when only ipc:// endpoints were given and no --gateway-clipper-v3. */
  readonly clipperV3: TcpEndpoint | null;
  /** CURVE for native workers; null when the worker port runs none. */
  readonly curve: { readonly secretKeyFile: string; readonly gatewayPublicKey: string } | null;
}

/** The management flags that say how workers reach the gateway. */
export interface GatewayAccessFlags {
  readonly "gateway-rpc": string;
  readonly "gateway-clipper-v3": string;
  readonly "worker-curve-secret-key": string;
  readonly "gateway-public-key": string;
}

/** Checks the flags (the key files are read to be sure they are keys); errors name the flag. */
export async function loadGatewayAccess(flags: GatewayAccessFlags): Promise<Decoded<GatewayAccess>> {
  const rpc = parseWorkerEndpointList(flags["gateway-rpc"]);
  if (!rpc.ok) return { ok: false, error: `--gateway-rpc: ${rpc.error}` };
  let clipperV3 = firstTcp(rpc.value);
  if (flags["gateway-clipper-v3"] !== "") {
    const v3 = parseTcpEndpoint(flags["gateway-clipper-v3"]);
    if (!v3.ok) return { ok: false, error: `--gateway-clipper-v3: ${v3.error}` };
    clipperV3 = v3.value;
  }
  const secretFile = flags["worker-curve-secret-key"];
  const gatewayKey = flags["gateway-public-key"];
  if ((secretFile === "") !== (gatewayKey === "")) {
    return { ok: false, error: "--worker-curve-secret-key and --gateway-public-key go together: give both (the gateway's worker port runs CURVE) or neither" };
  }
  if (secretFile === "") return { ok: true, value: { rpc: flags["gateway-rpc"], clipperV3, curve: null } };
  const secret = await readSecretKeyFile(secretFile);
  if (!secret.ok) return { ok: false, error: `--worker-curve-secret-key: ${secret.error}` };
  const pub = await readPublicKey(gatewayKey);
  if (!pub.ok) return { ok: false, error: `--gateway-public-key: ${pub.error}` };
  return { ok: true, value: { rpc: flags["gateway-rpc"], clipperV3, curve: { secretKeyFile: secretFile, gatewayPublicKey: pub.value.publicKey } } };
}

/** An access from the worker endpoint alone (no CURVE, Clipper containers on the same port). */
export function plainGatewayAccess(rpc: string): Decoded<GatewayAccess> {
  const endpoints = parseWorkerEndpointList(rpc);
  if (!endpoints.ok) return { ok: false, error: endpoints.error };
  return { ok: true, value: { rpc, clipperV3: firstTcp(endpoints.value), curve: null } };
}

/** Clipper's containers take a host and a port: the first TCP endpoint, if any. */
function firstTcp(endpoints: readonly WorkerEndpoint[]): TcpEndpoint | null {
  const e = endpoints.find((x) => x.kind === "tcp");
  return e === undefined || e.kind !== "tcp" ? null : { host: e.host, port: e.port };
}
