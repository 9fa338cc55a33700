/**
 * How a grpc-js server call (unary or streaming) becomes a CallContext: its
 * deadline, metadata, peer and cancellation, read by core/lazy-call-context.
 */
import { status as Status, type Deadline as GrpcDeadline, type Metadata } from "@grpc/grpc-js";
import { NO_DEADLINE, type Deadline } from "./deadline.js";
import { ServingError } from "./errors.js";
import { lazyCallContext, type CallScope, type CallSource } from "./lazy-call-context.js";

/** What {@link grpcCallContext} reads from any grpc-js server call (unary or streaming). */
export interface GrpcServerCall {
  readonly cancelled: boolean;
  readonly metadata: Metadata;
  getPeer(): string;
  getDeadline(): GrpcDeadline;
  on(event: "cancelled", listener: () => void): unknown;
  removeListener(event: "cancelled", listener: () => void): unknown;
}

const GRPC_SOURCE: CallSource<GrpcServerCall, Metadata> = {
  carrier: (call) => call.metadata,
  lookup: firstText,
  build: stringMetadata,
  event: "cancelled",
  // grpc-js sets `cancelled` just before it emits the event.
  gone: (call) => call.cancelled,
  goneReason: () => new ServingError(Status.CANCELLED, "CANCELLED", "call cancelled by the client"),
};

/**
 * The CallContext of a grpc-js server call, for streaming implementations
 * too. Its signal aborts (reason: a ServingError) when the client cancels
 * or the deadline passes; call `dispose()` when the call ends so the
 * deadline timer and listener are released. The signal, its timer and the
 * metadata map are made only when a handler reads them.
 */
export function grpcCallContext(call: GrpcServerCall): CallScope {
  return lazyCallContext(GRPC_SOURCE, call, "grpc", toDeadline(call.getDeadline()), call.getPeer());
}

function toDeadline(d: GrpcDeadline): Deadline {
  const ms = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(ms) ? ms : NO_DEADLINE;
}

/** Text metadata with lower-case keys (first value per key); binary `-bin` entries are skipped. */
function stringMetadata(metadata: Metadata): ReadonlyMap<string, string> {
  const out = new Map<string, string>();
  for (const [key, value] of Object.entries(metadata.getMap())) {
    if (typeof value === "string") out.set(key.toLowerCase(), value);
  }
  return out;
}

/** What `stringMetadata(metadata).get(key)` gives, without building the map. */
function firstText(metadata: Metadata, key: string): string | undefined {
  // grpc-js lower-cases keys on lookup; the map holds only lower-case ones.
  if (key !== key.toLowerCase()) return undefined;
  const value = metadata.get(key)[0];
  return typeof value === "string" ? value : undefined;
}
