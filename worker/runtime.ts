/**
 * The model-replica runtime, native dialect (design.md § Worker RPC,
 * heartbeat.proto): register with the gateway, beat, run batches at most
 * `concurrency` at a time, answer per item, reconnect when the gateway goes
 * silent, and drain gracefully.
 */
import { performance } from "node:perf_hooks";
import type { BatchRequest, GatewayMessage, WorkerRegistered } from "../gen/clipper/v1/heartbeat.js";
import type { Logger } from "../core/telemetry/logger.js";
import { status as Code } from "@grpc/grpc-js";
import { failAll, runBatch, type BatchAnswer } from "./batch-executor.js";
import { backoffDelayMs } from "../core/backoff.js";
import { BatchSlots } from "./batch-slots.js";
import { inPredictSpan } from "./batch-span.js";
import { GatewayConnection } from "./gateway-connection.js";
import { checkOptions, type Settings, type WorkerOptions } from "./worker-options.js";
import { checkTransition, type WorkerState } from "./worker-state.js";

/** How often the silence watchdog looks, in ms: acts within 0.1 s of the timeout for the price of a comparison. */
const WATCHDOG_TICK_MS = 100;

/**
 * Batches held beyond the running ones before new ones are refused with
 * RESOURCE_EXHAUSTED. The gateway sends only as many as there are free slots,
 * so this only bounds memory against a misbehaving gateway.
 */
const MAX_WAITING_BATCHES = 64;

/** Shortest heartbeat interval taken from the gateway, in ms: a bogus tiny value must not turn beats into a busy loop. */
const MIN_BEAT_INTERVAL_MS = 10;

/** Longest a drain waits for its last messages to reach zeromq, in ms (the link may be down). */
const DRAIN_FLUSH_TIMEOUT_MS = 2_000;

/** Least gap between two "model call failed" log lines, in ms: lifecycle logs, not one per batch. */
const MODEL_ERROR_LOG_INTERVAL_MS = 10_000;

/**
 * How a worker stopped: by drain() or close() ("stopped"), because the
 * gateway asked it to drain ("drained"), because the gateway refused its
 * registration, answering it with DrainWorker ("refused"), or because a
 * model call ran past the model timeout and did not return within as long
 * again ("hung": only a new process gets the model back).
 */
export interface WorkerExit {
  readonly kind: "stopped" | "drained" | "refused" | "hung";
  readonly reason: string;
}

/** A running worker. */
export interface WorkerHandle {
  /**
   * Graceful stop: tells the gateway (DrainWorker), answers new batches with
   * UNAVAILABLE, finishes the batches already taken, then closes. Idempotent.
   */
  drain(reason?: string): Promise<void>;
  /** Immediate stop: closes the socket; results of running batches are dropped. */
  close(): Promise<void>;
  /** The replica id the gateway assigned, or null while not registered. */
  replicaId(): number | null;
  /** Resolves once the worker has stopped, whether by drain(), close() or the gateway's DrainWorker. */
  readonly closed: Promise<WorkerExit>;
}

/**
 * Starts a worker: connects to the gateway and registers (retrying every
 * heartbeat interval until the gateway answers). Throws a TypeError for
 * invalid options; everything after that is handled and logged, never thrown.
 */
export function startWorker(options: WorkerOptions): WorkerHandle {
  const runtime = new WorkerRuntime(checkOptions(options), options.log.child({ component: "worker" }));
  return {
    drain: (reason) => runtime.drain(reason ?? "worker shutting down"),
    close: () => runtime.close(),
    replicaId: () => runtime.replicaId,
    closed: runtime.closed,
  };
}

interface Job {
  readonly request: BatchRequest;
  readonly payloads: Buffer[];
  /** The session the batch came on; its answer goes back only there. */
  readonly conn: GatewayConnection;
}

/**
 * One worker's life (worker/worker-state.ts). Constructing it starts it:
 * the first session opens and registration begins at once.
 */
class WorkerRuntime {
  readonly closed: Promise<WorkerExit>;
  readonly #s: Settings;
  readonly #log: Logger;
  readonly #slots: BatchSlots<Job>;
  #state: WorkerState;
  /** Set by whichever stop came first. */
  #exit: WorkerExit | null = null;
  #beatIntervalMs: number;
  #evictionTimeoutMs: number;
  #reconnectAttempt = 0;
  #registerInFlight = false;
  #beatInFlight = false;
  /** Items received and not yet answered (the beat's pending_items). */
  #pendingItems = 0;
  #controlTimer: NodeJS.Timeout | null = null;
  #watchdogTimer: NodeJS.Timeout | null = null;
  #drainPromise: Promise<void> | null = null;
  #lastModelErrorLogMs = Number.NEGATIVE_INFINITY;
  #resolveClosed: (exit: WorkerExit) => void = () => {};

  constructor(s: Settings, log: Logger) {
    this.#s = s;
    this.#log = log;
    this.#beatIntervalMs = s.heartbeatMs;
    this.#evictionTimeoutMs = s.evictionTimeoutMs;
    this.#slots = new BatchSlots(s.concurrency, MAX_WAITING_BATCHES, (job) => this.#execute(job));
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    // The initial state, not a transition: there is nothing to move from.
    this.#state = { phase: "registering", conn: this.#newSession() };
    this.#register();
    // Deliberately not unref()ed: it is what keeps the process alive between
    // two sessions (during a reconnect backoff no socket is open), until close().
    this.#watchdogTimer = setInterval(() => this.#watchdog(), WATCHDOG_TICK_MS);
  }

  /** The replica id the gateway knows us by, or null while it knows none. */
  get replicaId(): number | null {
    const state = this.#state;
    return state.phase === "serving" || state.phase === "draining" ? state.replicaId : null;
  }

  drain(reason: string): Promise<void> {
    this.#exit ??= { kind: "stopped", reason };
    this.#drainPromise ??= this.#runDrain(reason);
    return this.#drainPromise;
  }

  async close(): Promise<void> {
    this.#exit ??= { kind: "stopped", reason: "closed" };
    this.#shutdown(false);
  }

  /**
   * The one place the state changes. An illegal move throws: every caller
   * checks the phase it expects first, so reaching one means the runtime is
   * wrong, and carrying on (say, opening a session after close()) would leak
   * sockets and keep a stopped worker alive. Thrown from a gateway message
   * it is logged by GatewayConnection and the state stays as it was; thrown
   * from a timer it ends the process, which the gateway then evicts.
   */
  #transition(to: WorkerState): void {
    const from = this.#state;
    checkTransition(from.phase, to.phase);
    // Leaving reconnecting ends its backoff, whichever way it is left.
    if (from.phase === "reconnecting") clearTimeout(from.timer);
    this.#state = to;
    this.#log.debug({ from: from.phase, to: to.phase }, "worker state changed");
  }

  /** The session of the current state, if it has one. */
  #session(): GatewayConnection | null {
    const state = this.#state;
    return state.phase === "stopped" || state.phase === "reconnecting" ? null : state.conn;
  }

  // --- sessions -------------------------------------------------------------

  /** Opens a new session; its identity is unknown to the gateway, so nothing is in flight on it. */
  #newSession(): GatewayConnection {
    const conn: GatewayConnection = new GatewayConnection(
      { gateway: this.#s.gateway, pingIntervalMs: this.#s.heartbeatMs, pingTimeoutMs: this.#evictionTimeoutMs, log: this.#log, credentials: this.#s.credentials },
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

  #watchdog(): void {
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
    this.#dropWaiting();
  }

  #reconnect(): void {
    // The timer is cleared when reconnecting is left, so this is belt and braces.
    if (this.#state.phase !== "reconnecting") return;
    this.#transition({ phase: "registering", conn: this.#newSession() });
    this.#register();
  }

  // --- outgoing control messages ----------------------------------------------

  #sendRegister(): void {
    const conn = this.#session();
    // One registration in flight at a time: with the link down the send waits,
    // and piled-up copies would register us several times once it is back.
    if (conn === null || this.#registerInFlight) return;
    this.#registerInFlight = true;
    const s = this.#s;
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
            workerId: s.workerId,
            ...credentialsFor(s, conn),
          },
        },
      })
      .then(() => {
        if (this.#session() === conn) this.#registerInFlight = false;
      });
  }

  #sendBeat(): void {
    const conn = this.#session();
    if (conn === null || this.#beatInFlight) return;
    this.#beatInFlight = true;
    void conn.send({ kind: { $case: "beat", value: { inFlight: this.#slots.running, pendingItems: this.#pendingItems } } }).then(() => {
      if (this.#session() === conn) this.#beatInFlight = false;
    });
  }

  // --- incoming messages ----------------------------------------------------

  #onMessage(conn: GatewayConnection, message: GatewayMessage, payloads: Buffer[]): void {
    const kind = message.kind;
    // A closed session's last words are for a gateway identity that no longer exists.
    if (kind === undefined || conn !== this.#session()) return;
    switch (kind.$case) {
      case "registered":
        this.#onRegistered(kind.value);
        return;
      case "batch":
        this.#onBatch(conn, kind.value, payloads);
        return;
      case "reregister":
        this.#onReregister();
        return;
      case "drain":
        this.#onDrainRequest(kind.value.reason || "gateway asked to drain");
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

  #onDrainRequest(reason: string): void {
    // Before registration, a DrainWorker is the gateway's way of refusing us.
    const refused = this.#state.phase === "registering";
    this.#exit ??= { kind: refused ? "refused" : "drained", reason };
    if (refused) this.#log.error({ reason }, "gateway refused the registration");
    else this.#log.info({ reason }, "gateway asked to drain");
    void this.drain(reason);
  }

  #onBatch(conn: GatewayConnection, request: BatchRequest, payloads: Buffer[]): void {
    this.#pendingItems += payloads.length;
    if (this.#state.phase === "draining" || this.#state.phase === "stopped") {
      this.#s.metrics?.rejected(payloads.length);
      this.#reply(conn, request, payloads.length, failAll(payloads.length, Code.UNAVAILABLE, "worker draining"));
      return;
    }
    if (!this.#slots.offer({ request, payloads, conn })) {
      const message = `worker overloaded: ${this.#slots.running} batches running and ${this.#slots.queued} waiting`;
      this.#s.metrics?.rejected(payloads.length);
      this.#reply(conn, request, payloads.length, failAll(payloads.length, Code.RESOURCE_EXHAUSTED, message));
    }
  }

  async #execute(job: Job): Promise<void> {
    const { request, payloads } = job;
    const s = this.#s;
    const answer = await inPredictSpan(request, payloads.length, s.model, s.version, async () => {
      const a = await runBatch({ inputType: s.inputType, predict: s.predict, maxBatchSize: s.maxBatchSize, modelTimeoutMs: s.modelTimeoutMs }, request, payloads);
      // Inside the span, so the line carries the batch's trace id.
      if (a.modelError !== null) this.#logModelError(request.batchId, a.modelError);
      return a;
    });
    s.metrics?.batchRan(answer);
    this.#reply(job.conn, request, payloads.length, answer);
    if (answer.overdue !== null) await this.#waitForOverdueModel(request.batchId, answer.overdue);
  }

  /**
   * A model call ran past the model timeout; its items are answered. It
   * keeps its slot while it runs (the model is still busy with it), and if
   * it has not returned after as long again, the worker stops with exit
   * kind "hung": its supervisor starts a fresh process.
   */
  async #waitForOverdueModel(batchId: number, overdue: Promise<void>): Promise<void> {
    const graceMs = this.#s.modelTimeoutMs;
    this.#log.warn({ batchId, modelTimeoutMs: graceMs }, "model call ran past the model timeout; its items were answered DEADLINE_EXCEEDED");
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<boolean>((resolve) => {
      timer = setTimeout(resolve, graceMs, true);
    });
    const hung = await Promise.race([overdue.then(() => false), gaveUp]);
    clearTimeout(timer);
    if (!hung || this.#state.phase === "stopped") return;
    const reason = `a model call has not returned ${2 * graceMs} ms after it started (model timeout ${graceMs} ms)`;
    this.#log.error({ batchId, modelTimeoutMs: graceMs }, "model hangs; stopping the worker");
    this.#exit = { kind: "hung", reason };
    this.#shutdown(false);
  }

  #reply(conn: GatewayConnection, request: BatchRequest, itemCount: number, answer: BatchAnswer): void {
    this.#pendingItems -= itemCount;
    // After a reconnect the old session's gateway identity is gone: nobody to answer.
    if (conn !== this.#session()) {
      this.#log.debug({ batchId: request.batchId }, "dropped the answer to a batch from a closed session");
      return;
    }
    void conn.send(
      { kind: { $case: "result", value: { batchId: request.batchId, items: answer.items, modelMicros: answer.modelMicros, modelError: answer.modelError ?? "" } } },
      answer.outputs,
    );
  }

  /** Forgets batches not yet started (their session is gone, so nobody awaits their answers). */
  #dropWaiting(): void {
    for (const job of this.#slots.clearWaiting()) this.#pendingItems -= job.payloads.length;
  }

  #logModelError(batchId: number, error: string): void {
    const now = performance.now();
    if (now - this.#lastModelErrorLogMs < MODEL_ERROR_LOG_INTERVAL_MS) return;
    this.#lastModelErrorLogMs = now;
    this.#log.warn({ batchId, error }, "model call failed; the batch was answered with errors");
  }

  // --- shutdown -------------------------------------------------------------

  async #runDrain(reason: string): Promise<void> {
    const state = this.#state;
    if (state.phase === "stopped") return;
    const conn = state.phase === "reconnecting" ? null : state.conn;
    this.#transition({ phase: "draining", conn, replicaId: this.replicaId });
    this.#log.info({ reason, running: this.#slots.running, waiting: this.#slots.queued }, "worker draining");
    void conn?.send({ kind: { $case: "drain", value: { reason } } });
    await this.#slots.idle();
    // close() may have ended the drain meanwhile, and with it the session.
    await this.#session()?.flush(DRAIN_FLUSH_TIMEOUT_MS);
    this.#shutdown(true);
  }

  #shutdown(graceful: boolean): void {
    const conn = this.#session();
    if (this.#state.phase === "stopped") return;
    this.#transition({ phase: "stopped" });
    for (const timer of [this.#controlTimer, this.#watchdogTimer]) if (timer !== null) clearInterval(timer);
    this.#controlTimer = this.#watchdogTimer = null;
    this.#slots.clearWaiting();
    conn?.close(graceful);
    this.#log.info({ graceful }, "worker closed");
    // A drain waiting for running batches ends here too (close() during drain).
    this.#slots.release();
    this.#resolveClosed(this.#exit ?? { kind: "stopped", reason: "closed" });
  }
}

/** The registration's CURVE fields for one session: empty without CURVE. */
function credentialsFor(s: Settings, conn: GatewayConnection): { curvePublicKey: Buffer; registrationProof: Buffer } {
  if (s.credentials === null || conn.routingId === null) return { curvePublicKey: Buffer.alloc(0), registrationProof: Buffer.alloc(0) };
  return s.credentials.registration(conn.routingId, s.model, s.version);
}
