/**
 * The "ports line" each bin prints on stdout once it listens, e.g.
 * `clipper-gateway: grpc=127.0.0.1:50051 http=127.0.0.1:1337 rpc=tcp://127.0.0.1:7000`.
 * Scripts, docs, tests, the bench and `clipper up` read the ports from it,
 * so its text is a contract; this module is the only one that writes or
 * reads it. It imports nothing, which is what lets clients/ import it
 * (test/architecture.test.ts).
 */

/** An address as a ports line shows it: the host as given (IPv6 unbracketed) and the bound port. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** One address in a line: `<before><host>:<port><after>`. */
interface Field<K extends string> {
  readonly key: K;
  readonly before: string;
  readonly after: string;
}

/** One process's ports line: how to write it and how to find and read it in that process's output. */
export interface PortsLine<K extends string> {
  /** The line, without its newline. */
  format(ports: Readonly<Record<K, HostPort>>): string;
  /**
   * Matches a whole line (its newline included, so a line still being
   * written is not taken for a shorter port); read the match with {@link read}.
   */
  readonly pattern: RegExp;
  /** The addresses in a match of {@link pattern}. */
  read(match: RegExpExecArray): Record<K, HostPort>;
  /** The addresses of the first complete line in `output`, or null. */
  parse(output: string): Record<K, HostPort> | null;
}

/** `clipper-gateway: grpc=HOST:PORT http=HOST:PORT rpc=tcp://HOST:PORT` */
export const GATEWAY_PORTS_LINE = portsLine("clipper-gateway", [
  { key: "grpc", before: "grpc=", after: "" },
  { key: "http", before: "http=", after: "" },
  { key: "rpc", before: "rpc=tcp://", after: "" },
]);

/** `clipper-gateway: clipper-v3=tcp://HOST:PORT`, printed after the first when --clipper-v3-port is open. */
export const GATEWAY_CLIPPER_V3_LINE = portsLine("clipper-gateway", [{ key: "rpc", before: "clipper-v3=tcp://", after: "" }]);

/** `clipper-management: grpc=HOST:PORT http=HOST:PORT` */
export const MANAGEMENT_PORTS_LINE = portsLine("clipper-management", [
  { key: "grpc", before: "grpc=", after: "" },
  { key: "http", before: "http=", after: "" },
]);

/** `clipper-worker: metrics=http://HOST:PORT/metrics` */
export const WORKER_PORTS_LINE = portsLine("clipper-worker", [{ key: "metrics", before: "metrics=http://", after: "/metrics" }]);

function portsLine<K extends string>(process: string, fields: readonly Field<K>[]): PortsLine<K> {
  // A host is everything up to the last ':' before the port (":::50051" is host "::"),
  // which the greedy \S+ gives by backtracking.
  const body = fields.map((f) => `${escape(f.before)}(\\S+):(\\d+)${escape(f.after)}`).join(" ");
  const pattern = new RegExp(`(?:^|\\n)${escape(process)}: ${body}(?=\\r?\\n)`);
  const read = (match: RegExpExecArray): Record<K, HostPort> => {
    const out = {} as Record<K, HostPort>;
    fields.forEach((f, i) => {
      out[f.key] = { host: match[2 * i + 1]!, port: Number(match[2 * i + 2]) };
    });
    return out;
  };
  return {
    format: (ports) => `${process}: ${fields.map((f) => `${f.before}${ports[f.key].host}:${ports[f.key].port}${f.after}`).join(" ")}`,
    pattern,
    read,
    parse(output) {
      const match = pattern.exec(output);
      return match === null ? null : read(match);
    },
  };
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/**
 * `clipper-gateway: rpc-endpoints=tcp://HOST:PORT,tcp://HOST:PORT…`: every
 * worker endpoint of a gateway run as several processes (--processes), in
 * process order; the list clipper-worker --gateway and management's
 * --gateway-rpc take.
 */
export const GATEWAY_RPC_ENDPOINTS = { process: "clipper-gateway", key: "rpc-endpoints" } as const;

/**
 * `clipper-gateway: rpc-ipc-endpoints=ipc:///DIR/rpc-0.sock,…`: the worker
 * port's Unix domain sockets (--rpc-ipc-dir), one per process in process
 * order, printed after the other lines only when the flag is set; workers
 * on the gateway's host connect to them instead of tcp://.
 */
export const GATEWAY_RPC_IPC_ENDPOINTS = { process: "clipper-gateway", key: "rpc-ipc-endpoints" } as const;

/** Writes an endpoints line of TCP endpoints. */
export function formatEndpointsLine(line: { readonly process: string; readonly key: string }, endpoints: readonly HostPort[]): string {
  return formatAddressesLine(line, endpoints.map((e) => `tcp://${e.host.includes(":") ? `[${e.host}]` : e.host}:${e.port}`));
}

/** Writes an endpoints line of addresses as they are (ipc://…). */
export function formatAddressesLine(line: { readonly process: string; readonly key: string }, addresses: readonly string[]): string {
  return `${line.process}: ${line.key}=${addresses.join(",")}`;
}

/** The endpoint list of the first complete endpoints line in `output` (as text, tcp://… or ipc://… comma-separated), or null. */
export function parseEndpointsLine(line: { readonly process: string; readonly key: string }, output: string): string | null {
  const m = new RegExp(`(?:^|\\n)${escape(line.process)}: ${escape(line.key)}=(\\S+)(?=\\r?\\n)`).exec(output);
  return m === null ? null : m[1]!;
}
