import type { ServerWritableStream, UntypedServiceImplementation } from "@grpc/grpc-js";
import { BoundedStreamWriter, DEFAULT_STREAM_STALL_MS } from "../../core/servers/bounded-stream.js";
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

function toWorker(r: Replica, gatewayId: string): Worker {
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
    gatewayId,
    workerId: r.workerId ?? "",
  };
}

function sorted(registry: ReplicaRegistry, model: string): Replica[] {
  return [...registry.all()]
    .filter((r) => model === "" || r.modelName === model)
    .sort((a, b) => a.modelName.localeCompare(b.modelName) || a.modelVersion.localeCompare(b.modelVersion) || a.replicaId - b.replicaId);
}

/**
 * clipper.v1.Heartbeat.ListWorkers: the live replicas of this gateway
 * (`gatewayId`), with their live state; the whole fleet's replicas, from
 * DB 3, are Admin.ListReplicas.
 */
export function heartbeatBinding(registry: ReplicaRegistry, gatewayId: string): UnaryServiceBinding {
  return {
    name: HEARTBEAT_SERVICE_NAME,
    definition: HeartbeatService,
    handlers: {
      listWorkers: async (req: ListWorkersRequest): Promise<ListWorkersResponse> => ({
        workers: sorted(registry, req.modelName).map((r) => toWorker(r, gatewayId)),
      }),
    },
  };
}

/** Most changes a WatchWorkers stream may fall behind (beyond its first snapshot) before it ends with RESOURCE_EXHAUSTED. */
export const WATCH_BACKLOG = 1_024;

/**
 * clipper.v1.Heartbeat.WatchWorkers: current workers, then every change,
 * until the caller cancels. Changes cannot wait, so while the client does not
 * read they are kept, up to the snapshot plus WATCH_BACKLOG; a watcher that
 * falls further behind, or stays blocked longer than `stallMs`, is ended
 * with RESOURCE_EXHAUSTED and can call again for a fresh snapshot.
 */
export function heartbeatStreaming(registry: ReplicaRegistry, gatewayId: string, stallMs = DEFAULT_STREAM_STALL_MS): UntypedServiceImplementation {
  return {
    watchWorkers: (call: ServerWritableStream<WatchWorkersRequest, WatchWorkersResponse>) => {
      const model = call.request.modelName;
      const snapshot = sorted(registry, model);
      const stop = (): void => {
        registry.off("added", onAdded).off("removed", onRemoved).off("draining", onDraining).off("quarantined", onQuarantined);
        out.close();
      };
      const out = new BoundedStreamWriter<WatchWorkersResponse>(call, { stallMs, maxBacklog: snapshot.length + WATCH_BACKLOG, what: "WatchWorkers", onFailed: stop });
      const send = (kind: Kind, r: Replica, reason = ""): void => {
        if (model === "" || r.modelName === model) out.send({ kind, worker: toWorker(r, gatewayId), reason });
      };
      const onAdded = (r: Replica): void => send(Kind.KIND_REGISTERED, r);
      const onRemoved = (r: Replica, reason: RemovalReason): void => send(Kind.KIND_REMOVED, r, reason);
      const onDraining = (r: Replica): void => send(Kind.KIND_DRAINING, r);
      const onQuarantined = (r: Replica, reason: string): void => send(Kind.KIND_QUARANTINED, r, reason);
      for (const r of snapshot) send(Kind.KIND_EXISTING, r);
      registry.on("added", onAdded).on("removed", onRemoved).on("draining", onDraining).on("quarantined", onQuarantined);
      call.once("cancelled", stop);
      call.once("close", stop);
      call.once("error", stop);
    },
  };
}
