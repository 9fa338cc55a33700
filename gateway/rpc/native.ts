import { status as Status } from "@grpc/grpc-js";
import { parseInputType } from "../../core/input-types.js";
import { modelNameProblem } from "../../core/names.js";
import { decodeWorkerMessage, encodeGatewayMessage } from "../../core/wire/native.js";
import type { BatchResult, ItemStatus, RegisterWorker } from "../../gen/clipper/v1/heartbeat.js";
import type { LivenessPolicy } from "../liveness.js";
import type { Replica, SentBatch } from "../replica.js";
import type { TaskOutcome } from "../task.js";
import type { DialectContext, WorkerDialect } from "./dialect.js";

/** Beats per eviction timeout: a worker may miss two beats before it is evicted. */
const BEATS_PER_EVICTION = 3;

/** The heartbeat interval native workers are told to keep for an eviction timeout, in ms. */
function nativeHeartbeatMs(evictionMs: number): number {
  return Math.max(10, Math.floor(evictionMs / BEATS_PER_EVICTION));
}

/** A native worker beats while it runs batches, so its silence always counts. */
function nativeLiveness(evictionMs: number): LivenessPolicy {
  return { heartbeatMs: nativeHeartbeatMs(evictionMs), evictAfterMs: evictionMs, silentWhileBusy: false };
}

/** Most batches one native worker may run at once, whatever it declares: a gateway must not be talked into unbounded slots. */
export const MAX_WORKER_CONCURRENCY = 64;

/** The gRPC status codes a worker may report for an item (1–16); anything else is a worker bug. */
function isStatusCode(code: number): boolean {
  return Number.isInteger(code) && code >= 1 && code <= 16;
}

/**
 * The error of a model call that failed as a whole, or null: the worker
 * says so in `model_error`. A worker that predates the field is read the
 * same way when every item of a batch of several failed with INTERNAL and
 * one message (a throw fails all items of its call alike).
 */
export function wholeBatchError(result: BatchResult): string | null {
  if (result.modelError !== "") return result.modelError;
  const [first, ...rest] = result.items;
  if (first === undefined || rest.length === 0 || first.code !== Status.INTERNAL) return null;
  return rest.every((s) => s.code === first.code && s.message === first.message) ? first.message : null;
}

/** One item's answer as the worker reported it; malformed reports are errors, never outputs (nor cached). */
function outcomeOf(status: ItemStatus, payload: Buffer | undefined, wholeBatch: string | null): TaskOutcome {
  if (status.code === Status.OK) {
    if (payload === undefined) return { kind: "failed", code: Status.INTERNAL, message: "the worker marked the item OK but sent no output" };
    return { kind: "value", output: payload.toString("utf8") };
  }
  // The worker skips items whose deadline passed before the model ran.
  if (status.code === Status.DEADLINE_EXCEEDED) return { kind: "expired", message: status.message };
  if (!isStatusCode(status.code)) return { kind: "failed", code: Status.INTERNAL, message: `the worker reported unknown status code ${status.code}: ${status.message}` };
  if (status.code === Status.INTERNAL && status.message === wholeBatch) return { kind: "failed", code: status.code, message: status.message, wholeBatch: true };
  return { kind: "failed", code: status.code, message: status.message };
}

/**
 * Native sessions: registration with load and limits, heartbeats, batches
 * with absolute deadlines and trace context, per-item errors, and drain.
 * Messages from identities the gateway does not know (it restarted, or
 * evicted the worker) get ReregisterWorker.
 */
export class NativeDialect implements WorkerDialect {
  readonly #ctx: DialectContext;

  constructor(ctx: DialectContext) {
    this.#ctx = ctx;
  }

  handle(identity: Buffer, frames: Buffer[]): void {
    const { registry, answers, log } = this.#ctx;
    const address = identity.toString("hex");
    const decoded = decodeWorkerMessage(frames);
    if (!decoded.ok) {
      log.warn({ address, error: decoded.error }, "ignoring malformed native worker message");
      return;
    }
    const { message, payloads } = decoded.value;
    const replica = registry.seen(address, this.#ctx.now());
    const kind = message.kind!;
    if (kind.$case === "register") {
      if (replica === undefined) this.#register(identity, kind.value);
      return;
    }
    if (replica === undefined || replica.dialect !== "native") {
      void this.#ctx.send(identity, encodeGatewayMessage({ kind: { $case: "reregister", value: {} } }));
      return;
    }
    switch (kind.$case) {
      case "beat":
        return;
      case "drain":
        registry.drain(replica);
        return;
      case "result": {
        const { batchId, items, modelMicros, waitMicros } = kind.value;
        const wholeBatch = wholeBatchError(kind.value);
        const outcomes = items.map((status, i) => outcomeOf(status, payloads[i], wholeBatch));
        if (!answers.batchAnswered(replica, batchId, outcomes, modelMicros / 1000, Math.max(0, waitMicros) / 1000)) log.warn({ address, batchId }, "result for an unknown batch");
        registry.leaveIfDrained(replica);
        return;
      }
    }
  }

  #register(identity: Buffer, reg: RegisterWorker): void {
    const inputType = parseInputType(reg.inputType);
    const problem =
      modelNameProblem("model name", reg.modelName) ??
      modelNameProblem("model version", reg.modelVersion) ??
      (inputType === null ? `unknown input type '${reg.inputType}'` : null);
    if (problem !== null || inputType === null) {
      this.#ctx.log.warn({ address: identity.toString("hex"), model: reg.modelName, problem }, "worker registration refused");
      this.#sendDrain(identity, `registration refused: ${problem}`);
      return;
    }
    let principal: string | undefined;
    const auth = this.#ctx.auth;
    if (auth !== null) {
      const checked = auth.check({
        routingId: identity,
        modelName: reg.modelName,
        modelVersion: reg.modelVersion,
        publicKey: reg.curvePublicKey,
        proof: reg.registrationProof,
      });
      if (!checked.ok) {
        this.#ctx.authFailed(checked.reason, identity.toString("hex"), checked.message);
        this.#sendDrain(identity, `registration refused: ${checked.message}`);
        return;
      }
      principal = checked.principal;
    }
    const replica = this.#ctx.registry.add({
      identity: Buffer.from(identity),
      dialect: "native",
      modelName: reg.modelName,
      modelVersion: reg.modelVersion,
      inputType,
      slots: Math.min(MAX_WORKER_CONCURRENCY, Math.max(1, reg.concurrency)),
      maxBatchSize: reg.maxBatchSize > 0 ? reg.maxBatchSize : Infinity,
      link: this,
      liveness: nativeLiveness(this.#ctx.evictionMs),
      now: this.#ctx.now(),
      ...(principal === undefined ? {} : { principal }),
    });
    void this.#ctx.send(
      identity,
      encodeGatewayMessage({
        kind: {
          $case: "registered",
          value: {
            replicaId: replica.replicaId,
            heartbeatIntervalMs: nativeHeartbeatMs(this.#ctx.evictionMs),
            evictionTimeoutMs: this.#ctx.evictionMs,
          },
        },
      }),
    );
  }

  /** Tells the worker to finish what it has and stop (it leaves the registry at once). */
  dismiss(replica: Replica, reason: string): void {
    this.#sendDrain(replica.identity, reason);
  }

  #sendDrain(identity: Buffer, reason: string): void {
    void this.#ctx.send(identity, encodeGatewayMessage({ kind: { $case: "drain", value: { reason } } }));
  }

  sendBatch(replica: Replica, batch: SentBatch, deadline: number): Promise<boolean> {
    return this.#ctx.send(
      replica.identity,
      encodeGatewayMessage(
        {
          kind: {
            $case: "batch",
            value: {
              batchId: batch.id,
              deadlineUnixMicros: Math.floor(deadline * 1000),
              itemDeadlinesUnixMicros: batch.tasks.map((t) => Math.floor(t.deadline * 1000)),
              trace: batch.wire,
              inputType: replica.inputType,
            },
          },
        },
        batch.tasks.map((t) => t.input),
      ),
    );
  }
}
