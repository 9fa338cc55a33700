/**
 * The Open Inference Protocol's REST API on the gateway's HTTP port:
 * `GET /v2`, `/v2/health/live`, `/v2/health/ready`,
 * `/v2/models/{m}[/versions/{v}]` and `…/ready`, `POST …/infer` (JSON, or
 * the binary tensor data extension). Each route runs the same handler as
 * its gRPC method (gateway/services/inference.ts) and is instrumented under
 * that method's name with transport "http". Errors are the protocol's
 * `{"error": "…"}` with the HTTP status of their gRPC code (core/status.ts).
 */
import { status as Status } from "@grpc/grpc-js";
import type { Access } from "../../core/auth/scopes.js";
import type { CallContext } from "../../core/call-context.js";
import { invalidArgument, ServingError } from "../../core/errors.js";
import { httpCallContext } from "../../core/http-call-context.js";
import type { HttpRequest, HttpResponse } from "../../core/servers/http-exchange.js";
import { readBody, type HttpMatch, type HttpRouteTable } from "../../core/servers/http-server.js";
import { httpErrorOf } from "../../core/status.js";
import type { CallInstrument, InstrumentedMethod } from "../../core/telemetry/call-instrument.js";
import { HEADER_LENGTH_HEADER, parseInferBody, renderInferResponse } from "../oip/rest-codec.js";
import { INFERENCE_SERVICE_NAME, type InferenceHandlers } from "../services/inference.js";
import type { RequestTarget } from "../../core/servers/request-target.js";

/** What one route answers: a status, a body (JSON value or ready bytes) and headers. */
interface Answer {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Record<string, string>;
}

/** A route of this table, resolved from the path: its RPC, HTTP method and scope, and how it answers. */
interface Route {
  readonly rpc: keyof InferenceHandlers;
  readonly httpMethod: "GET" | "POST";
  readonly access: Access;
  /** The model the call is for, when it asks for predictions: the door judges it by that app's SLO. */
  readonly subject?: string;
  readonly serve: (req: HttpRequest, ctx: CallContext) => Promise<Answer>;
}

/** The RPC name of each handler, for spans and the `method` label. */
const RPC_NAMES: Readonly<Record<keyof InferenceHandlers, string>> = {
  serverLive: "ServerLive",
  serverReady: "ServerReady",
  modelReady: "ModelReady",
  serverMetadata: "ServerMetadata",
  modelMetadata: "ModelMetadata",
  modelInfer: "ModelInfer",
};

/** The status of a readiness answer that says "not ready": probes need a non-2xx. */
const NOT_READY_STATUS = 503;

/** The REST routes over `handlers`; asked after the gateway's other tables, so Clipper's `POST /v2/predict` still reaches an app named v2. */
export function inferenceRestRoutes(handlers: InferenceHandlers, calls: CallInstrument): HttpRouteTable {
  const methods = Object.fromEntries(
    Object.entries(RPC_NAMES).map(([key, rpc]) => [
      key,
      calls.method(`${INFERENCE_SERVICE_NAME}/${rpc}`, { "rpc.system": "grpc", "rpc.service": INFERENCE_SERVICE_NAME, "rpc.method": rpc }),
    ]),
  ) as Record<keyof InferenceHandlers, InstrumentedMethod>;
  return {
    match(method: string, url: RequestTarget): HttpMatch | null {
      if (url.pathname !== "/v2" && !url.pathname.startsWith("/v2/")) return null;
      const route = routeOf(handlers, url.pathname);
      if (route === null) return null;
      if (route === "malformed") return { kind: "handler", access: "open", handle: (req, res) => refuseMalformed(req, res), refuse: sendOipError };
      if (method !== route.httpMethod) return { kind: "method-not-allowed", allow: [route.httpMethod] };
      return { kind: "handler", access: route.access, subject: route.subject, handle: (req, res) => serve(calls, methods[route.rpc], route, req, res), refuse: sendOipError };
    },
  };
}

/** The route a path names; null when it names none, "malformed" when a name in it is not valid percent-encoding. */
function routeOf(h: InferenceHandlers, pathname: string): Route | "malformed" | null {
  let segments: string[];
  try {
    segments = pathname.replace(/\/$/, "").split("/").slice(2).map(decodeURIComponent);
  } catch {
    return "malformed";
  }
  const [first, second, third, fourth, fifth] = segments;
  switch (segments.length) {
    case 0:
      return { rpc: "serverMetadata", httpMethod: "GET", access: "read", serve: async (_req, ctx) => ({ status: 200, body: await h.serverMetadata({}, ctx) }) };
    case 2:
      if (first === "health" && second === "live") return { rpc: "serverLive", httpMethod: "GET", access: "open", serve: (_req, ctx) => live(h, ctx) };
      if (first === "health" && second === "ready") return { rpc: "serverReady", httpMethod: "GET", access: "open", serve: (_req, ctx) => ready(h, ctx) };
      if (first === "models") return metadataRoute(h, second!, "");
      return null;
  }
  if (first !== "models") return null;
  const model = second!;
  if (segments.length === 3) return actionRoute(h, model, "", third!);
  if (third !== "versions") return null;
  if (segments.length === 4) return metadataRoute(h, model, fourth!);
  if (segments.length === 5) return actionRoute(h, model, fourth!, fifth!);
  return null;
}

function metadataRoute(h: InferenceHandlers, name: string, version: string): Route {
  return {
    rpc: "modelMetadata",
    httpMethod: "GET",
    access: "read",
    serve: async (_req, ctx) => {
      // The REST form has no properties map; the rest is the message as JSON.
      const { properties: _, ...body } = await h.modelMetadata({ name, version }, ctx);
      return { status: 200, body };
    },
  };
}

function actionRoute(h: InferenceHandlers, name: string, version: string, action: string): Route | null {
  if (action === "ready") {
    return {
      rpc: "modelReady",
      httpMethod: "GET",
      access: "open",
      serve: async (_req, ctx) => {
        const { ready } = await h.modelReady({ name, version }, ctx);
        return { status: ready ? 200 : NOT_READY_STATUS, body: { name, ready } };
      },
    };
  }
  if (action === "infer") return { rpc: "modelInfer", httpMethod: "POST", access: "predict", subject: name, serve: (req, ctx) => infer(h, name, version, req, ctx) };
  return null;
}

async function live(h: InferenceHandlers, ctx: CallContext): Promise<Answer> {
  return { status: 200, body: await h.serverLive({}, ctx) };
}

async function ready(h: InferenceHandlers, ctx: CallContext): Promise<Answer> {
  const answer = await h.serverReady({}, ctx);
  return { status: answer.ready ? 200 : NOT_READY_STATUS, body: answer };
}

async function infer(h: InferenceHandlers, name: string, version: string, req: HttpRequest, ctx: CallContext): Promise<Answer> {
  const body = await readBody(req);
  const header = req.headers[HEADER_LENGTH_HEADER];
  const parsed = parseInferBody(body, Array.isArray(header) ? header.join(",") : header, name, version);
  if (!parsed.ok) throw invalidArgument("INVALID_REQUEST", parsed.error);
  const rendered = renderInferResponse(await h.modelInfer(parsed.value.message, ctx), parsed.value);
  return { status: 200, body: rendered.body, headers: rendered.headers };
}

/** Runs one route inside its RPC's span and metrics, and writes the answer or the error. */
async function serve(calls: CallInstrument, method: InstrumentedMethod, route: Route, req: HttpRequest, res: HttpResponse): Promise<void> {
  // A GET's body, if any, is not read; drained so a keep-alive connection stays usable.
  if (route.httpMethod === "GET") req.resume();
  const scope = httpCallContext(req, res, "http", sendOipError);
  if (scope === null) return;
  const { ctx, dispose } = scope;
  try {
    const answer = await calls.run(method, ctx, () => route.serve(req, ctx));
    write(res, answer);
  } catch (err) {
    sendOipError(res, err);
  } finally {
    dispose();
  }
}

function write(res: HttpResponse, answer: Answer): void {
  const body = Buffer.isBuffer(answer.body) ? answer.body : Buffer.from(JSON.stringify(answer.body), "utf8");
  res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers, "content-length": body.length });
  res.end(body);
}

async function refuseMalformed(req: HttpRequest, res: HttpResponse): Promise<void> {
  req.resume();
  sendOipError(res, invalidArgument("INVALID_REQUEST", "the path holds a malformed percent-encoding; encode model names and versions with encodeURIComponent"));
}

/** An error as the protocol's REST body, `{"error": "…"}`, with the status (and headers) of its gRPC code. */
export function sendOipError(res: HttpResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const { status, headers } = httpErrorOf(err);
  const e = ServingError.from(err);
  // An internal error's own message stays in the log (core/telemetry/call-instrument.ts).
  const message = e.code === Status.INTERNAL && e.reason === "INTERNAL" ? "internal error" : e.message;
  const body = Buffer.from(JSON.stringify({ error: message }), "utf8");
  res.writeHead(status, { ...headers, "content-type": "application/json", "content-length": body.length });
  res.end(body);
}
