import type { ServerWritableStream, UntypedServiceImplementation } from "@grpc/grpc-js";
import type { UnaryServiceBinding } from "../../core/service-binding.js";
import {
  Dialect,
  HeartbeatService,
  WatchWorkersResponse_Kind as Kind,
  type ListWorkersRequest,
  type ListWorkersResponse,
  type WatchWorkersRequest,
  type WatchWorkersResponse,
  type Worker,
} from "../../gen/clipper/v1/heartbeat.js";
import type { RemovalReason, Replica } from "../replica.js";
import type { ReplicaRegistry } from "../replica-registry.js";

export const HEARTBEAT_SERVICE_NAME = "clipper.v1.Heartbeat";

function toWorker(r: Replica): Worker {
  return {
    modelName: r.modelName,
    modelVersion: r.modelVersion,
    replicaId: r.replicaId,
    dialect: r.dialect === "native" ? Dialect.DIALECT_NATIVE : Dialect.DIALECT_CLIPPER_V3,
    address: r.address,
    lastBeat: new Date(r.liveness.lastSeen),
    inFlight: r.inFlight.size,
    inputType: r.inputType,
    draining: r.draining,
    curvePublicKey: r.principal ?? "",
    quarantined: r.quarantined,
  };
}

function sorted(registry: ReplicaRegistry, model: string): Replica[] {
  return [...registry.all()]
    .filter((r) => model === "" || r.modelName === model)
    .sort((a, b) => a.modelName.localeCompare(b.modelName) || a.modelVersion.localeCompare(b.modelVersion) || a.replicaId - b.replicaId);
}

/** clipper.v1.Heartbeat.ListWorkers: the live replicas of this gateway. */
export function heartbeatBinding(registry: ReplicaRegistry): UnaryServiceBinding {
  return {
    name: HEARTBEAT_SERVICE_NAME,
    definition: HeartbeatService,
    handlers: {
      listWorkers: async (req: ListWorkersRequest): Promise<ListWorkersResponse> => ({
        workers: sorted(registry, req.modelName).map(toWorker),
      }),
    },
  };
}

/** clipper.v1.Heartbeat.WatchWorkers: current workers, then every change, until the caller cancels. */
export function heartbeatStreaming(registry: ReplicaRegistry): UntypedServiceImplementation {
  return {
    watchWorkers: (call: ServerWritableStream<WatchWorkersRequest, WatchWorkersResponse>) => {
      const model = call.request.modelName;
      const send = (kind: Kind, r: Replica, reason = ""): void => {
        if (model === "" || r.modelName === model) call.write({ kind, worker: toWorker(r), reason });
      };
      for (const r of sorted(registry, model)) send(Kind.KIND_EXISTING, r);
      const onAdded = (r: Replica): void => send(Kind.KIND_REGISTERED, r);
      const onRemoved = (r: Replica, reason: RemovalReason): void => send(Kind.KIND_REMOVED, r, reason);
      const onDraining = (r: Replica): void => send(Kind.KIND_DRAINING, r);
      const onQuarantined = (r: Replica, reason: string): void => send(Kind.KIND_QUARANTINED, r, reason);
      registry.on("added", onAdded).on("removed", onRemoved).on("draining", onDraining).on("quarantined", onQuarantined);
      const stop = (): void => {
        registry.off("added", onAdded).off("removed", onRemoved).off("draining", onDraining).off("quarantined", onQuarantined);
      };
      call.once("cancelled", stop);
      call.once("close", stop);
      call.once("error", stop);
    },
  };
}
