import { sendJson, type HttpRouteTable } from "./http-server.js";

/**
 * Operational endpoints every HTTP server has: `GET /metrics` (Prometheus
 * text), `GET /healthz` (the process is alive) and `GET /readyz` (it can
 * serve: 503 with the reason while a dependency such as Redis is down).
 */
export function opsRoutes(registry: { readonly contentType: string; metrics(): Promise<string> }, readiness: () => { ready: boolean; reason: string }, warning: string | null = null): HttpRouteTable {
  return {
    match(method, url) {
      const path = url.pathname;
      if (path !== "/metrics" && path !== "/healthz" && path !== "/readyz") return null;
      if (method !== "GET" && method !== "HEAD") return { kind: "method-not-allowed", allow: ["GET", "HEAD"] };
      return {
        kind: "handler",
        // Probes stay open; what /metrics tells about the deployment is for readers.
        access: path === "/metrics" ? "read" : "open",
        handle: async (_req, res) => {
          if (path === "/metrics") {
            const body = await registry.metrics();
            res.writeHead(200, { "content-type": registry.contentType, "content-length": Buffer.byteLength(body) });
            res.end(body);
            return;
          }
          if (path === "/healthz") {
            sendJson(res, 200, { status: "ok" });
            return;
          }
          const r = readiness();
          const body = r.ready ? { status: "ready" } : { status: "not ready", reason: r.reason };
          sendJson(res, r.ready ? 200 : 503, warning === null ? body : { ...body, warning });
        },
      };
    },
  };
}
