import type { Deadline } from "./deadline.js";

/** Which edge a call came in through. */
export type Transport = "grpc" | "http" | "clipper-rest";

/**
 * What a transport-agnostic handler knows about its call. Built only by
 * core/lazy-call-context, which every edge (gRPC, transcoded HTTP, Clipper
 * REST predict and /admin/*) reaches through its own reader:
 * core/grpc-call-context or core/http-call-context.
 */
export interface CallContext {
  readonly transport: Transport;
  /** The caller's own deadline (absolute ms since epoch), Infinity if none. */
  readonly deadline: Deadline;
  /** Aborted when the caller goes away or its deadline passes. */
  readonly signal: AbortSignal;
  /**
   * Request metadata, lower-case keys: gRPC metadata, or for HTTP the
   * `Grpc-Metadata-<k>` headers as `<k>` plus `traceparent`/`tracestate`.
   */
  readonly metadata: ReadonlyMap<string, string>;
  /** Remote address, for logs. */
  readonly peer: string;
  /**
   * Calls `listener` once when the caller goes away (not when the deadline
   * passes), at once if it already has; returns its removal. Every context
   * has it: it is cheaper than listening on `signal`, which needs a deadline
   * timer and an AbortController. Call it as a method. Contexts built by
   * the edges are class instances with lazy getters: derive one
   * (core/lazy-call-context `withDeadline`) rather than spreading it, which
   * would drop `signal` and `metadata`.
   */
  onCancel(listener: () => void): () => void;
}

/**
 * A transport-agnostic unary handler. Handlers throw ServingError (or
 * anything, which becomes INTERNAL) and never see transport objects.
 */
export type UnaryHandler<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res>;
