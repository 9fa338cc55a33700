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

export { DEFAULT_EVICTION_TIMEOUT_MS, DEFAULT_HEARTBEAT_MS, type WorkerOptions } from "./worker-options.js";
export type { PredictFn } from "./batch-executor.js";
export type { ModelInput } from "./input-decoding.js";

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
 * gateway asked it to drain ("drained"), or because the gateway refused its
 * registration, answering it with DrainWorker ("refused").
 */
export interface WorkerExit {
  readonly kind: "stopped" | "drained" | "refused";
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
  runtime.start();
  return {
    drain: (reason) => runtime.drain(reason ?? "worker shutting down"),
    close: () => runtime.close(),
    replicaId: () => runtime.replica,
    closed: runtime.closed,
  };
}

type Phase = "registering" | "registered" | "draining" | "closed";

interface Job {
  readonly request: BatchRequest;
  readonly payloads: Buffer[];
  /** The session the batch came on; its answer goes back only there. */
  readonly conn: GatewayConnection;
}

class WorkerRuntime {
  replica: number | null = null;
  readonly closed: Promise<WorkerExit>;
  /** Set by whichever stop came first. */
  private exit: WorkerExit | null = null;
  private phase: Phase = "registering";
  private conn: GatewayConnection | null = null;
  private beatIntervalMs: number;
  private evictionTimeoutMs: number;
  private reconnectAttempt = 0;
  private registerInFlight = false;
  private beatInFlight = false;
  /** Items received and not yet answered (the beat's pending_items). */
  private pendingItems = 0;
  private readonly slots: BatchSlots<Job>;
  private controlTimer: NodeJS.Timeout | null = null;
  private watchdogTimer: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private drainPromise: Promise<void> | null = null;
  private lastModelErrorLogMs = Number.NEGATIVE_INFINITY;
  private resolveClosed: (exit: WorkerExit) => void = () => {};

  constructor(
    private readonly s: Settings,
    private readonly log: Logger,
  ) {
    this.beatIntervalMs = s.heartbeatMs;
    this.evictionTimeoutMs = s.evictionTimeoutMs;
    this.slots = new BatchSlots(s.concurrency, MAX_WAITING_BATCHES, (job) => this.execute(job));
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
  }

  start(): void {
    this.openConnection();
    // Deliberately not unref()ed: it is what keeps the process alive between
    // two sessions (during a reconnect backoff no socket is open), until close().
    this.watchdogTimer = setInterval(() => this.watchdog(), WATCHDOG_TICK_MS);
  }

  drain(reason: string): Promise<void> {
    this.exit ??= { kind: "stopped", reason };
    this.drainPromise ??= this.runDrain(reason);
    return this.drainPromise;
  }

  async close(): Promise<void> {
    this.exit ??= { kind: "stopped", reason: "closed" };
    this.shutdown(false);
  }

  // --- sessions -------------------------------------------------------------

  private openConnection(): void {
    const conn: GatewayConnection = new GatewayConnection(
      { gateway: this.s.gateway, pingIntervalMs: this.s.heartbeatMs, pingTimeoutMs: this.evictionTimeoutMs, log: this.log },
      { onMessage: (message, payloads) => this.onMessage(conn, message, payloads) },
    );
    this.conn = conn;
    // Each session starts unregistered: the new identity is unknown to the gateway.
    this.registerInFlight = false;
    this.beatInFlight = false;
    this.sendRegister();
    this.scheduleControl();
  }

  /** Registration retries and heartbeats share one timer: which one depends on the phase. */
  private scheduleControl(): void {
    if (this.controlTimer !== null) clearInterval(this.controlTimer);
    const interval = this.phase === "registering" ? this.s.heartbeatMs : this.beatIntervalMs;
    this.controlTimer = setInterval(() => (this.phase === "registering" ? this.sendRegister() : this.sendBeat()), interval);
    this.controlTimer.unref();
  }

  private watchdog(): void {
    if (this.conn === null || (this.phase !== "registering" && this.phase !== "registered")) return;
    // Before registration the gateway owes us an answer, so silence means
    // trouble; after it, only a dead link does (see GatewayConnection.silenceMs).
    const silentMs = this.conn.silenceMs(this.phase === "registered");
    if (silentMs <= this.evictionTimeoutMs) return;
    const delayMs = backoffDelayMs(this.reconnectAttempt);
    this.log.warn(
      { silentMs: Number.isFinite(silentMs) ? Math.round(silentMs) : null, attempt: this.reconnectAttempt + 1, delayMs, replicaId: this.replica },
      "gateway silent, reconnecting",
    );
    this.reconnectAttempt++;
    this.conn.close(false);
    this.conn = null;
    this.dropWaiting();
    this.replica = null;
    this.phase = "registering";
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.phase === "registering") this.openConnection();
    }, delayMs);
    this.reconnectTimer.unref();
  }

  // --- outgoing control messages ----------------------------------------------

  private sendRegister(): void {
    const conn = this.conn;
    // One registration in flight at a time: with the link down the send waits,
    // and piled-up copies would register us several times once it is back.
    if (conn === null || this.registerInFlight) return;
    this.registerInFlight = true;
    void conn
      .send({
        kind: {
          $case: "register",
          value: {
            modelName: this.s.model,
            modelVersion: this.s.version,
            inputType: this.s.inputTypeText,
            maxBatchSize: this.s.maxBatchSize,
            concurrency: this.s.concurrency,
            description: this.s.description,
          },
        },
      })
      .then(() => {
        if (this.conn === conn) this.registerInFlight = false;
      });
  }

  private sendBeat(): void {
    const conn = this.conn;
    if (conn === null || this.beatInFlight) return;
    this.beatInFlight = true;
    void conn.send({ kind: { $case: "beat", value: { inFlight: this.slots.running, pendingItems: this.pendingItems } } }).then(() => {
      if (this.conn === conn) this.beatInFlight = false;
    });
  }

  // --- incoming messages ----------------------------------------------------

  private onMessage(conn: GatewayConnection, message: GatewayMessage, payloads: Buffer[]): void {
    const kind = message.kind;
    // A closed session's last words are for a gateway identity that no longer exists.
    if (kind === undefined || conn !== this.conn) return;
    switch (kind.$case) {
      case "registered":
        this.onRegistered(kind.value);
        return;
      case "batch":
        this.onBatch(conn, kind.value, payloads);
        return;
      case "reregister":
        if (this.phase !== "registered" && this.phase !== "registering") return;
        this.log.info({ previousReplicaId: this.replica }, "gateway asked to re-register");
        this.replica = null;
        this.phase = "registering";
        this.registerInFlight = false;
        this.sendRegister();
        this.scheduleControl();
        return;
      case "drain": {
        const reason = kind.value.reason || "gateway asked to drain";
        // Before registration, a DrainWorker is the gateway's way of refusing us.
        const refused = this.phase === "registering";
        this.exit ??= { kind: refused ? "refused" : "drained", reason };
        if (refused) this.log.error({ reason }, "gateway refused the registration");
        else this.log.info({ reason }, "gateway asked to drain");
        void this.drain(reason);
        return;
      }
    }
  }

  private onRegistered(r: WorkerRegistered): void {
    if (this.phase !== "registering" && this.phase !== "registered") return;
    // A repeated registration (we retry until answered) may be answered twice; the same id is no news.
    if (this.phase === "registered" && this.replica === r.replicaId) return;
    this.phase = "registered";
    this.replica = r.replicaId;
    this.reconnectAttempt = 0;
    if (r.heartbeatIntervalMs > 0) this.beatIntervalMs = Math.max(MIN_BEAT_INTERVAL_MS, r.heartbeatIntervalMs);
    if (r.evictionTimeoutMs > 0) this.evictionTimeoutMs = r.evictionTimeoutMs;
    this.log.info(
      {
        replicaId: r.replicaId,
        model: this.s.model,
        version: this.s.version,
        heartbeatIntervalMs: this.beatIntervalMs,
        evictionTimeoutMs: this.evictionTimeoutMs,
      },
      "worker registered",
    );
    this.scheduleControl();
  }

  private onBatch(conn: GatewayConnection, request: BatchRequest, payloads: Buffer[]): void {
    this.pendingItems += payloads.length;
    if (this.phase === "draining" || this.phase === "closed") {
      this.s.metrics?.rejected(payloads.length);
      this.reply(conn, request, payloads.length, failAll(payloads.length, Code.UNAVAILABLE, "worker draining"));
      return;
    }
    if (!this.slots.offer({ request, payloads, conn })) {
      const message = `worker overloaded: ${this.slots.running} batches running and ${this.slots.queued} waiting`;
      this.s.metrics?.rejected(payloads.length);
      this.reply(conn, request, payloads.length, failAll(payloads.length, Code.RESOURCE_EXHAUSTED, message));
    }
  }

  private async execute(job: Job): Promise<void> {
    const { request, payloads } = job;
    const answer = await inPredictSpan(request, payloads.length, this.s.model, this.s.version, async () => {
      const a = await runBatch({ inputType: this.s.inputType, predict: this.s.predict, maxBatchSize: this.s.maxBatchSize }, request, payloads);
      // Inside the span, so the line carries the batch's trace id.
      if (a.modelError !== null) this.logModelError(request.batchId, a.modelError);
      return a;
    });
    this.s.metrics?.batchRan(answer);
    this.reply(job.conn, request, payloads.length, answer);
  }

  private reply(conn: GatewayConnection, request: BatchRequest, itemCount: number, answer: BatchAnswer): void {
    this.pendingItems -= itemCount;
    // After a reconnect the old session's gateway identity is gone: nobody to answer.
    if (conn !== this.conn) {
      this.log.debug({ batchId: request.batchId }, "dropped the answer to a batch from a closed session");
      return;
    }
    void conn.send(
      { kind: { $case: "result", value: { batchId: request.batchId, items: answer.items, modelMicros: answer.modelMicros } } },
      answer.outputs,
    );
  }

  /** Forgets batches not yet started (their session is gone, so nobody awaits their answers). */
  private dropWaiting(): void {
    for (const job of this.slots.clearWaiting()) this.pendingItems -= job.payloads.length;
  }

  private logModelError(batchId: number, error: string): void {
    const now = performance.now();
    if (now - this.lastModelErrorLogMs < MODEL_ERROR_LOG_INTERVAL_MS) return;
    this.lastModelErrorLogMs = now;
    this.log.warn({ batchId, error }, "model call failed; the batch was answered with errors");
  }

  // --- shutdown -------------------------------------------------------------

  private async runDrain(reason: string): Promise<void> {
    if (this.phase === "closed") return;
    this.phase = "draining";
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.log.info({ reason, running: this.slots.running, waiting: this.slots.queued }, "worker draining");
    void this.conn?.send({ kind: { $case: "drain", value: { reason } } });
    await this.slots.idle();
    await this.conn?.flush(DRAIN_FLUSH_TIMEOUT_MS);
    this.shutdown(true);
  }

  private shutdown(graceful: boolean): void {
    if (this.phase === "closed") return;
    this.phase = "closed";
    for (const timer of [this.controlTimer, this.watchdogTimer]) if (timer !== null) clearInterval(timer);
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.controlTimer = this.watchdogTimer = this.reconnectTimer = null;
    this.slots.clearWaiting();
    this.conn?.close(graceful);
    this.conn = null;
    this.replica = null;
    this.log.info({ graceful }, "worker closed");
    // A drain waiting for running batches ends here too (close() during drain).
    this.slots.release();
    this.resolveClosed(this.exit ?? { kind: "stopped", reason: "closed" });
  }
}
