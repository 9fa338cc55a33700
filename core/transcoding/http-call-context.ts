import type { IncomingMessage, ServerResponse } from "node:http";
import { status as Status } from "@grpc/grpc-js";
import type { CallContext } from "../call-context.js";
import { NO_DEADLINE, parseGrpcTimeout, type Deadline } from "../deadline.js";
import { ServingError, invalidArgument } from "../errors.js";

/** grpc-gateway's prefix for request headers that become gRPC metadata. */
const METADATA_HEADER_PREFIX = "grpc-metadata-";

/** Headers passed through as metadata under their own name (tracing and auth, as grpc-gateway passes Authorization). */
const PASS_THROUGH_HEADERS: ReadonlySet<string> = new Set(["traceparent", "tracestate", "authorization"]);

/**
 * Largest delay a Node timer takes (2^31-1 ms, ~24.8 days); a longer one
 * fires after 1 ms instead. A deadline further away than this gets no timer.
 */
const MAX_TIMER_MS = 2_147_483_647;

/** A call's context and the release of what it holds. */
export interface HttpCallScope {
  readonly ctx: CallContext;
  /** Clears the deadline timer and the disconnect listener; call once the call has ended. */
  dispose(): void;
}

/**
 * The CallContext of a transcoded HTTP call, from its headers:
 * `Grpc-Timeout` gives the deadline (absolute, ms since epoch);
 * `Grpc-Metadata-<k>` headers become metadata `<k>` (lower-case), with
 * `traceparent`, `tracestate` and `authorization` passed through under
 * their own names. The signal aborts with a ServingError when the client
 * closes the connection before the response is finished (CANCELLED) or the
 * deadline passes (DEADLINE_EXCEEDED). An invalid `Grpc-Timeout` is
 * returned as an INVALID_ARGUMENT error value, not thrown.
 */
export function httpCallContext(
  req: IncomingMessage,
  res: ServerResponse,
): { ok: true; scope: HttpCallScope } | { ok: false; error: ServingError } {
  let deadline: Deadline = NO_DEADLINE;
  const header = req.headers["grpc-timeout"];
  if (header !== undefined) {
    // Node joins a repeated unknown header into one string; an array is only a typing artefact.
    const timeout = Array.isArray(header) ? header.join(", ") : header;
    const parsed = parseGrpcTimeout(timeout);
    if (!parsed.ok) return { ok: false, error: invalidArgument("INVALID_REQUEST", parsed.error) };
    deadline = Date.now() + parsed.ms;
  }
  const controller = new AbortController();
  const onClose = (): void => {
    if (!res.writableFinished) {
      controller.abort(new ServingError(Status.CANCELLED, "CANCELLED", "client closed the connection"));
    }
  };
  res.once("close", onClose);
  if (req.socket.destroyed) onClose();
  let timer: NodeJS.Timeout | null = null;
  const delay = deadline - Date.now();
  if (delay <= MAX_TIMER_MS) {
    timer = setTimeout(() => {
      controller.abort(new ServingError(Status.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", "deadline exceeded"));
    }, Math.max(0, delay));
    timer.unref();
  }
  const ctx: CallContext = {
    transport: "http",
    deadline,
    signal: controller.signal,
    metadata: headerMetadata(req.headers),
    peer: req.socket.remoteAddress ?? "",
  };
  return {
    ok: true,
    scope: {
      ctx,
      dispose(): void {
        if (timer !== null) clearTimeout(timer);
        res.removeListener("close", onClose);
      },
    },
  };
}

function headerMetadata(headers: IncomingMessage["headers"]): ReadonlyMap<string, string> {
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
