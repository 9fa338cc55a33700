import {
  decodeContainerMessage,
  encodeHeartbeatReply,
  encodePredictRequest,
  RPC_VERSION,
} from "../../core/wire/clipper-v3.js";
import type { Replica, SentBatch } from "../replicas.js";
import type { Task, TaskOutcome } from "../task.js";
import type { DialectContext, WorkerDialect } from "./worker-rpc.js";

/** u32 message ids wrap; batch ids are matched modulo 2^32. */
const U32 = 2 ** 32;

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
    const replica = registry.get(address);
    if (replica !== undefined) replica.lastSeen = this.#ctx.now();
    const msg = decoded.value;
    switch (msg.kind) {
      case "heartbeat":
        void this.#ctx.send(identity, encodeHeartbeatReply(replica !== undefined));
        return;
      case "register": {
        if (replica !== undefined) return;
        if (msg.rpcVersion !== RPC_VERSION) {
          log.warn({ address, model: msg.modelName, rpcVersion: msg.rpcVersion }, "container did not specify RPC version 3; not registered");
          return;
        }
        registry.add({
          identity: Buffer.from(identity),
          dialect: "clipper-v3",
          modelName: msg.modelName,
          modelVersion: msg.modelVersion,
          inputType: msg.inputType,
          slots: 1,
          maxBatchSize: Infinity,
          now: this.#ctx.now(),
        });
        return;
      }
      case "response": {
        // A late answer from a removed container is dropped, as in Clipper.
        if (replica === undefined || replica.dialect !== "clipper-v3") return;
        const batchId = [...replica.inFlight.keys()].find((id) => id % U32 === msg.messageId);
        if (batchId === undefined) {
          log.warn({ address, messageId: msg.messageId }, "response for an unknown message id");
          return;
        }
        const outcomes: TaskOutcome[] = msg.outputs.map((o) => ({ ok: true, output: o.toString("utf8") }));
        this.#ctx.dispatcher.batchAnswered(replica, batchId, outcomes);
        return;
      }
    }
  }

  sendBatch(replica: Replica<Task>, batch: SentBatch<Task>): Promise<boolean> {
    return this.#ctx.send(replica.identity, encodePredictRequest(batch.id % U32, replica.inputType, batch.tasks.map((t) => t.input)));
  }
}
