/**
 * One session with the gateway: a zeromq Dealer connected to its ROUTER,
 * the receive loop, the send queue, and what the transport knows about the
 * gateway's liveness. The runtime replaces the whole object (and so the
 * routing identity) when it reconnects.
 */
import { performance } from "node:perf_hooks";
import { Dealer } from "zeromq";
import type { GatewayMessage, WorkerMessage } from "../gen/clipper/v1/heartbeat.js";
import { decodeGatewayMessage, encodeWorkerMessage } from "../core/wire/native.js";
import type { Logger } from "../core/telemetry/logger.js";
import { SendQueue } from "./send-queue.js";
import type { WorkerCredentials } from "./worker-credentials.js";

/**
 * How long a closing socket keeps trying to deliver queued messages, in ms,
 * on a graceful close: long enough for the last results and the drain notice
 * to leave over a live link, short enough not to hold up process exit.
 */
const GRACEFUL_LINGER_MS = 1_000;

/** What the connection reports to its owner. */
export interface ConnectionHandlers {
  /** A well-formed gateway message. Must not throw (a throw is logged and dropped). */
  onMessage(message: GatewayMessage, payloads: Buffer[]): void;
}

/** Settings for one connection. */
export interface ConnectionOptions {
  /** Gateway RPC endpoint, `tcp://host:port` or `ipc:///path`. */
  readonly gateway: string;
  /** ZMTP PING interval, in ms (the worker's heartbeat interval). */
  readonly pingIntervalMs: number;
  /** Drop the link after this long without any traffic from the gateway, in ms. */
  readonly pingTimeoutMs: number;
  readonly log: Logger;
  /** CURVE keys when the gateway's worker port runs CURVE. */
  readonly credentials?: WorkerCredentials | null;
}

/** A session with the gateway over one Dealer socket. */
export class GatewayConnection {
  /** The routing id this connection chose (CURVE only: its registration proof is bound to it); null when zeromq picks one. */
  readonly routingId: Buffer | null;
  readonly #socket: Dealer;
  readonly #queue: SendQueue;
  readonly #log: Logger;
  readonly #handlers: ConnectionHandlers;
  #lastHeardMs: number;
  #transportUp = false;
  #downSinceMs: number;
  /**
   * "open" until close(); "broken" when the receive loop died on its own,
   * which makes the session useless until its owner closes it.
   */
  #phase: "open" | "broken" | "closed" = "open";

  constructor(options: ConnectionOptions, handlers: ConnectionHandlers) {
    this.#handlers = handlers;
    this.#log = options.log;
    this.#lastHeardMs = performance.now();
    this.#downSinceMs = this.#lastHeardMs;
    const curve = options.credentials?.socketOptions() ?? null;
    // As the gateway's ROUTER sees it: the id's bytes.
    this.routingId = curve === null ? null : Buffer.from(curve.routingId, "utf8");
    this.#socket = new Dealer({
      ...curve,
      // Queue only on a completed connection: otherwise registrations resent
      // while the gateway is down pile up in the pipe and all arrive at once.
      immediate: true,
      linger: 0,
      // zeromq refuses a bracketed IPv6 endpoint unless the socket opts in.
      ipv6: options.gateway.includes("["),
      // ZMTP heartbeats make "connected" trustworthy: a gateway host that
      // vanished without a FIN is noticed, and the gateway side drops us too.
      heartbeatInterval: options.pingIntervalMs,
      heartbeatTimeout: options.pingTimeoutMs,
      heartbeatTimeToLive: options.pingTimeoutMs,
    });
    this.#queue = new SendQueue(this.#socket, (err) => this.#log.warn({ err }, "send to gateway failed"));
    this.#socket.events.on("handshake", () => {
      this.#transportUp = true;
    });
    // A failed handshake leaves the link silent; say why once per session.
    let told = false;
    const handshakeFailed = (why: string) => () => {
      if (told) return;
      told = true;
      this.#log.warn({ gateway: options.gateway }, why);
    };
    this.#socket.events.on(
      "handshake:error:protocol",
      handshakeFailed(
        curve === null
          ? "handshake with the gateway failed: its worker port may run CURVE (give --gateway-public-key and --curve-secret-key)"
          : "CURVE handshake with the gateway failed: is --gateway-public-key the gateway's key, and does its worker port run CURVE?",
      ),
    );
    this.#socket.events.on("handshake:error:auth", handshakeFailed("the gateway refused this worker's CURVE key: add its public key to the gateway's --worker-keys"));
    this.#socket.events.on("disconnect", () => {
      this.#transportUp = false;
      this.#downSinceMs = performance.now();
    });
    this.#socket.connect(options.gateway);
    void this.#receiveLoop();
  }

  /**
   * How long the gateway has been silent, in ms. With `trustTransport`, a
   * link whose ZMTP heartbeats are answered counts as hearing from the
   * gateway: the native protocol has no reply to WorkerBeat, so an idle but
   * healthy gateway sends nothing at all to a registered worker.
   */
  silenceMs(trustTransport: boolean): number {
    const now = performance.now();
    if (this.#phase === "broken") return Number.POSITIVE_INFINITY;
    if (!trustTransport) return now - this.#lastHeardMs;
    if (this.#transportUp) return 0;
    return now - Math.max(this.#lastHeardMs, this.#downSinceMs);
  }

  /** Queues one worker message; resolves false if it could not be sent. */
  send(message: WorkerMessage, payloads: readonly Buffer[] = []): Promise<boolean> {
    return this.#queue.send(encodeWorkerMessage(message, payloads));
  }

  /**
   * Resolves once queued messages are handed to zeromq, at once when the link
   * is down, and after `timeoutMs` at most (a link that drops meanwhile would
   * otherwise hold a send, and us, forever).
   */
  async flush(timeoutMs: number): Promise<void> {
    // With no link, nothing queued can leave; waiting would only delay shutdown.
    if (!this.#transportUp) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      timer.unref();
    });
    await Promise.race([this.#queue.flushed(), timeout]);
    clearTimeout(timer);
  }

  /**
   * Closes the socket. `graceful` lets zeromq deliver what it already holds
   * for up to GRACEFUL_LINGER_MS; otherwise pending messages are dropped
   * (a session being abandoned has nobody to deliver them to).
   */
  close(graceful: boolean): void {
    if (this.#phase === "closed") return;
    this.#phase = "closed";
    this.#queue.close();
    this.#socket.linger = graceful ? GRACEFUL_LINGER_MS : 0;
    this.#socket.close();
  }

  async #receiveLoop(): Promise<void> {
    try {
      for await (const frames of this.#socket) {
        // Anything at all, even a frame we can't decode, proves the gateway is alive.
        this.#lastHeardMs = performance.now();
        const decoded = decodeGatewayMessage(frames);
        if (!decoded.ok) {
          this.#log.warn({ error: decoded.error }, "ignored a malformed gateway message");
          continue;
        }
        try {
          this.#handlers.onMessage(decoded.value.message, decoded.value.payloads);
        } catch (err) {
          this.#log.error({ err }, "gateway message handler failed");
        }
      }
    } catch (err) {
      // close() ends a pending receive with an error; only other failures matter.
      if (this.#phase === "closed") return;
      this.#phase = "broken";
      this.#log.error({ err }, "receive from gateway failed");
    }
  }
}
