import { Context, Router } from "zeromq";
import type { Logger } from "../../core/telemetry/logger.js";
import { OncePer } from "../../core/telemetry/once-per.js";
import { isNative } from "../../core/wire/native.js";
import type { ReplicaRegistry } from "../replica-registry.js";
import { ClipperV3Dialect } from "./clipper-v3.js";
import type { BatchAnswers, DialectContext } from "./dialect.js";
import { bindIpcSocket, type BoundIpcSocket } from "./ipc-socket.js";
import { NativeDialect } from "./native.js";
import { PeerSendQueues, type PeerSendLimits, type SendAttempt } from "./peer-send-queues.js";
import type { AuthFailure, WorkerAuth } from "./worker-auth.js";
import { ZapHandler } from "./zap-handler.js";

/**
 * A send never waits on a socket: a peer at its high-water mark refuses at
 * once (EAGAIN, as `mandatory` is set) and its messages wait in its own
 * queue (peer-send-queues.ts), so one peer that stops reading delays nobody else.
 */
const SEND_TIMEOUT_MS = 0;
/** Limits of one peer's queue: a peer whose messages stay refused this long, or pile up this high, is evicted. */
const PEER_SEND_LIMITS: PeerSendLimits = { stallMs: 1_000, maxBacklog: 1_024, retryMs: 5 };
/** A peer's refusals and stray messages are logged at most once per address per minute: it could send them endlessly. */
const PEER_LOG_EVERY_MS = 60_000;
/** Errors of a handshake whose peer hung up without a word. */
const HUNG_UP: ReadonlySet<string> = new Set(["ECONNRESET", "EPIPE"]);
/** The ZAP domain of CURVE worker ports (libzmq requires one to enforce ZAP). */
const ZAP_DOMAIN = "clipper-workers";

/**
 * Which dialects a port speaks. One port speaks both while it runs no
 * CURVE. A CURVE port speaks only the native dialect, whose registrations
 * prove their key (a Clipper v3 message carries none); Clipper's containers,
 * which cannot do CURVE, then get a port of their own (--clipper-v3-port).
 */
export type PortDialects = "both" | "native" | "clipper-v3";

export interface WorkerRpcOptions {
  readonly host: string;
  readonly port: number;
  /** Silence after which a native replica is evicted, in ms. */
  readonly evictionMs: number;
  /** Largest message frame a peer may send, in bytes; a peer that sends a larger one is disconnected (ZMQ_MAXMSGSIZE). */
  readonly maxMessageBytes: number;
  /** Dialects spoken on this port (default both). */
  readonly dialects?: PortDialects;
  /** CURVE with this key and allow-list (native only); plaintext when absent. */
  readonly auth?: WorkerAuth | null;
  /** Models Clipper v3 containers may register for; null or absent for any. */
  readonly clipperV3Models?: ReadonlySet<string> | null;
  /** Counts a worker turned away (clipper_worker_auth_failures_total). */
  readonly onAuthFailure?: (reason: AuthFailure) => void;
  /**
   * A Unix domain socket path the same socket binds too, for workers on
   * this host (--rpc-ipc-dir): same dialects, same CURVE; none when absent.
   */
  readonly ipcPath?: string | null;
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
  readonly #dialects: PortDialects;
  readonly #zap: ZapHandler | null;
  readonly #logOnce = new OncePer(PEER_LOG_EVERY_MS);
  readonly #sendQueues = new PeerSendQueues(
    (identity, frames) => this.#trySend(identity, frames),
    (identity, why) => this.#evictStuck(identity, why),
    PEER_SEND_LIMITS,
  );
  readonly #registry: ReplicaRegistry;
  #receiving: Promise<void> | null = null;
  #port = 0;
  #ipc: BoundIpcSocket | null = null;

  constructor(registry: ReplicaRegistry, answers: BatchAnswers, log: Logger, options: WorkerRpcOptions) {
    const auth = options.auth ?? null;
    this.#dialects = options.dialects ?? "both";
    if (auth !== null && this.#dialects !== "native") throw new Error("a CURVE worker port speaks only the native dialect");
    const base = { mandatory: true, sendTimeout: SEND_TIMEOUT_MS, linger: 0, maxMessageSize: options.maxMessageBytes } as const;
    if (auth === null) {
      this.#router = new Router(base);
      this.#zap = null;
    } else {
      // A context of its own: libzmq allows one ZAP handler per context, and
      // a process may run more than one gateway (tests, --processes).
      const context = new Context();
      this.#zap = new ZapHandler(context, auth, log);
      this.#router = new Router({ ...base, context, curveServer: true, curveSecretKey: auth.secretKey, zapDomain: ZAP_DOMAIN, zapEnforceDomain: true });
      // A plaintext peer fails the handshake as a protocol error or, when it
      // hangs up first, as another error. Monitor events carry no peer
      // address, so the log is once a minute for all of them.
      const handshakeFailed = (): void => {
        options.onAuthFailure?.("handshake");
        if (this.#logOnce.allow("handshake")) {
          log.warn("a peer failed the CURVE handshake on the worker port (a worker without --curve-secret-key, a wrong --gateway-public-key, or a Clipper container: those use --clipper-v3-port)");
        }
      };
      this.#router.events.on("handshake:error:protocol", handshakeFailed);
      this.#router.events.on("handshake:error:other", (event) => {
        // Only this user can connect to the ipc socket (its file mode), and a
        // peer there that hangs up before a word (libzmq then reads a reset,
        // or an end it reports as EPIPE) is another gateway checking whether
        // the socket is live (ipc-socket.ts claimIpcPath), not a worker.
        if (event.address.startsWith("ipc://") && HUNG_UP.has(event.error.code)) return;
        handshakeFailed();
      });
      this.#router.events.on("handshake:error:auth", () => options.onAuthFailure?.("unknown_key"));
      auth.on("changed", () => this.#dropRevoked(auth));
    }
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
      auth,
      authFailed: (reason, address, message) => {
        options.onAuthFailure?.(reason);
        if (this.#logOnce.allow(`refused ${address}`)) log.warn({ address, reason, problem: message }, "worker registration refused");
      },
      clipperV3Models: options.clipperV3Models ?? null,
      mayLog: (key) => this.#logOnce.allow(key),
    };
    this.#v3 = new ClipperV3Dialect(ctx);
    this.#native = new NativeDialect(ctx);
  }

  /** Dismisses this port's replicas whose key the allow-list no longer admits for their model. */
  #dropRevoked(auth: WorkerAuth): void {
    for (const r of [...this.#registry.all()]) {
      if (r.link !== this.#native || r.principal === null || auth.allows(r.principal, r.modelName)) continue;
      this.#registry.dismiss(r, "key-revoked", "worker key revoked (--worker-keys)");
    }
  }

  get port(): number {
    return this.#port;
  }

  /** `ipc://<path>` while the socket is bound there too; null otherwise. */
  get ipcEndpoint(): string | null {
    return this.#ipc?.address ?? null;
  }

  async start(): Promise<void> {
    await this.#zap?.start();
    await this.#router.bind(`tcp://${this.#options.host}:${this.#options.port}`);
    const endpoint = this.#router.lastEndpoint ?? "";
    this.#port = Number(endpoint.slice(endpoint.lastIndexOf(":") + 1));
    const ipcPath = this.#options.ipcPath ?? null;
    if (ipcPath !== null) this.#ipc = await bindIpcSocket(ipcPath, (address) => this.#router.bind(address));
    this.#receiving = this.#receiveLoop();
  }

  /** Closes the socket at once (linger 0: unsent messages are dropped), waits for the receive loop to end, and removes the socket file. */
  async close(): Promise<void> {
    this.#sendQueues.close();
    this.#router.close();
    await this.#receiving?.catch(() => {});
    await this.#zap?.close();
    await this.#ipc?.release().catch((err: unknown) => this.#log.warn({ err, path: this.#ipc?.path }, "could not remove the worker socket file"));
  }

  async #receiveLoop(): Promise<void> {
    try {
      for await (const [identity, ...frames] of this.#router) {
        if (identity === undefined) continue;
        try {
          const native = isNative(frames);
          if (native ? this.#dialects === "clipper-v3" : this.#dialects === "native") this.#stray(identity, native);
          else if (native) this.#native.handle(identity, frames);
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

  /** A message in the dialect this port does not speak: dropped, and logged now and then. */
  #stray(identity: Buffer, native: boolean): void {
    const address = identity.toString("hex");
    if (!this.#logOnce.allow(`stray ${address}`)) return;
    if (native) this.#log.warn({ address }, "native worker message on the Clipper v3 port ignored: native workers connect to the CURVE worker port");
    else this.#log.warn({ address }, "Clipper v3 message on the CURVE worker port ignored: Clipper containers connect to --clipper-v3-port");
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
