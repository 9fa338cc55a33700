import { Router } from "zeromq";
import type { Logger } from "../../core/telemetry/logger.js";
import { isNative } from "../../core/wire/native.js";
import type { ReplicaRegistry } from "../replica-registry.js";
import { ClipperV3Dialect } from "./clipper-v3.js";
import type { BatchAnswers, DialectContext } from "./dialect.js";
import { NativeDialect } from "./native.js";

/** How long one send may wait on a peer at its high-water mark before the peer counts as lost, in ms. */
const SEND_TIMEOUT_MS = 1_000;

export interface WorkerRpcOptions {
  readonly host: string;
  readonly port: number;
  /** Silence after which a native replica is evicted, in ms. */
  readonly evictionMs: number;
  /** Largest message frame a peer may send, in bytes; a peer that sends a larger one is disconnected (ZMQ_MAXMSGSIZE). */
  readonly maxMessageBytes: number;
}

/**
 * The gateway's ZeroMQ ROUTER for model workers. One socket speaks two
 * dialects, told apart by the frame after the empty delimiter: the native
 * marker, or Clipper RPC v3. Each dialect registers its peers as replicas,
 * with itself as their link, and hands their answers to `answers`. Sends go
 * out one at a time (zeromq allows one pending send per socket) with
 * `mandatory` set, so a message to a gone or stuck peer fails loudly instead
 * of vanishing; the dispatcher then drops that replica.
 */
export class WorkerRpc {
  readonly #router: Router;
  readonly #options: WorkerRpcOptions;
  readonly #log: Logger;
  readonly #v3: ClipperV3Dialect;
  readonly #native: NativeDialect;
  #sendChain: Promise<unknown> = Promise.resolve();
  #receiving: Promise<void> | null = null;
  #port = 0;

  constructor(registry: ReplicaRegistry, answers: BatchAnswers, log: Logger, options: WorkerRpcOptions) {
    this.#router = new Router({ mandatory: true, sendTimeout: SEND_TIMEOUT_MS, linger: 0, maxMessageSize: options.maxMessageBytes });
    this.#options = options;
    this.#log = log;
    const ctx: DialectContext = {
      registry,
      answers,
      log,
      evictionMs: options.evictionMs,
      send: (identity, frames) => this.#send(identity, frames),
      now: Date.now,
    };
    this.#v3 = new ClipperV3Dialect(ctx);
    this.#native = new NativeDialect(ctx);
  }

  get port(): number {
    return this.#port;
  }

  async start(): Promise<void> {
    await this.#router.bind(`tcp://${this.#options.host}:${this.#options.port}`);
    const endpoint = this.#router.lastEndpoint ?? "";
    this.#port = Number(endpoint.slice(endpoint.lastIndexOf(":") + 1));
    this.#receiving = this.#receiveLoop();
  }

  /** Closes the socket at once (linger 0: unsent messages are dropped) and waits for the receive loop to end. */
  async close(): Promise<void> {
    this.#router.close();
    await this.#receiving?.catch(() => {});
  }

  async #receiveLoop(): Promise<void> {
    try {
      for await (const [identity, ...frames] of this.#router) {
        if (identity === undefined) continue;
        try {
          if (isNative(frames)) this.#native.handle(identity, frames);
          else this.#v3.handle(identity, frames);
        } catch (err) {
          // A peer must never be able to stop the loop.
          this.#log.error({ err, address: identity.toString("hex") }, "error handling worker message");
        }
      }
    } catch (err) {
      if (!this.#router.closed) this.#log.error({ err }, "worker RPC receive loop failed");
    }
  }

  /** Sends frames to one peer, after every send queued before it. */
  #send(identity: Buffer, frames: Buffer[]): Promise<boolean> {
    const next = this.#sendChain.then(async () => {
      if (this.#router.closed) return false;
      try {
        await this.#router.send([identity, ...frames]);
        return true;
      } catch (err) {
        this.#log.debug({ err: (err as Error).message, address: identity.toString("hex") }, "send to worker failed");
        return false;
      }
    });
    this.#sendChain = next;
    return next;
  }
}
