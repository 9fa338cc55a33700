/**
 * Write backpressure for server streams. grpc-js buffers every message a
 * handler writes, without limit, while the client does not read; this
 * writer writes only while grpc-js asks for more (`write()` returns true),
 * keeps a bounded backlog of its own while it waits for 'drain', and ends a
 * stream that stays blocked past the stall limit with RESOURCE_EXHAUSTED.
 */
import { Metadata, status as Status } from "@grpc/grpc-js";

/** Default of --stream-stall-ms: how long a server stream may stay blocked on a client that does not read, ms. */
export const DEFAULT_STREAM_STALL_MS = 30_000;

/** The writable side of a grpc-js server stream (ServerWritableStream or ServerDuplexStream). */
export interface WritableServerCall<T> {
  readonly cancelled: boolean;
  write(message: T): boolean;
  end(): void;
  emit(event: "error", err: object): boolean;
  once(event: "drain", listener: () => void): unknown;
  removeListener(event: "drain", listener: () => void): unknown;
}

export interface BoundedStreamOptions {
  /** Longest a stream may stay blocked (grpc-js refusing more, no 'drain'), ms. */
  readonly stallMs: number;
  /** Most messages kept while blocked; one more ends the stream with RESOURCE_EXHAUSTED. */
  readonly maxBacklog: number;
  /** Names the stream in the status message, e.g. "PredictStream". */
  readonly what: string;
  /** Called each time a blocked stream has written its whole backlog and takes messages again. */
  readonly onWritable?: () => void;
  /** Called once when the writer gives up on the stream (stalled or too far behind). */
  readonly onFailed?: (details: string) => void;
}

/**
 * - flowing: grpc-js takes messages; the backlog is empty.
 * - blocked: grpc-js refused more; messages wait in the backlog until 'drain', the stall timer runs.
 * - ended: end() was called and went out after the backlog.
 * - failed: given up (stalled, too far behind, or the client cancelled); the backlog is dropped.
 */
type WriterState = { name: "flowing" } | { name: "blocked"; stall: NodeJS.Timeout } | { name: "ended" } | { name: "failed" };

export class BoundedStreamWriter<T> {
  readonly #call: WritableServerCall<T>;
  readonly #options: BoundedStreamOptions;
  #state: WriterState = { name: "flowing" };
  #backlog: T[] = [];
  #endRequested = false;

  constructor(call: WritableServerCall<T>, options: BoundedStreamOptions) {
    this.#call = call;
    this.#options = options;
  }

  /** Messages given to {@link send} that grpc-js has not taken yet. */
  get backlog(): number {
    return this.#backlog.length;
  }

  /** Whether the stream is waiting for the client to read. */
  get blocked(): boolean {
    return this.#state.name === "blocked";
  }

  /** Whether messages sent now may still reach the client. */
  get open(): boolean {
    return (this.#state.name === "flowing" || this.#state.name === "blocked") && !this.#endRequested;
  }

  /** Writes `message`, or keeps it until the client reads; dropped once the stream is over. */
  send(message: T): void {
    if (!this.open || this.#call.cancelled) return;
    if (this.#state.name === "blocked") {
      if (this.#backlog.length >= this.#options.maxBacklog) {
        this.fail(`${this.#options.what}: the client fell ${this.#options.maxBacklog} messages behind; read faster, or call again`);
        return;
      }
      this.#backlog.push(message);
      return;
    }
    this.#write(message);
  }

  /** Ends the stream (status OK) after every message sent before. */
  end(): void {
    if (!this.open) return;
    this.#endRequested = true;
    if (this.#state.name === "flowing") this.#finish();
  }

  /**
   * Ends the stream with RESOURCE_EXHAUSTED and drops the backlog. The
   * status goes out after what grpc-js already holds, so a client that reads
   * again sees it; one that still reads nothing after another stall limit
   * gets its HTTP/2 stream reset with ENHANCE_YOUR_CALM, which gRPC clients
   * report as RESOURCE_EXHAUSTED too, and the buffers are freed.
   */
  fail(details: string): void {
    if (this.#state.name === "ended" || this.#state.name === "failed") return;
    this.#stop();
    if (this.#call.cancelled) return;
    this.#options.onFailed?.(details);
    this.#call.emit("error", { code: Status.RESOURCE_EXHAUSTED, details, metadata: new Metadata() });
    setTimeout(() => resetStream(this.#call), this.#options.stallMs).unref();
  }

  /** Stops writing for good (the call is over); nothing more is sent. */
  close(): void {
    if (this.#state.name !== "ended" && this.#state.name !== "failed") this.#stop();
  }

  #stop(): void {
    if (this.#state.name === "blocked") {
      clearTimeout(this.#state.stall);
      this.#call.removeListener("drain", this.#onDrain);
    }
    this.#state = { name: "failed" };
    this.#backlog = [];
  }

  #write(message: T): void {
    if (this.#call.write(message)) return;
    const stall = setTimeout(() => this.fail(`${this.#options.what}: the client read nothing for ${this.#options.stallMs} ms; read the stream, or call again`), this.#options.stallMs);
    stall.unref();
    this.#state = { name: "blocked", stall };
    this.#call.once("drain", this.#onDrain);
  }

  readonly #onDrain = (): void => {
    if (this.#state.name !== "blocked") return;
    clearTimeout(this.#state.stall);
    this.#state = { name: "flowing" };
    let i = 0;
    while (i < this.#backlog.length && this.#state.name === "flowing") this.#write(this.#backlog[i++]!);
    this.#backlog = i === this.#backlog.length ? [] : this.#backlog.slice(i);
    if (this.#state.name !== "flowing") return;
    if (this.#endRequested) this.#finish();
    else this.#options.onWritable?.();
  };

  #finish(): void {
    this.#state = { name: "ended" };
    this.#call.end();
  }
}

/** Just what resetStream reads of node:http2's Http2Stream. */
interface ResettableStream {
  readonly closed: boolean;
  close(code: number): void;
}

/** RST_STREAM code that gRPC maps to RESOURCE_EXHAUSTED (RFC 9113 §7; gRPC's PROTOCOL-HTTP2). */
const NGHTTP2_ENHANCE_YOUR_CALM = 0xb;

/**
 * Resets the HTTP/2 stream under a grpc-js server call, unless it is closed
 * already. grpc-js has no public way to do this, so this walks its
 * internals (call.call, then .nextCall through interceptors, to .stream:
 * grpc-js 1.x); when they change, the stream is left to the status sent
 * before, and test/core/bounded-stream.test.ts fails.
 */
function resetStream(call: object): void {
  let node: unknown = (call as { call?: unknown }).call;
  for (let depth = 0; depth < 8 && typeof node === "object" && node !== null; depth++) {
    const stream = (node as { stream?: unknown }).stream;
    if (isResettable(stream)) {
      if (!stream.closed) stream.close(NGHTTP2_ENHANCE_YOUR_CALM);
      return;
    }
    node = (node as { nextCall?: unknown }).nextCall;
  }
}

function isResettable(s: unknown): s is ResettableStream {
  return typeof s === "object" && s !== null && typeof (s as { close?: unknown }).close === "function" && typeof (s as { closed?: unknown }).closed === "boolean";
}
