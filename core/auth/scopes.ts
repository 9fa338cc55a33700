/**
 * What a caller may do, and which scope each API needs (docs/security.md).
 * One table for gRPC paths; the HTTP surfaces name the gRPC method they
 * serve (transcoding) or their own scope (Clipper REST, /metrics).
 */

/** The scopes a token can carry. */
export const SCOPES = ["predict", "read", "admin", "deploy"] as const;
export type Scope = (typeof SCOPES)[number];

/** What a route or method needs: a scope, or nothing (health checks). */
export type Access = Scope | "open";

/** Parses a comma-separated scope list; the error names the first unknown scope. */
export function parseScopes(text: string): { ok: true; value: ReadonlySet<Scope> } | { ok: false; error: string } {
  const scopes = new Set<Scope>();
  for (const raw of text.split(",")) {
    const s = raw.trim();
    if (s === "") continue;
    if (!(SCOPES as readonly string[]).includes(s)) return { ok: false, error: `unknown scope '${s}' (scopes are ${SCOPES.join(", ")})` };
    scopes.add(s as Scope);
  }
  return { ok: true, value: scopes };
}

/**
 * The access a gRPC method needs, from its path (`/package.Service/Method`):
 * - Predict: predict;
 * - the Open Inference Protocol: ModelInfer predict, ServerMetadata and
 *   ModelMetadata read, ServerLive, ServerReady and ModelReady open (they
 *   are its health checks);
 * - Heartbeat (ListWorkers, WatchWorkers), reflection: read;
 * - Admin: its Get* and List* methods read, DeployModel deploy (it decides
 *   what runs), every other method admin;
 * - health: open, so orchestrators can probe without a token;
 * - anything else: admin, the strictest scope that is not deploy.
 */
export function accessOfGrpcMethod(path: string): Access {
  const slash = path.lastIndexOf("/");
  const service = path.slice(1, slash);
  const method = path.slice(slash + 1);
  switch (service) {
    case "clipper.v1.Predict":
      return "predict";
    case "inference.GRPCInferenceService":
      return accessOfInferenceMethod(method);
    case "clipper.v1.Heartbeat":
    case "grpc.reflection.v1.ServerReflection":
    case "grpc.reflection.v1alpha.ServerReflection":
      return "read";
    case "grpc.health.v1.Health":
      return "open";
    case "clipper.v1.Admin":
      if (method === "DeployModel") return "deploy";
      return method.startsWith("Get") || method.startsWith("List") ? "read" : "admin";
    default:
      return "admin";
  }
}

/** The access each inference.GRPCInferenceService method needs; methods it may gain later need admin until listed. */
function accessOfInferenceMethod(method: string): Access {
  switch (method) {
    case "ModelInfer":
      return "predict";
    case "ServerMetadata":
    case "ModelMetadata":
      return "read";
    case "ServerLive":
    case "ServerReady":
    case "ModelReady":
      return "open";
    default:
      return "admin";
  }
}
