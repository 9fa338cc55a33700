import { status as Status } from "@grpc/grpc-js";

/**
 * Stable, machine-readable reasons carried by {@link ServingError}. Callers
 * (and tests) switch on these; messages are for humans and may change.
 */
export type ErrorReason =
  | "INVALID_REQUEST"
  | "INVALID_INPUT"
  | "INVALID_NAME"
  | "UNKNOWN_INPUT_TYPE"
  | "APP_NOT_FOUND"
  | "APP_MISCONFIGURED"
  | "APP_EXISTS"
  | "MODEL_NOT_FOUND"
  | "MODEL_EXISTS"
  | "MODEL_INVALID"
  | "REPLICA_NOT_FOUND"
  | "LINK_EXISTS"
  | "LINK_NOT_FOUND"
  | "INPUT_TYPE_MISMATCH"
  | "ROUTE_NOT_FOUND"
  | "METHOD_NOT_ALLOWED"
  | "BODY_TOO_LARGE"
  | "UNSUPPORTED_MEDIA_TYPE"
  | "HOST_NOT_ALLOWED"
  | "QUEUE_FULL"
  | "OVERLOADED"
  | "GATEWAY_BEHIND"
  | "DEADLINE_EXCEEDED"
  | "CANCELLED"
  | "STORE_UNAVAILABLE"
  | "NO_REPLICA_MANAGER"
  | "NOT_MANAGED"
  | "REPLICAS_NOT_READY"
  | "WORKER_COMMANDS_DISABLED"
  | "WORKER_MODULE_OUTSIDE_ROOT"
  | "MODEL_ERROR"
  | "UNAUTHENTICATED"
  | "PERMISSION_DENIED"
  | "INTERNAL";

/**
 * Codes that mean the server itself is at fault: only errors with one of
 * these keep a stack trace (see {@link ServingError}).
 */
const SERVER_FAULTS: ReadonlySet<Status> = new Set([Status.INTERNAL, Status.UNKNOWN, Status.DATA_LOSS]);

/**
 * Seconds a caller refused under load (a full queue, an overload, a
 * gateway behind on its work) is told to wait before retrying.
 */
export const RETRY_AFTER_SECONDS = 1;
/** That hint as headers (HTTP Retry-After; gRPC edges turn it into trailers, core/servers/grpc-server.ts). */
export const RETRY_AFTER_HEADERS: Readonly<Record<string, string>> = { "retry-after": String(RETRY_AFTER_SECONDS) };

/**
 * The one error type of clipper-ts. It carries the gRPC status every edge
 * adapter maps from (gRPC directly, HTTP through core/status), a message a
 * user can act on, a stable reason, and the original `cause`, which is
 * logged but never sent to the caller.
 */
export class ServingError extends Error {
  readonly code: Status;
  readonly reason: ErrorReason;
  /** Extra response headers (e.g. Retry-After) for HTTP edges. */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    code: Status,
    reason: ErrorReason,
    message: string,
    options: { cause?: unknown; headers?: Record<string, string> } = {},
  ) {
    // Every shed, expired or refused call makes one of these, and capturing
    // a stack costs ~8.5 µs (the frames of the awaits above it): under
    // overload, where refusing must be cheap, it was an eighth of the
    // gateway's time (bench/README.md, round two §7). A caller's or the
    // load's outcome has no use for a trace; a server fault keeps its own,
    // and a wrapped error's is in `cause`.
    const limit = Error.stackTraceLimit;
    if (!SERVER_FAULTS.has(code)) Error.stackTraceLimit = 0;
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    Error.stackTraceLimit = limit;
    this.name = "ServingError";
    this.code = code;
    this.reason = reason;
    this.headers = options.headers ?? {};
  }

  /**
   * Wraps anything thrown into a ServingError. A ServingError passes through;
   * an object with a numeric gRPC `code` keeps it; everything else becomes
   * INTERNAL with a generic message, so internals never leak to callers.
   */
  static from(err: unknown): ServingError {
    if (err instanceof ServingError) return err;
    if (isGrpcLike(err)) return new ServingError(err.code, "INTERNAL", err.details ?? err.message, { cause: err });
    return new ServingError(Status.INTERNAL, "INTERNAL", "internal error", { cause: err });
  }
}

function isGrpcLike(err: unknown): err is { code: Status; message: string; details?: string } {
  return (
    typeof err === "object" &&
    err !== null &&
    typeof (err as { code?: unknown }).code === "number" &&
    (err as { code: number }).code >= 0 &&
    (err as { code: number }).code <= 16
  );
}

export const invalidArgument = (reason: ErrorReason, message: string): ServingError =>
  new ServingError(Status.INVALID_ARGUMENT, reason, message);
export const notFound = (reason: ErrorReason, message: string): ServingError =>
  new ServingError(Status.NOT_FOUND, reason, message);
export const alreadyExists = (reason: ErrorReason, message: string): ServingError =>
  new ServingError(Status.ALREADY_EXISTS, reason, message);
export const failedPrecondition = (reason: ErrorReason, message: string): ServingError =>
  new ServingError(Status.FAILED_PRECONDITION, reason, message);
export const unavailable = (reason: ErrorReason, message: string, cause?: unknown): ServingError =>
  new ServingError(Status.UNAVAILABLE, reason, message, { cause });
export const permissionDenied = (reason: ErrorReason, message: string): ServingError =>
  new ServingError(Status.PERMISSION_DENIED, reason, message);
