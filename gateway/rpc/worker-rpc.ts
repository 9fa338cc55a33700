import { Router } from "zeromq";
import type { Logger } from "../../core/telemetry/logger.js";
import { isNative } from "../../core/wire/native.js";
import type { Dispatcher } from "../dispatcher.js";
import type { Replica, ReplicaRegistry, SentBatch } from "../replicas.js";
import type { Task } from "../task.js";
import { ClipperV3Dialect } from "./clipper-v3.js";
import { NativeDialect, nativeHeartbeatMs } from "./native.js";

/** How long one send may wait on a peer at its high-water mark before the peer counts as lost, in ms. */
const SEND_TIMEOUT_MS = 1_000;
/**
 * Clipper's Python containers heartbeat only every ~5 s while idle (their
 * 5 s poll, clipper.md §4.4), so they get at least this long before
 * eviction whatever the native timeout is, in ms.
 */
export const MIN_CLIPPER_V3_EVICTION_MS = 12_000;
/** How often an idle Clipper v3 container heartbeats (its socket poll timeout, clipper.md §4.4), in ms. */
const CLIPPER_V3_HEARTBEAT_MS = 5_000;

export interface WorkerRpcOptions {
  readonly host: string;
  readonly port: number;
  /** Silence after which a native replica is evicted, in ms. */
  readonly evictionMs: number;
  /** Told of heartbeat intervals a replica let pass in silence (metrics). */
  readonly onMissedHeartbeats?: (replica: Replica<Task>, count: number) => void;
}

/** What a dialect needs from the RPC service. */
export interface DialectContext {
  readonly registry: ReplicaRegistry<Task>;
  readonly dispatcher: Dispatcher;
  readonly log: Logger;
  readonly evictionMs: number;
  send(identity: Buffer, frames: Buffer[]): Promise<boolean>;
  now(): number;
}

/** A wire dialect: handles one peer message, and sends batches to its replicas. */
export interface WorkerDialect {
  handle(identity: Buffer, frames: Buffer[]): void;
  sendBatch(replica: Replica<Task>, batch: SentBatch<Task>, deadline: number): Promise<boolean>;
}

/**
 * The gateway's ZeroMQ ROUTER for model workers. One socket speaks two
 * dialects, told apart by the frame after the empty delimiter: the native
 * marker, or Clipper RPC v3. Sends go out one at a time (zeromq allows one
 * pending send per socket) with `mandatory` set, so a message to a gone or
 * stuck peer fails loudly instead of vanishing; that peer is then dropped.
 */
export class WorkerRpc {
  readonly #router: Router;
  readonly #options: WorkerRpcOptions;
  readonly #log: Logger;
  readonly #registry: ReplicaRegistry<Task>;
  readonly #v3: ClipperV3Dialect;
  readonly #native: NativeDialect;
  #sendChain: Promise<unknown> = Promise.resolve();
  #evictTimer: NodeJS.Timeout | null = null;
  #receiving: Promise<void> | null = null;
  #port = 0;

  constructor(registry: ReplicaRegistry<Task>, dispatcher: Dispatcher, log: Logger, options: WorkerRpcOptions) {
    this.#router = new Router({ mandatory: true, sendTimeout: SEND_TIMEOUT_MS, linger: 0 });
    this.#options = options;
    this.#log = log;
    this.#registry = registry;
    const ctx: DialectContext = {
      registry,
      dispatcher,
      log,
      evictionMs: options.evictionMs,
      send: (identity, frames) => this.#sendFrames(identity, frames),
      now: Date.now,
    };
    this.#v3 = new ClipperV3Dialect(ctx);
    this.#native = new NativeDialect(ctx);
  }

  get port(): number {
    return this.#port;
  }

  /** Sends a batch to a replica in its own dialect (the dispatcher's BatchSender). */
  sendBatch = (replica: Replica<Task>, batch: SentBatch<Task>, deadline: number): Promise<boolean> =>
    (replica.dialect === "native" ? this.#native : this.#v3).sendBatch(replica, batch, deadline);

  async start(): Promise<void> {
    await this.#router.bind(`tcp://${this.#options.host}:${this.#options.port}`);
    const endpoint = this.#router.lastEndpoint ?? "";
    this.#port = Number(endpoint.slice(endpoint.lastIndexOf(":") + 1));
    this.#receiving = this.#receiveLoop();
    const every = Math.max(50, Math.min(500, Math.floor(this.#options.evictionMs / 4)));
    this.#evictTimer = setInterval(() => this.#evictSilent(), every);
    this.#evictTimer.unref();
  }

  async close(): Promise<void> {
    if (this.#evictTimer !== null) clearInterval(this.#evictTimer);
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
  send(identity: Buffer, frames: Buffer[]): Promise<boolean> {
    return this.#sendFrames(identity, frames);
  }

  #sendFrames(identity: Buffer, frames: Buffer[]): Promise<boolean> {
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

  #evictSilent(): void {
    const now = Date.now();
    for (const r of [...this.#registry.all()]) {
      this.#countMissedBeats(r, now);
      const limit = r.dialect === "native" ? this.#options.evictionMs : Math.max(this.#options.evictionMs, MIN_CLIPPER_V3_EVICTION_MS);
      if (now - r.lastSeen > limit) this.#registry.remove(r, "evicted");
    }
  }

  /**
   * Reports each missed heartbeat once: a beat counts as missed when a
   * whole further interval has passed after it was due (one interval of
   * grace for jitter), so a native worker is evicted after two missed beats.
   * A Clipper v3 container sends nothing while it runs a batch, so only its
   * idle silence counts.
   */
  #countMissedBeats(r: Replica<Task>, now: number): void {
    if (r.missedSince !== r.lastSeen) {
      r.missedSince = r.lastSeen;
      r.missedBeats = 0;
    }
    if (r.dialect === "clipper-v3" && r.inFlight.size > 0) return;
    const interval = r.dialect === "native" ? nativeHeartbeatMs(this.#options.evictionMs) : CLIPPER_V3_HEARTBEAT_MS;
    const missed = Math.floor((now - r.lastSeen) / interval) - 1;
    if (missed > r.missedBeats) {
      this.#options.onMissedHeartbeats?.(r, missed - r.missedBeats);
      r.missedBeats = missed;
    }
  }
}
