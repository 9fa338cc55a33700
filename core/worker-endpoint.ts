/**
 * The gateway's worker RPC endpoints as flags and env variables give them,
 * in ZeroMQ's address forms: `tcp://HOST:PORT`, or `ipc:///absolute/path`,
 * a Unix domain socket for a worker on the gateway's own host
 * (clipper-gateway --rpc-ipc-dir). The one home of both rules: the gateway
 * checks the socket path it binds by the rule workers parse it with.
 */
import { decoded, undecodable, type Decoded } from "./decoded.js";

/** A connectable TCP endpoint. */
export interface TcpEndpoint {
  /** Name, IPv4 address, or IPv6 address without its brackets. */
  readonly host: string;
  /** 1-65535. */
  readonly port: number;
}

/** Where a worker connects: a TCP endpoint, or a Unix domain socket on this host. */
export type WorkerEndpoint = ({ readonly kind: "tcp" } & TcpEndpoint) | { readonly kind: "ipc"; readonly path: string };

/**
 * Longest Unix domain socket path, in bytes: sockaddr_un's sun_path holds
 * 108 on Linux, the last a NUL. libzmq refuses a longer one only when it
 * binds or connects, with a bare ENAMETOOLONG.
 */
export const IPC_PATH_MAX_BYTES = 107;

// A bracketed IPv6 address, or a name / IPv4 address. '_' is allowed in
// names because container runtimes resolve service names that hold it.
const TCP_ENDPOINT = /^tcp:\/\/(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9_][A-Za-z0-9_.-]*)):(\d{1,5})$/;
const IPC_SCHEME = "ipc://";
// Lists are comma-separated and the gateway's endpoints line space-separated,
// so neither may occur in a path; control characters have no business there.
const IPC_FORBIDDEN = /[\u0000-\u0020\u007f,]/;

/** Parses `tcp://HOST:PORT` (IPv6 hosts in brackets, e.g. `tcp://[::1]:7000`); never throws. */
export function parseTcpEndpoint(text: string): Decoded<TcpEndpoint> {
  const m = TCP_ENDPOINT.exec(text);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || port < 1 || port > 65535) {
    return undecodable(`'${text}' is not tcp://HOST:PORT with a port from 1 to 65535, e.g. tcp://127.0.0.1:7000`);
  }
  return decoded({ host: m[1] ?? m[2]!, port });
}

/** Why `path` cannot be a worker socket's path (absolute, no whitespace, ',' or control characters, at most {@link IPC_PATH_MAX_BYTES} bytes), or null. */
export function ipcPathProblem(path: string): string | null {
  if (!path.startsWith("/")) return `the socket path '${path}' is not absolute`;
  if (IPC_FORBIDDEN.test(path)) return `the socket path '${path.replace(/[\u0000-\u001f\u007f]/g, "?")}' holds whitespace, a ',' or a control character`;
  const bytes = Buffer.byteLength(path, "utf8");
  if (bytes > IPC_PATH_MAX_BYTES) {
    return `the socket path ${path} is ${bytes} bytes long; a Unix domain socket's path holds at most ${IPC_PATH_MAX_BYTES} (use a shorter directory)`;
  }
  return null;
}

/** Parses `tcp://HOST:PORT` or `ipc:///absolute/path`; never throws. */
export function parseWorkerEndpoint(text: string): Decoded<WorkerEndpoint> {
  if (text.startsWith(IPC_SCHEME)) {
    const problem = ipcPathProblem(text.slice(IPC_SCHEME.length));
    return problem === null ? decoded({ kind: "ipc", path: text.slice(IPC_SCHEME.length) }) : undecodable(`'${text}': ${problem}`);
  }
  const tcp = parseTcpEndpoint(text);
  if (tcp.ok) return decoded({ kind: "tcp", ...tcp.value });
  return undecodable(`'${text}' is not tcp://HOST:PORT with a port from 1 to 65535 (e.g. tcp://127.0.0.1:7000) nor ipc:///absolute/path (e.g. ipc:///run/clipper/rpc-0.sock)`);
}

/**
 * The endpoints of a comma-separated list of `tcp://HOST:PORT` and
 * `ipc:///path` (duplicates dropped); the error names the bad item.
 */
export function parseWorkerEndpointList(text: string): Decoded<WorkerEndpoint[]> {
  const parts = text.split(",").map((p) => p.trim()).filter((p) => p !== "");
  if (parts.length === 0) return undecodable("no endpoint given (tcp://HOST:PORT or ipc:///PATH, comma-separated for several)");
  const out: WorkerEndpoint[] = [];
  for (const p of parts) {
    const e = parseWorkerEndpoint(p);
    if (!e.ok) return e;
    if (!out.some((x) => formatWorkerEndpoint(x) === formatWorkerEndpoint(e.value))) out.push(e.value);
  }
  return decoded(out);
}

/** The ZeroMQ address of an endpoint (IPv6 hosts in brackets). */
export function formatWorkerEndpoint(e: WorkerEndpoint): string {
  if (e.kind === "ipc") return ipcAddress(e.path);
  return e.host.includes(":") ? `tcp://[${e.host}]:${e.port}` : `tcp://${e.host}:${e.port}`;
}

/** The ZeroMQ address of a socket path. */
export function ipcAddress(path: string): string {
  return `${IPC_SCHEME}${path}`;
}
