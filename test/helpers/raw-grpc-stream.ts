import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream } from "node:http2";

/** A call's end as the client saw it: trailers (or trailers-only headers), or an HTTP/2 reset mapped as gRPC clients map it. */
export interface RawStatus {
  readonly code: number;
  readonly details: string;
  readonly via: "trailers" | "reset";
}

/** gRPC's mapping of RST_STREAM codes (PROTOCOL-HTTP2.md), as far as tests need it. */
function resetStatus(rstCode: number): RawStatus {
  if (rstCode === constants.NGHTTP2_ENHANCE_YOUR_CALM) return { code: 8, details: "stream reset: ENHANCE_YOUR_CALM", via: "reset" };
  if (rstCode === constants.NGHTTP2_CANCEL) return { code: 1, details: "stream reset: CANCEL", via: "reset" };
  return { code: 13, details: `stream reset: code ${rstCode}`, via: "reset" };
}

/**
 * A gRPC streaming call over a plain node:http2 session, for tests that need
 * a client that truly does not read: until {@link startReading}, nothing
 * consumes the response, so HTTP/2 flow control stops the server. (grpc-js's
 * own client keeps reading from the socket into memory whether or not the
 * application reads, so it cannot play that part.)
 */
export class RawGrpcStream {
  readonly #session: ClientHttp2Session;
  readonly #stream: ClientHttp2Stream;
  readonly #messages: Buffer[] = [];
  #pending = Buffer.alloc(0);
  readonly done: Promise<RawStatus>;

  private constructor(session: ClientHttp2Session, stream: ClientHttp2Stream) {
    this.#session = session;
    this.#stream = stream;
    this.done = new Promise((resolve) => {
      let status: RawStatus | null = null;
      const fromHeaders = (headers: Record<string, unknown>): void => {
        const code = headers["grpc-status"];
        if (code !== undefined) status = { code: Number(code), details: decodeURIComponent(String(headers["grpc-message"] ?? "")), via: "trailers" };
      };
      stream.on("response", fromHeaders);
      stream.on("trailers", fromHeaders);
      stream.on("error", () => {});
      stream.on("close", () => resolve(status ?? resetStatus(stream.rstCode ?? constants.NGHTTP2_INTERNAL_ERROR)));
    });
  }

  /** Opens `path` (e.g. /clipper.v1.Predict/PredictStream) on 127.0.0.1:`port`; the response is not read. */
  static open(port: number, path: string): RawGrpcStream {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on("error", () => {});
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.pause();
    return new RawGrpcStream(session, stream);
  }

  /** Sends one message (gRPC length-prefixed); false when HTTP/2 wants the caller to wait for 'drain'. */
  send(message: Uint8Array): boolean {
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    frame.set(message, 5);
    return this.#stream.write(frame);
  }

  /** Resolves once the request stream takes more (or has closed). */
  drained(): Promise<void> {
    if (this.#stream.closed || this.#stream.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.#stream.off("drain", done);
        this.#stream.off("close", done);
        resolve();
      };
      this.#stream.once("drain", done);
      this.#stream.once("close", done);
    });
  }

  get closed(): boolean {
    return this.#stream.closed;
  }

  /** Half-closes the request stream. */
  end(): void {
    this.#stream.end();
  }

  /** From now on the response is read; the messages decoded so far. */
  startReading(): Buffer[] {
    this.#stream.on("data", (chunk: Buffer) => {
      this.#pending = Buffer.concat([this.#pending, chunk]);
      while (this.#pending.length >= 5) {
        const length = this.#pending.readUInt32BE(1);
        if (this.#pending.length < 5 + length) break;
        this.#messages.push(this.#pending.subarray(5, 5 + length));
        this.#pending = this.#pending.subarray(5 + length);
      }
    });
    this.#stream.resume();
    return this.#messages;
  }

  close(): void {
    this.#stream.destroy();
    this.#session.destroy();
  }
}
