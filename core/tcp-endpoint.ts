/**
 * `tcp://HOST:PORT`, the ZeroMQ address form of the gateway's worker RPC
 * endpoint, as flags and env variables give it.
 */
import { decoded, undecodable, type Decoded } from "./decoded.js";

/** A connectable TCP endpoint. */
export interface TcpEndpoint {
  /** Name, IPv4 address, or IPv6 address without its brackets. */
  readonly host: string;
  /** 1-65535. */
  readonly port: number;
}

// A bracketed IPv6 address, or a name / IPv4 address. '_' is allowed in
// names because container runtimes resolve service names that hold it.
const TCP_ENDPOINT = /^tcp:\/\/(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9_][A-Za-z0-9_.-]*)):(\d{1,5})$/;

/** Parses `tcp://HOST:PORT` (IPv6 hosts in brackets, e.g. `tcp://[::1]:7000`); never throws. */
export function parseTcpEndpoint(text: string): Decoded<TcpEndpoint> {
  const m = TCP_ENDPOINT.exec(text);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || port < 1 || port > 65535) {
    return undecodable(`'${text}' is not tcp://HOST:PORT with a port from 1 to 65535, e.g. tcp://127.0.0.1:7000`);
  }
  return decoded({ host: m[1] ?? m[2]!, port });
}

/**
 * The endpoints of a comma-separated `tcp://HOST:PORT` list (duplicates
 * dropped); the error names the bad item.
 */
export function parseTcpEndpointList(text: string): Decoded<TcpEndpoint[]> {
  const parts = text.split(",").map((p) => p.trim()).filter((p) => p !== "");
  if (parts.length === 0) return undecodable("no endpoint given (tcp://HOST:PORT, comma-separated for several)");
  const out: TcpEndpoint[] = [];
  for (const p of parts) {
    const e = parseTcpEndpoint(p);
    if (!e.ok) return e;
    if (!out.some((x) => x.host === e.value.host && x.port === e.value.port)) out.push(e.value);
  }
  return decoded(out);
}
