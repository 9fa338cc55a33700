/**
 * The worker's session with one gateway address (worker/session-state.ts
 * draws its life): register and re-register, beat at the interval the
 * gateway names, reconnect with backoff when the gateway falls silent, hand
 * batches to the worker, and carry answers back on the connection they came
 * on. A worker serving several gateways holds one session per address; they
 * share nothing but the worker's batch slots.
 */
import type { BatchRequest, GatewayMessage, WorkerRegistered } from "../gen/clipper/v1/heartbeat.js";
import { backoffDelayMs } from "../core/backoff.js";
import type { Logger } from "../core/telemetry/logger.js";
import type { BatchAnswer } from "./batch-executor.js";
import { GatewayConnection } from "./gateway-connection.js";
import { checkTransition, type SessionState } from "./session-state.js";
import type { Settings } from "./worker-options.js";

/** Shortest heartbeat interval taken from the gateway, in ms: a bogus tiny value must not turn beats into a busy loop. */
const MIN_BEAT_INTERVAL_MS = 10;

/** What a session asks of the worker that owns it. */
export interface SessionOwner {
  /** A batch arrived on `conn`; answer it through {@link GatewaySession.reply} with the same `conn`. */
  onBatch(session: GatewaySession, conn: GatewayConnection, request: BatchRequest, payloads: Buffer[]): void;
  /** The gateway sent DrainWorker: before registration that refuses us, after it asks the worker to drain. */
  onDrainRequest(session: GatewaySession, reason: string, refused: boolean): void;
  /** The connection `conn` is gone (reconnect or close): batches of it not yet started have nobody to answer to. */
  onConnectionLost(conn: GatewayConnection): void;
  /** What the worker's beats report: batches running and items not yet answered, across all sessions. */
  load(): { inFlight: number; pendingItems: number };
}

export class GatewaySession {
  /** The gateway address, tcp://host:port or ipc:///path. */
  readonly address: string;
  readonly #s: Settings;
  readonly #log: Logger;
  readonly #owner: SessionOwner;
  #state: SessionState;
  #beatIntervalMs: number;
  #evictionTimeoutMs: number;
  #reconnectAttempt = 0;
  #registerInFlight = false;
  #beatInFlight = false;
  #controlTimer: NodeJS.Timeout | null = null;

  /** Opens the first connection and starts registering at once. */
  constructor(address: string, s: Settings, log: Logger, owner: SessionOwner) {
    this.address = address;
    this.#s = s;
    this.#log = log.child({ gateway: address });
    this.#owner = owner;
    this.#beatIntervalMs = s.heartbeatMs;
    this.#evictionTimeoutMs = s.evictionTimeoutMs;
    // The initial state, not a transition: there is nothing to move from.
    this.#state = { phase: "registering", conn: this.#connect() };
    this.#register();
  }

  get phase(): SessionState["phase"] {
    return this.#state.phase;
  }

  /** The replica id this gateway knows us by, or null while it knows none. */
  get replicaId(): number | null {
    const state = this.#state;
    return state.phase === "serving" || state.phase === "draining" ? state.replicaId : null;
  }

  /** The connection of the current state, if it has one. */
  get #conn(): GatewayConnection | null {
    const state = this.#state;
    return state.phase === "stopped" || state.phase === "reconnecting" ? null : state.conn;
  }

  /**
   * The one place the state changes. An illegal move throws: every caller
   * checks the phase it expects first, so reaching one means the session is
   * wrong, and carrying on (say, connecting after close) would leak sockets.
   */
  #transition(to: SessionState): void {
    const from = this.#state;
    checkTransition(from.phase, to.phase);
    // Leaving reconnecting ends its backoff, whichever way it is left.
    if (from.phase === "reconnecting") clearTimeout(from.timer);
    const lost = from.phase !== "reconnecting" && from.phase !== "stopped" && (to.phase === "reconnecting" || to.phase === "stopped") ? from.conn : null;
    this.#state = to;
    this.#log.debug({ from: from.phase, to: to.phase }, "session state changed");
    if (lost !== null) this.#owner.onConnectionLost(lost);
  }

  // --- connections ------------------------------------------------------------

  /** A new connection; its routing identity is unknown to the gateway, so nothing is in flight on it. */
  #connect(): GatewayConnection {
    const conn: GatewayConnection = new GatewayConnection(
      { gateway: this.address, pingIntervalMs: this.#s.heartbeatMs, pingTimeoutMs: this.#evictionTimeoutMs, log: this.#log, credentials: this.#s.credentials },
      { onMessage: (message, payloads) => this.#onMessage(conn, message, payloads) },
    );
    this.#registerInFlight = false;
    this.#beatInFlight = false;
    return conn;
  }

  /** Sends RegisterWorker now and retries it every interval until answered. */
  #register(): void {
    this.#sendRegister();
    this.#scheduleControl();
  }

  /** Registration retries and heartbeats share one timer: which one depends on the phase. */
  #scheduleControl(): void {
    if (this.#controlTimer !== null) clearInterval(this.#controlTimer);
    const registering = this.#state.phase === "registering";
    const interval = registering ? this.#s.heartbeatMs : this.#beatIntervalMs;
    this.#controlTimer = setInterval(() => (this.#state.phase === "registering" ? this.#sendRegister() : this.#sendBeat()), interval);
    this.#controlTimer.unref();
  }

  /** Called by the worker's watchdog: a gateway silent past the eviction timeout gets a new connection after a backoff. */
  watchdog(): void {
    const state = this.#state;
    if (state.phase !== "registering" && state.phase !== "serving") return;
    // Before registration the gateway owes us an answer, so silence means
    // trouble; after it, only a dead link does (see GatewayConnection.silenceMs).
    const silentMs = state.conn.silenceMs(state.phase === "serving");
    if (silentMs <= this.#evictionTimeoutMs) return;
    const delayMs = backoffDelayMs(this.#reconnectAttempt);
    this.#log.warn(
      { silentMs: Number.isFinite(silentMs) ? Math.round(silentMs) : null, attempt: this.#reconnectAttempt + 1, delayMs, replicaId: this.replicaId },
      "gateway silent, reconnecting",
    );
    this.#reconnectAttempt++;
    state.conn.close(false);
    const timer = setTimeout(() => this.#reconnect(), delayMs);
    timer.unref();
    this.#transition({ phase: "reconnecting", timer });
  }

  #reconnect(): void {
    // The timer is cleared when reconnecting is left, so this is belt and braces.
    if (this.#state.phase !== "reconnecting") return;
    this.#transition({ phase: "registering", conn: this.#connect() });
    this.#register();
  }

  // --- outgoing -----------------------------------------------------------------

  #sendRegister(): void {
    const conn = this.#conn;
    // One registration in flight at a time: with the link down the send waits,
    // and piled-up copies would register us several times once it is back.
    if (conn === null || this.#registerInFlight) return;
    this.#registerInFlight = true;
    const s = this.#s;
    const credentials =
      s.credentials === null || conn.routingId === null
        ? { curvePublicKey: Buffer.alloc(0), registrationProof: Buffer.alloc(0) }
        : s.credentials.registration(conn.routingId, s.model, s.version);
    void conn
      .send({
        kind: {
          $case: "register",
          value: {
            modelName: s.model,
            modelVersion: s.version,
            inputType: s.inputTypeText,
            maxBatchSize: s.maxBatchSize,
            concurrency: s.concurrency,
            description: s.description,
            // The same on every gateway, so they count this process once.
            workerId: s.workerId,
            ...credentials,
          },
        },
      })
      .then(() => {
        if (this.#conn === conn) this.#registerInFlight = false;
      });
  }

  #sendBeat(): void {
    const conn = this.#conn;
    if (conn === null || this.#beatInFlight) return;
    this.#beatInFlight = true;
    void conn.send({ kind: { $case: "beat", value: this.#owner.load() } }).then(() => {
      if (this.#conn === conn) this.#beatInFlight = false;
    });
  }

  /** Answers a batch on the connection it came on; dropped when that connection is gone (the gateway identity it came from no longer exists). */
  reply(conn: GatewayConnection, request: BatchRequest, answer: BatchAnswer, waitMicros = 0): void {
    if (conn !== this.#conn) {
      this.#log.debug({ batchId: request.batchId }, "dropped the answer to a batch from a closed connection");
      return;
    }
    void conn.send(
      { kind: { $case: "result", value: { batchId: request.batchId, items: answer.items, modelMicros: answer.modelMicros, modelError: answer.modelError ?? "", waitMicros } } },
      answer.outputs,
    );
  }

  // --- incoming -------------------------------------------------------------------

  #onMessage(conn: GatewayConnection, message: GatewayMessage, payloads: Buffer[]): void {
    const kind = message.kind;
    // A closed connection's last words are for a gateway identity that no longer exists.
    if (kind === undefined || conn !== this.#conn) return;
    switch (kind.$case) {
      case "registered":
        this.#onRegistered(kind.value);
        return;
      case "batch":
        this.#owner.onBatch(this, conn, kind.value, payloads);
        return;
      case "reregister":
        this.#onReregister();
        return;
      case "drain":
        this.#owner.onDrainRequest(this, kind.value.reason || "gateway asked to drain", this.#state.phase === "registering");
        return;
    }
  }

  #onRegistered(r: WorkerRegistered): void {
    const state = this.#state;
    if (state.phase !== "registering" && state.phase !== "serving") return;
    // A repeated registration (we retry until answered) may be answered twice; the same id is no news.
    if (state.phase === "serving" && state.replicaId === r.replicaId) return;
    this.#transition({ phase: "serving", conn: state.conn, replicaId: r.replicaId });
    this.#reconnectAttempt = 0;
    if (r.heartbeatIntervalMs > 0) this.#beatIntervalMs = Math.max(MIN_BEAT_INTERVAL_MS, r.heartbeatIntervalMs);
    if (r.evictionTimeoutMs > 0) this.#evictionTimeoutMs = r.evictionTimeoutMs;
    this.#log.info(
      {
        replicaId: r.replicaId,
        model: this.#s.model,
        version: this.#s.version,
        heartbeatIntervalMs: this.#beatIntervalMs,
        evictionTimeoutMs: this.#evictionTimeoutMs,
      },
      "worker registered",
    );
    this.#scheduleControl();
  }

  #onReregister(): void {
    const state = this.#state;
    if (state.phase !== "serving" && state.phase !== "registering") return;
    this.#log.info({ previousReplicaId: this.replicaId }, "gateway asked to re-register");
    if (state.phase === "serving") this.#transition({ phase: "registering", conn: state.conn });
    // A registration still in flight was sent for the identity the gateway just forgot.
    this.#registerInFlight = false;
    this.#register();
  }

  // --- draining and closing ---------------------------------------------------------

  /** Tells the gateway we drain (DrainWorker); keeps answering batches already taken, and beating. */
  drain(reason: string): void {
    const state = this.#state;
    if (state.phase === "draining" || state.phase === "stopped") return;
    const conn = state.phase === "reconnecting" ? null : state.conn;
    this.#transition({ phase: "draining", conn, replicaId: this.replicaId });
    void conn?.send({ kind: { $case: "drain", value: { reason } } });
  }

  /** Resolves once the queued messages are handed to zeromq (at most `timeoutMs`). */
  async flush(timeoutMs: number): Promise<void> {
    await this.#conn?.flush(timeoutMs);
  }

  /** Closes for good; `graceful` lets zeromq deliver what it holds for a moment. */
  close(graceful: boolean): void {
    const conn = this.#conn;
    if (this.#state.phase === "stopped") return;
    if (this.#controlTimer !== null) clearInterval(this.#controlTimer);
    this.#controlTimer = null;
    this.#transition({ phase: "stopped" });
    conn?.close(graceful);
  }
}
