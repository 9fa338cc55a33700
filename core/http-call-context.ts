import { status as Status } from "@grpc/grpc-js";
import type { Transport } from "./call-context.js";
import { NO_DEADLINE, parseGrpcTimeout, type Deadline } from "./deadline.js";
import { ServingError, invalidArgument } from "./errors.js";
import { lazyCallContext, type CallScope, type CallSource } from "./lazy-call-context.js";
import { responseAbandoned, type HttpRequest, type HttpResponse } from "./servers/http-exchange.js";

/** grpc-gateway's prefix for request headers that become gRPC metadata. */
const METADATA_HEADER_PREFIX = "grpc-metadata-";

/** Headers passed through as metadata under their own name (tracing and auth, as grpc-gateway passes Authorization). */
const PASS_THROUGH_HEADERS: ReadonlySet<string> = new Set(["traceparent", "tracestate", "authorization"]);

const HTTP_SOURCE: CallSource<HttpResponse, HttpRequest["headers"]> = {
  carrier: (res) => res.req.headers,
  lookup: headerValue,
  build: headerMetadata,
  event: "close",
  // A response closed before it finished means the client went away.
  gone: responseAbandoned,
  goneReason: () => new ServingError(Status.CANCELLED, "CANCELLED", "client closed the connection"),
};

/**
 * The CallContext of an HTTP call (transcoded, Clipper REST predict, or
 * Clipper /admin/*), from its headers:
 * `Grpc-Timeout` gives the deadline (absolute, ms since epoch);
 * `Grpc-Metadata-<k>` headers become metadata `<k>` (lower-case), with
 * `traceparent`, `tracestate` and `authorization` passed through under
 * their own names. The signal aborts with a ServingError when the client
 * closes the connection before the response is finished (CANCELLED) or the
 * deadline passes (DEADLINE_EXCEEDED). The signal, its timer and the
 * metadata map are made only when a handler reads them. `transport` names
 * the edge.
 *
 * A request with an invalid `Grpc-Timeout` gets no context: its body is
 * drained, the INVALID_ARGUMENT error is handed to `refuse` (each edge
 * answers errors in its own format), and this returns null. Otherwise the
 * caller must `dispose()` the scope once the call has ended.
 */
export function httpCallContext(
  req: HttpRequest,
  res: HttpResponse,
  transport: Transport,
  refuse: (res: HttpResponse, error: ServingError) => void,
): CallScope | null {
  let deadline: Deadline = NO_DEADLINE;
  const header = req.headers["grpc-timeout"];
  if (header !== undefined) {
    // Node joins a repeated unknown header into one string; an array is only a typing artefact.
    const timeout = Array.isArray(header) ? header.join(", ") : header;
    const parsed = parseGrpcTimeout(timeout);
    if (!parsed.ok) {
      req.resume();
      refuse(res, invalidArgument("INVALID_REQUEST", parsed.error));
      return null;
    }
    deadline = Date.now() + parsed.ms;
  }
  return lazyCallContext(HTTP_SOURCE, res, transport, deadline, req.socket.remoteAddress ?? "");
}

function headerMetadata(headers: HttpRequest["headers"]): ReadonlyMap<string, string> {
  const out = new Map<string, string>();
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const text = Array.isArray(value) ? value.join(", ") : value;
    if (name.startsWith(METADATA_HEADER_PREFIX)) {
      const key = name.slice(METADATA_HEADER_PREFIX.length);
      if (key !== "") out.set(key, text);
    } else if (PASS_THROUGH_HEADERS.has(name) && !out.has(name)) {
      // An explicit Grpc-Metadata-<name> wins over the plain header.
      out.set(name, text);
    }
  }
  return out;
}

/** What `headerMetadata(headers).get(key)` gives, without building the map. */
function headerValue(headers: HttpRequest["headers"], key: string): string | undefined {
  if (key === "") return undefined;
  const value = headers[METADATA_HEADER_PREFIX + key] ?? (PASS_THROUGH_HEADERS.has(key) ? headers[key] : undefined);
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(", ") : value;
}
