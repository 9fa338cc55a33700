import { modelNameProblem } from "../../core/names.js";
import {
  decodeContainerMessage,
  encodeHeartbeatReply,
  encodePredictRequest,
  RPC_VERSION,
} from "../../core/wire/clipper-v3.js";
import type { LivenessPolicy } from "../liveness.js";
import type { Replica, SentBatch } from "../replica.js";
import type { TaskOutcome } from "../task.js";
import type { DialectContext, WorkerDialect } from "./dialect.js";

/** u32 message ids wrap; batch ids are matched modulo 2^32. */
const U32 = 2 ** 32;

/** How often an idle Clipper v3 container heartbeats (its socket poll timeout, clipper.md §4.4), in ms. */
const CLIPPER_V3_HEARTBEAT_MS = 5_000;
/**
 * Clipper's containers heartbeat only every ~5 s while idle, so they get at
 * least this long before eviction whatever the native timeout is, in ms.
 */
const MIN_CLIPPER_V3_EVICTION_MS = 12_000;

/** A container sends nothing while it runs a batch: only its idle silence counts as missed beats. */
function clipperV3Liveness(evictionMs: number): LivenessPolicy {
  return { heartbeatMs: CLIPPER_V3_HEARTBEAT_MS, evictAfterMs: Math.max(evictionMs, MIN_CLIPPER_V3_EVICTION_MS), silentWhileBusy: true };
}

/**
 * Clipper RPC v3 sessions (clipper.md §4): heartbeats answered with type 1
 * to identities that have not registered and 0 otherwise, NewContainer with
 * RPC version 3 registers, one batch in flight per container, responses
 * matched by message id. Identities that only heartbeat are tolerated.
 */
export class ClipperV3Dialect implements WorkerDialect {
  readonly #ctx: DialectContext;

  constructor(ctx: DialectContext) {
    this.#ctx = ctx;
  }

  handle(identity: Buffer, frames: Buffer[]): void {
    const { registry, log } = this.#ctx;
    const address = identity.toString("hex");
    const decoded = decodeContainerMessage(frames);
    if (!decoded.ok) {
      log.warn({ address, error: decoded.error }, "ignoring malformed Clipper RPC message");
      return;
    }
    const replica = registry.seen(address, this.#ctx.now());
    const msg = decoded.value;
    switch (msg.kind) {
      case "heartbeat":
        // A container whose id is being drawn is told it is known, or it would register again.
        void this.#ctx.send(identity, encodeHeartbeatReply(replica !== undefined || registry.joining(address)));
        return;
      case "register": {
        if (replica !== undefined) return;
        if (msg.rpcVersion !== RPC_VERSION) {
          if (this.#ctx.mayLog(`v3-version ${address}`)) log.warn({ address, model: msg.modelName, rpcVersion: msg.rpcVersion }, "container did not specify RPC version 3; not registered");
          return;
        }
        // Clipper RPC has no refusal message: a bad name is logged and the container ignored.
        const allowed = this.#ctx.clipperV3Models;
        const problem =
          modelNameProblem("model name", msg.modelName) ??
          modelNameProblem("model version", msg.modelVersion) ??
          (allowed === null || allowed.has(msg.modelName) ? null : `model '${msg.modelName}' is not in --clipper-v3-models`);
        if (problem !== null) {
          if (this.#ctx.mayLog(`v3-refused ${address}`)) log.warn({ address, problem }, "container registration refused");
          return;
        }
        void registry.join({
          identity: Buffer.from(identity),
          dialect: "clipper-v3",
          modelName: msg.modelName,
          modelVersion: msg.modelVersion,
          inputType: msg.inputType,
          slots: 1,
          maxBatchSize: Infinity,
          link: this,
          liveness: clipperV3Liveness(this.#ctx.evictionMs),
          now: this.#ctx.now(),
        });
        return;
      }
      case "response": {
        // A late answer from a removed container is dropped, as in Clipper.
        if (replica === undefined || replica.dialect !== "clipper-v3") return;
        const batchId = [...replica.inFlight.keys()].find((id) => id % U32 === msg.messageId);
        if (batchId === undefined && replica.quarantined && replica.inFlight.size === 0) {
          // The late answer to the batch that timed out: the container did
          // not hang for good. It cannot be asked to drain, so it is
          // forgotten; its next heartbeat is answered as unknown and it
          // registers again, as a new replica with a fresh latency model.
          registry.remove(replica, "drained");
          return;
        }
        if (batchId === undefined) {
          log.warn({ address, messageId: msg.messageId }, "response for an unknown message id");
          return;
        }
        const outcomes = msg.outputs.map((o): TaskOutcome => ({ kind: "value", output: o.toString("utf8") }));
        this.#ctx.answers.batchAnswered(replica, batchId, outcomes);
        return;
      }
    }
  }

  /** Clipper RPC v3 has no message that asks a container to stop; it is only forgotten. */
  dismiss(): void {}

  sendBatch(replica: Replica, batch: SentBatch): Promise<boolean> {
    return this.#ctx.send(replica.identity, encodePredictRequest(batch.id % U32, replica.inputType, batch.tasks.map((t) => t.input)));
  }
}
