/**
 * How the workers the replica manager starts reach the gateway: the native
 * worker endpoint (clipper-worker's CLIPPER_GATEWAY), the endpoint Clipper's
 * containers are given (CLIPPER_IP / CLIPPER_PORT: the worker port, or the
 * gateway's --clipper-v3-port while the worker port runs CURVE), and the
 * CURVE keys native workers present. Keys travel as a file path and a
 * public key, never a secret on a command line or in the environment.
 */
import { readPublicKey, readSecretKeyFile } from "../core/curve/curve-keys.js";
import type { Decoded } from "../core/decoded.js";
import { parseTcpEndpoint, parseTcpEndpointList, type TcpEndpoint } from "../core/tcp-endpoint.js";

export interface GatewayAccess {
  /** The gateways' worker RPC endpoints as given (tcp://host:port, comma-separated: clipper-worker serves them all). */
  readonly rpc: string;
  /** Where Clipper containers connect (one gateway, as in Clipper). */
  readonly clipperV3: TcpEndpoint;
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
  const rpc = parseTcpEndpointList(flags["gateway-rpc"]);
  if (!rpc.ok) return { ok: false, error: `--gateway-rpc: ${rpc.error}` };
  let clipperV3 = rpc.value[0]!;
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
  const endpoints = parseTcpEndpointList(rpc);
  if (!endpoints.ok) return { ok: false, error: endpoints.error };
  return { ok: true, value: { rpc, clipperV3: endpoints.value[0]!, curve: null } };
}
