/**
 * Checks that run before a route's handler and may refuse the request:
 * what keeps a web page the operator has open from driving a loopback
 * management API (docs/security.md). They wrap route tables
 * (`guardRoutes`) instead of living in http-server.ts, so each server picks
 * the guards its routes need and the gateway's predict routes keep taking
 * what Clipper's callers send.
 */
import { status as Status } from "@grpc/grpc-js";
import { ServingError } from "../errors.js";
import { hostnameOfAuthority, isLoopbackHost } from "../loopback.js";
import { requestAuthorities, requestHasBody, type HttpRequest } from "./http-exchange.js";
import { sendError, type HttpRouteTable } from "./http-server.js";
import type { RequestTarget } from "./request-target.js";

/** The one request body type management's HTTP APIs take. */
export const ACCEPTED_BODY_TYPE = "application/json";

/**
 * A check of a request before its handler runs: the error to answer with,
 * or null to let it through. Guards see headers only; they never read the body.
 */
export type RequestGuard = (req: HttpRequest, url: RequestTarget) => ServingError | null;

/**
 * Wraps `table` so that each handler it matches runs only after every guard
 * let the request through; the first refusal is sent as `google.rpc.Status`
 * JSON (its unread body is drained so a keep-alive connection stays usable).
 * 404 and 405 outcomes, and paths in `options.except`, are left as they are.
 */
export function guardRoutes(table: HttpRouteTable, guards: readonly RequestGuard[], options: { except?: ReadonlySet<string> } = {}): HttpRouteTable {
  if (guards.length === 0) return table;
  const except = options.except ?? new Set<string>();
  return {
    match(method, url) {
      const m = table.match(method, url);
      if (m === null || m.kind !== "handler" || except.has(url.pathname)) return m;
      return {
        kind: "handler",
        access: m.access,
        handle: async (req, res, u) => {
          for (const guard of guards) {
            const refusal = guard(req, u);
            if (refusal !== null) {
              req.resume();
              sendError(res, refusal);
              return;
            }
          }
          await m.handle(req, res, u);
        },
      };
    },
  };
}

/**
 * Refuses a request that carries a body, or is a POST, unless its
 * Content-Type is application/json (parameters such as charset allowed).
 * A browser sends `text/plain`, `application/x-www-form-urlencoded`,
 * `multipart/form-data` or no type at all cross-site without asking the
 * server first (a CORS "simple request"); any other type needs a preflight,
 * which these servers never grant. A POST without a body is refused too: a
 * page can send one cross-site, and a transcoded method reads it as `{}`.
 */
export const requireJsonBody: RequestGuard = (req) => {
  const method = req.method ?? "GET";
  if (!requestHasBody(req) && method !== "POST") return null;
  const type = mediaType(req.headers["content-type"]);
  if (type === ACCEPTED_BODY_TYPE) return null;
  return new ServingError(
    Status.INVALID_ARGUMENT,
    "UNSUPPORTED_MEDIA_TYPE",
    `${type === "" ? "a request body without a Content-Type" : `Content-Type '${type}'`} is not accepted here; send the body as ${ACCEPTED_BODY_TYPE}`,
  );
};

/**
 * For a server bound to loopback: refuses a request whose authority (the
 * `Host` header, or h2's `:authority`; each one sent when both are) names
 * neither a loopback name or address nor one of `allowed` (host names, any
 * port). A page on a rebound DNS name reaches 127.0.0.1 but its requests
 * still carry that name. A request naming no authority (HTTP/1.0 without
 * Host, which no browser sends) passes.
 */
export function allowHosts(allowed: readonly string[]): RequestGuard {
  const names = new Set(allowed.map((a) => hostnameOfAuthority(a)).filter((h): h is string => h !== null));
  return (req) => {
    for (const authority of requestAuthorities(req)) {
      const host = hostnameOfAuthority(authority);
      if (host !== null && (isLoopbackHost(host) || names.has(host))) continue;
      return new ServingError(
        Status.PERMISSION_DENIED,
        "HOST_NOT_ALLOWED",
        `this server listens on loopback and does not answer for Host '${authority}'; list that name in --allowed-hosts (env CLIPPER_ALLOWED_HOSTS) to allow it`,
      );
    }
    return null;
  };
}

/** The media type of a Content-Type header, lower case, without parameters; "" when absent. */
function mediaType(header: string | undefined): string {
  return (header ?? "").split(";", 1)[0]!.trim().toLowerCase();
}
