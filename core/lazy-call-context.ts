/**
 * The one builder of CallContexts: the gRPC and HTTP edges describe their
 * call object as a {@link CallSource} (core/grpc-call-context,
 * core/http-call-context) and get their context here, so every edge honours
 * deadlines and cancellation the same way.
 *
 * A call pays only for what its handler reads: the AbortController, its
 * deadline timer and the metadata map are made on first read. The
 * predictor reads none of them on its hot path (it uses `onCancel`, its own
 * SLO timer and one metadata key), so a Predict call stays off EventTarget
 * and the timer list.
 *
 * The context is a class instance with its lazy parts as prototype getters,
 * because V8 creates an object literal with getters far more slowly than a
 * class instance (bench/README.md, "Hot path"). Spreading one would drop
 * those getters, so a narrower context is derived with {@link withDeadline}.
 */
import { status as Status } from "@grpc/grpc-js";
import type { CallContext, Transport } from "./call-context.js";
import type { Deadline } from "./deadline.js";
import { ServingError } from "./errors.js";

/**
 * Largest delay a Node timer takes (2^31-1 ms, ~24.8 days); a longer one
 * fires after 1 ms instead. A deadline further away than this gets no timer.
 */
const MAX_TIMER_MS = 2_147_483_647;

/** The event emitter side of a transport's call object. */
interface Emitter {
  on(event: string, listener: () => void): unknown;
  removeListener(event: string, listener: () => void): unknown;
}

/** How to read request metadata from its carrier (gRPC Metadata, HTTP headers), a key at a time or all of it. */
export interface MetadataReader<M> {
  /** Must answer exactly what `build(carrier).get(key)` would. */
  lookup(carrier: M, key: string): string | undefined;
  build(carrier: M): ReadonlyMap<string, string>;
}

/** What an edge knows how to read from its own call object `H`, whose metadata travels in `M`. */
export interface CallSource<H extends Emitter, M> extends MetadataReader<M> {
  /** Where `call`'s metadata is; kept by the context after the call, unlike `call`. */
  carrier(call: H): M;
  /** The event `call` emits when the caller may have gone. */
  readonly event: string;
  /** True once the caller has gone; checked when the call starts and on each `event`. */
  gone(call: H): boolean;
  /** The abort reason once the caller has gone. */
  goneReason(): ServingError;
}

/** A call's context and the release of what it holds. */
export interface CallScope {
  readonly ctx: CallContext;
  /** Clears the deadline timer and the transport listener; call once the call has ended. */
  dispose(): void;
}

function noop(): void {}

function deadlineExceeded(controller: AbortController): void {
  controller.abort(new ServingError(Status.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", "deadline exceeded"));
}

/**
 * The context of one call on `call`. `deadline` is absolute (ms since epoch,
 * Infinity if none); `peer` is read by the edge up front, since the address
 * is gone from a closed socket.
 *
 * The transport is watched from here, as the call starts, rather than from
 * the first reader of `signal` or `onCancel`: registering the listener from
 * inside the handler made V8 allocate every decoded gRPC request in the old
 * generation (pretenuring), which made GC per call far costlier under load
 * (bench/README.md, "Hot path"). One listener per call is cheap.
 */
export function lazyCallContext<H extends Emitter, M>(source: CallSource<H, M>, call: H, transport: Transport, deadline: Deadline, peer: string): CallScope {
  const ctx = new LazyCallContext(source, call, transport, deadline, peer);
  if (source.gone(call)) {
    ctx.callerGone();
  } else {
    call.on(
      source.event,
      ctx.watching(() => {
        if (source.gone(call)) ctx.callerGone();
      }),
    );
  }
  return LazyCallContext.scope(ctx);
}

/** Not exported: edges get it through {@link lazyCallContext}, handlers see a CallContext. */
class LazyCallContext<H extends Emitter, M> implements CallContext {
  readonly transport: Transport;
  readonly deadline: Deadline;
  readonly peer: string;
  readonly #source: CallSource<H, M>;
  /** The transport call until dispose, so a context kept by a handler does not keep the call. */
  #call: H | null;
  readonly #carrier: M;
  #controller: AbortController | null = null;
  #timer: NodeJS.Timeout | null = null;
  /** The transport listener, removed on dispose. */
  #listener: (() => void) | null = null;
  #reason: ServingError | null = null;
  #listeners: (() => void)[] | null = null;
  #metadata: LazyMetadata<M> | null = null;

  constructor(source: CallSource<H, M>, call: H, transport: Transport, deadline: Deadline, peer: string) {
    this.transport = transport;
    this.deadline = deadline;
    this.peer = peer;
    this.#source = source;
    this.#call = call;
    this.#carrier = source.carrier(call);
  }

  /** The scope an edge holds; its `dispose` works detached from it, as callers destructure it. */
  static scope<H extends Emitter, M>(ctx: LazyCallContext<H, M>): CallScope {
    return {
      ctx,
      dispose(): void {
        ctx.#dispose();
      },
    };
  }

  get signal(): AbortSignal {
    if (this.#controller === null) {
      const controller = new AbortController();
      this.#controller = controller;
      if (this.#reason !== null) {
        controller.abort(this.#reason);
      } else if (this.#call !== null) {
        const delay = this.deadline - Date.now();
        if (delay <= MAX_TIMER_MS) {
          this.#timer = setTimeout(deadlineExceeded, Math.max(0, delay), controller);
          this.#timer.unref();
        }
      }
    }
    return this.#controller.signal;
  }

  get metadata(): ReadonlyMap<string, string> {
    return (this.#metadata ??= new LazyMetadata(this.#source, this.#carrier));
  }

  onCancel(listener: () => void): () => void {
    if (this.#reason !== null) {
      listener();
      return noop;
    }
    (this.#listeners ??= []).push(listener);
    return () => {
      const i = this.#listeners === null ? -1 : this.#listeners.indexOf(listener);
      if (i >= 0) this.#listeners!.splice(i, 1);
    };
  }

  /** @internal the edge's listener saw the caller go. */
  callerGone(): void {
    if (this.#reason !== null || this.#call === null) return;
    const reason = this.#source.goneReason();
    this.#reason = reason;
    this.#controller?.abort(reason);
    const waiting = this.#listeners;
    this.#listeners = null;
    if (waiting !== null) for (const listener of waiting) listener();
  }

  /** @internal keeps the edge's transport listener for dispose to remove; returns it. */
  watching(listener: () => void): () => void {
    this.#listener = listener;
    return listener;
  }

  #dispose(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#listener !== null) this.#call?.removeListener(this.#source.event, this.#listener);
    this.#listener = null;
    this.#listeners = null;
    this.#call = null;
  }
}

/**
 * `ctx` with an earlier deadline (a stream's item with its own timeout).
 * Signal, metadata and onCancel stay `ctx`'s own, read when asked: the
 * signal still aborts at `ctx`'s deadline, not this one.
 */
export function withDeadline(ctx: CallContext, deadline: Deadline): CallContext {
  return new NarrowedContext(ctx, deadline);
}

class NarrowedContext implements CallContext {
  readonly transport: Transport;
  readonly deadline: Deadline;
  readonly peer: string;
  readonly #parent: CallContext;

  constructor(parent: CallContext, deadline: Deadline) {
    this.transport = parent.transport;
    this.deadline = deadline;
    this.peer = parent.peer;
    this.#parent = parent;
  }

  get signal(): AbortSignal {
    return this.#parent.signal;
  }

  get metadata(): ReadonlyMap<string, string> {
    return this.#parent.metadata;
  }

  onCancel(listener: () => void): () => void {
    return this.#parent.onCancel(listener);
  }
}

/**
 * Metadata whose single-key lookups read the transport's headers directly;
 * the whole map is built only when it is iterated or sized. A call usually
 * needs one key (`traceparent`), and building a Map of every header per call
 * showed up in profiles.
 */
export class LazyMetadata<M> implements ReadonlyMap<string, string> {
  readonly #reader: MetadataReader<M>;
  readonly #carrier: M;
  #all: ReadonlyMap<string, string> | null = null;

  constructor(reader: MetadataReader<M>, carrier: M) {
    this.#reader = reader;
    this.#carrier = carrier;
  }

  get(key: string): string | undefined {
    return this.#all === null ? this.#reader.lookup(this.#carrier, key) : this.#all.get(key);
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  get size(): number {
    return this.#map().size;
  }

  forEach(callback: (value: string, key: string, map: ReadonlyMap<string, string>) => void, thisArg?: unknown): void {
    this.#map().forEach((value, key) => callback.call(thisArg, value, key, this));
  }

  entries(): ReturnType<ReadonlyMap<string, string>["entries"]> {
    return this.#map().entries();
  }

  keys(): ReturnType<ReadonlyMap<string, string>["keys"]> {
    return this.#map().keys();
  }

  values(): ReturnType<ReadonlyMap<string, string>["values"]> {
    return this.#map().values();
  }

  [Symbol.iterator](): ReturnType<ReadonlyMap<string, string>["entries"]> {
    return this.#map()[Symbol.iterator]();
  }

  #map(): ReadonlyMap<string, string> {
    return (this.#all ??= this.#reader.build(this.#carrier));
  }
}
