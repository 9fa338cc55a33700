/**
 * The model-replica runtime, native dialect (design.md § Worker RPC,
 * heartbeat.proto): one session per gateway address (worker/gateway-session.ts:
 * register, beat, reconnect when a gateway goes silent), batches from every
 * gateway run at most `concurrency` at a time in one set of slots, answers
 * go back per item on the connection each batch came on, and a drain covers
 * every session.
 */
import { performance } from "node:perf_hooks";
import type { BatchRequest } from "../gen/clipper/v1/heartbeat.js";
import type { Logger } from "../core/telemetry/logger.js";
import { status as Code } from "@grpc/grpc-js";
import { failAll, runBatch } from "./batch-executor.js";
import { BatchSlots } from "./batch-slots.js";
import { inPredictSpan } from "./batch-span.js";
import type { GatewayConnection } from "./gateway-connection.js";
import { GatewayDiscovery } from "./gateway-discovery.js";
import { formatWorkerEndpoint } from "../core/worker-endpoint.js";
import { GatewaySession, type SessionOwner } from "./gateway-session.js";
import { checkOptions, type Settings, type WorkerOptions } from "./worker-options.js";

/** How often the silence watchdog looks, in ms: acts within 0.1 s of the timeout for the price of a comparison. */
const WATCHDOG_TICK_MS = 100;

/**
 * Batches held beyond the running ones before new ones are refused with
 * RESOURCE_EXHAUSTED. The gateway sends only as many as there are free slots,
 * so this only bounds memory against a misbehaving gateway.
 */
const MAX_WAITING_BATCHES = 64;

/** Longest a drain waits for its last messages to reach zeromq, in ms (the link may be down). */
const DRAIN_FLUSH_TIMEOUT_MS = 2_000;

/** Least gap between two "model call failed" log lines, in ms: lifecycle logs, not one per batch. */
const MODEL_ERROR_LOG_INTERVAL_MS = 10_000;

/**
 * How a worker stopped: by drain() or close() ("stopped"), because a
 * gateway asked it to drain ("drained"), because every gateway refused its
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
   * Graceful stop: tells the gateway (DrainWorker), finishes the batches
   * already taken and those the gateway sent before it heard of the drain,
   * then closes. Idempotent.
   */
  drain(reason?: string): Promise<void>;
  /** Immediate stop: closes the socket; results of running batches are dropped. */
  close(): Promise<void>;
  /** The replica id the first registered gateway assigned, or null while no gateway has us registered. */
  replicaId(): number | null;
  /** How many gateways have us registered now. */
  registeredGateways(): number;
  /** Resolves once the worker has stopped, whether by drain(), close() or the gateway's DrainWorker. */
  readonly closed: Promise<WorkerExit>;
}

/**
 * Starts a worker: connects to every gateway address and registers with
 * each (retrying every heartbeat interval until it answers). Throws a TypeError for
 * invalid options; everything after that is handled and logged, never thrown.
 */
export function startWorker(options: WorkerOptions): WorkerHandle {
  const runtime = new WorkerRuntime(checkOptions(options), options.log.child({ component: "worker" }));
  return {
    drain: (reason) => runtime.drain(reason ?? "worker shutting down"),
    close: () => runtime.close(),
    replicaId: () => runtime.replicaId,
    registeredGateways: () => runtime.registeredGateways,
    closed: runtime.closed,
  };
}

interface Job {
  readonly request: BatchRequest;
  readonly payloads: Buffer[];
  /** The session and connection the batch came on; its answer goes back only there. */
  readonly session: GatewaySession;
  readonly conn: GatewayConnection;
  /** performance.now() when it arrived, for the time it waits for a slot. */
  readonly arrivedAt: number;
}

/**
 * The worker as a whole: running (sessions come and go with the gateway
 * addresses), draining (every session told, batches taken are finished),
 * stopped. It only moves forward.
 */
type WorkerPhase = "running" | "draining" | "stopped";

/**
 * One worker's life. Constructing it starts it: the gateway addresses are
 * resolved and a session opens for each.
 */
class WorkerRuntime implements SessionOwner {
  readonly closed: Promise<WorkerExit>;
  readonly #s: Settings;
  readonly #log: Logger;
  readonly #slots: BatchSlots<Job>;
  readonly #discovery: GatewayDiscovery;
  readonly #sessions = new Map<string, GatewaySession>();
  /** Addresses whose gateway refused our registration: not tried again while the address lasts. */
  readonly #refused = new Map<string, string>();
  #phase: WorkerPhase = "running";
  /** Set by whichever stop came first. */
  #exit: WorkerExit | null = null;
  /** Items received and not yet answered (the beats' pending_items). */
  #pendingItems = 0;
  #watchdogTimer: NodeJS.Timeout | null = null;
  #drainPromise: Promise<void> | null = null;
  #lastModelErrorLogMs = Number.NEGATIVE_INFINITY;
  #resolveClosed: (exit: WorkerExit) => void = () => {};

  constructor(s: Settings, log: Logger) {
    this.#s = s;
    this.#log = log;
    this.#slots = new BatchSlots(s.concurrency, MAX_WAITING_BATCHES, (job) => this.#execute(job));
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    this.#discovery = new GatewayDiscovery(s.gateways, s.gatewayResolveMs, log, (addresses) => this.#follow(addresses));
    void this.#discovery.start();
    // Deliberately not unref()ed: it is what keeps the process alive between
    // two connections (during a reconnect backoff no socket is open), until close().
    this.#watchdogTimer = setInterval(() => {
      for (const session of this.#sessions.values()) session.watchdog();
    }, WATCHDOG_TICK_MS);
  }

  /** The replica id of the first gateway that has us registered, or null. */
  get replicaId(): number | null {
    for (const session of this.#sessions.values()) if (session.replicaId !== null) return session.replicaId;
    return null;
  }

  get registeredGateways(): number {
    let n = 0;
    for (const session of this.#sessions.values()) if (session.phase === "serving") n++;
    return n;
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

  // --- sessions -------------------------------------------------------------

  /** Opens a session for each new address and closes those of addresses gone. */
  #follow(addresses: ReadonlySet<string>): void {
    if (this.#phase !== "running") return;
    for (const [address, session] of this.#sessions) {
      if (addresses.has(address)) continue;
      this.#log.info({ gateway: address }, "gateway address gone; closing its session");
      session.close(true);
      this.#sessions.delete(address);
    }
    for (const address of this.#refused.keys()) if (!addresses.has(address)) this.#refused.delete(address);
    for (const address of addresses) {
      if (this.#sessions.has(address) || this.#refused.has(address)) continue;
      this.#sessions.set(address, new GatewaySession(address, this.#s, this.#log, this));
    }
    if (addresses.size === 0) this.#log.warn({ gateways: this.#s.gateways.map(formatWorkerEndpoint) }, "no gateway address resolved yet");
  }

  load(): { inFlight: number; pendingItems: number } {
    return { inFlight: this.#slots.running, pendingItems: this.#pendingItems };
  }

  onConnectionLost(conn: GatewayConnection): void {
    // Batches of a gone connection not yet started: nobody awaits their answers.
    for (const job of this.#slots.clearWaiting((j) => j.conn === conn)) this.#pendingItems -= job.payloads.length;
  }

  onDrainRequest(session: GatewaySession, reason: string, refused: boolean): void {
    if (!refused) {
      // A gateway drains a worker when its model version is deleted, which every gateway sharing the Redis sees too.
      this.#exit ??= { kind: "drained", reason };
      this.#log.info({ gateway: session.address, reason }, "gateway asked to drain");
      void this.drain(reason);
      return;
    }
    this.#log.error({ gateway: session.address, reason }, "gateway refused the registration");
    session.close(false);
    this.#sessions.delete(session.address);
    this.#refused.set(session.address, reason);
    // Refused everywhere: nothing left to serve.
    if (this.#sessions.size === 0) {
      this.#exit ??= { kind: "refused", reason };
      void this.drain(reason);
    }
  }

  onBatch(session: GatewaySession, conn: GatewayConnection, request: BatchRequest, payloads: Buffer[]): void {
    this.#pendingItems += payloads.length;
    // While draining, a batch still arrives when the gateway sent it before our
    // DrainWorker reached it (the two cross on the wire): it is run like the
    // ones already taken, since refusing it would fail its callers. Once the
    // worker has stopped, its connections are closed and nothing arrives.
    if (this.#phase === "stopped") {
      this.#s.metrics?.rejected(payloads.length);
      this.#pendingItems -= payloads.length;
      session.reply(conn, request, failAll(payloads.length, Code.UNAVAILABLE, "worker stopped"));
      return;
    }
    if (!this.#slots.offer({ request, payloads, session, conn, arrivedAt: performance.now() })) {
      const message = `worker overloaded: ${this.#slots.running} batches running and ${this.#slots.queued} waiting`;
      this.#s.metrics?.rejected(payloads.length);
      this.#pendingItems -= payloads.length;
      session.reply(conn, request, failAll(payloads.length, Code.RESOURCE_EXHAUSTED, message));
    }
  }

  async #execute(job: Job): Promise<void> {
    const { request, payloads } = job;
    const s = this.#s;
    const waitMicros = Math.round((performance.now() - job.arrivedAt) * 1000);
    const answer = await inPredictSpan(request, payloads.length, s.model, s.version, async () => {
      const a = await runBatch({ inputType: s.inputType, predict: s.predict, maxBatchSize: s.maxBatchSize, modelTimeoutMs: s.modelTimeoutMs }, request, payloads);
      // Inside the span, so the line carries the batch's trace id.
      if (a.modelError !== null) this.#logModelError(request.batchId, a.modelError);
      return a;
    });
    s.metrics?.batchRan(answer);
    this.#pendingItems -= payloads.length;
    job.session.reply(job.conn, request, answer, waitMicros);
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
    if (!hung || this.#phase === "stopped") return;
    const reason = `a model call has not returned ${2 * graceMs} ms after it started (model timeout ${graceMs} ms)`;
    this.#log.error({ batchId, modelTimeoutMs: graceMs }, "model hangs; stopping the worker");
    this.#exit = { kind: "hung", reason };
    this.#shutdown(false);
  }

  #logModelError(batchId: number, error: string): void {
    const now = performance.now();
    if (now - this.#lastModelErrorLogMs < MODEL_ERROR_LOG_INTERVAL_MS) return;
    this.#lastModelErrorLogMs = now;
    this.#log.warn({ batchId, error }, "model call failed; the batch was answered with errors");
  }

  // --- shutdown -------------------------------------------------------------

  async #runDrain(reason: string): Promise<void> {
    if (this.#phase !== "running") return;
    this.#phase = "draining";
    this.#discovery.stop();
    this.#log.info({ reason, running: this.#slots.running, waiting: this.#slots.queued, gateways: this.#sessions.size }, "worker draining");
    for (const session of this.#sessions.values()) session.drain(reason);
    await this.#slots.idle();
    // close() may have ended the drain meanwhile, and with it the sessions.
    await Promise.all([...this.#sessions.values()].map((session) => session.flush(DRAIN_FLUSH_TIMEOUT_MS)));
    this.#shutdown(true);
  }

  #shutdown(graceful: boolean): void {
    if (this.#phase === "stopped") return;
    this.#phase = "stopped";
    this.#discovery.stop();
    if (this.#watchdogTimer !== null) clearInterval(this.#watchdogTimer);
    this.#watchdogTimer = null;
    this.#slots.clearWaiting();
    for (const session of this.#sessions.values()) session.close(graceful);
    this.#sessions.clear();
    this.#log.info({ graceful }, "worker closed");
    // A drain waiting for running batches ends here too (close() during drain).
    this.#slots.release();
    this.#resolveClosed(this.#exit ?? { kind: "stopped", reason: "closed" });
  }
}
