/**
 * Counting workers, not connections, from Admin.ListReplicas: a worker
 * connected to several gateways has one DB 3 entry per gateway, all with its
 * worker id; an entry without one (Clipper containers, older workers) is a
 * worker by itself, named by its DB 3 key (model, version, replica id).
 */
import type { Replica } from "../../gen/clipper/v1/admin.js";

export function countWorkers(replicas: readonly Pick<Replica, "workerId" | "modelName" | "modelVersion" | "replicaId">[]): number {
  return new Set(replicas.map((r) => (r.workerId === "" ? `entry:${r.modelName}:${r.modelVersion}:${r.replicaId}` : `worker:${r.workerId}`))).size;
}
