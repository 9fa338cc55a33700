import { Router } from "zeromq";
import type { Logger } from "../../core/telemetry/logger.js";
import { isNative } from "../../core/wire/native.js";
import type { ReplicaRegistry } from "../replica-registry.js";
import { ClipperV3Dialect } from "./clipper-v3.js";
import type { BatchAnswers, DialectContext } from "./dialect.js";
import { NativeDialect } from "./native.js";
import { PeerSendQueues, type PeerSendLimits, type SendAttempt } from "./peer-send-queues.js";

/**
 * A send never waits on a socket: a peer at its high-water mark refuses at
 * once (EAGAIN, as `mandatory` is set) and its messages wait in its own
 * queue (peer-send-queues.ts), so one peer that stops reading delays nobody else.
 */
const SEND_TIMEOUT_MS = 0;
/** Limits of one peer's queue: a peer whose messages stay refused this long, or pile up this high, is evicted. */
const PEER_SEND_LIMITS: PeerSendLimits = { stallMs: 1_000, maxBacklog: 1_024, retryMs: 5 };

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
 * with itself as their link, and hands their answers to `answers`. Sends
 * never wait (`mandatory` set, send timeout 0): a message to a gone peer
 * fails loudly instead of vanishing, and the dispatcher drops that replica;
 * one to a peer at its high-water mark waits in that peer's own queue, and
 * a peer that stays stuck is evicted.
 */
export class WorkerRpc {
  readonly #router: Router;
  readonly #options: WorkerRpcOptions;
  readonly #log: Logger;
  readonly #v3: ClipperV3Dialect;
  readonly #native: NativeDialect;
  readonly #sendQueues = new PeerSendQueues(
    (identity, frames) => this.#trySend(identity, frames),
    (identity, why) => this.#evictStuck(identity, why),
    PEER_SEND_LIMITS,
  );
  readonly #registry: ReplicaRegistry;
  #receiving: Promise<void> | null = null;
  #port = 0;

  constructor(registry: ReplicaRegistry, answers: BatchAnswers, log: Logger, options: WorkerRpcOptions) {
    this.#router = new Router({ mandatory: true, sendTimeout: SEND_TIMEOUT_MS, linger: 0, maxMessageSize: options.maxMessageBytes });
    this.#options = options;
    this.#log = log;
    this.#registry = registry;
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
    this.#sendQueues.close();
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

  /** Sends frames to one peer, after every message queued for that peer before it. */
  #send(identity: Buffer, frames: Buffer[]): Promise<boolean> {
    return this.#sendQueues.send(identity, frames);
  }

  async #trySend(identity: Buffer, frames: Buffer[]): Promise<SendAttempt> {
    if (this.#router.closed) return "failed";
    try {
      await this.#router.send([identity, ...frames]);
      return "sent";
    } catch (err) {
      if ((err as { code?: unknown }).code === "EAGAIN") return "blocked";
      this.#log.debug({ err: (err as Error).message, address: identity.toString("hex") }, "send to worker failed");
      return "failed";
    }
  }

  /** A peer that reads nothing is evicted, like a silent one; its batches in flight go back to the queue. */
  #evictStuck(identity: Buffer, why: string): void {
    const replica = this.#registry.get(identity.toString("hex"));
    this.#log.warn({ address: identity.toString("hex"), model: replica?.modelName, replicaId: replica?.replicaId, why }, "worker does not read its messages");
    if (replica !== undefined) this.#registry.remove(replica, "evicted");
  }
}
