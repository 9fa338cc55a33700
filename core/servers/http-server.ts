import { createServer } from "node:http";
import { Http2ServerRequest, constants as h2 } from "node:http2";
import type { AddressInfo, Server } from "node:net";
import type { Authorizer } from "../auth/authorizer.js";
import type { Access } from "../auth/scopes.js";
import type { ServerTls } from "../tls/server-tls.js";
import type { HttpRequest, HttpResponse } from "./http-exchange.js";
import { createSecureHttpServer } from "./https-server.js";
import { checkedAtDoor, type DoorCheck } from "./shed-while-behind.js";
import { ServingError } from "../errors.js";
import { status as Status } from "@grpc/grpc-js";
import { httpErrorOf } from "../status.js";
import { requestTarget, type RequestTarget } from "./request-target.js";

/** Largest request body any route reads, in bytes (grpc-js's default max message size). */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

/**
 * The outcome of asking one route table about a request. A handler match
 * names the access it needs (core/auth/scopes.ts), checked before it runs.
 */
export type HttpMatch =
  | {
      readonly kind: "handler";
      readonly access: Access;
      readonly handle: (req: HttpRequest, res: HttpResponse, url: RequestTarget) => Promise<void>;
      /** What the call is for, when its path names it (a gateway's app): the door judges the call by it. */
      readonly subject?: string | undefined;
      /** Writes a refusal (no token, wrong scope) in the route's own error format; `google.rpc.Status` JSON when absent. */
      readonly refuse?: (res: HttpResponse, err: ServingError) => void;
    }
  | { readonly kind: "method-not-allowed"; readonly allow: readonly string[] };

/**
 * A set of HTTP routes. Tables are asked in order; the first handler match
 * wins. When none handles the request, a path that some table knows under
 * another method gets 405 (with Allow), anything else 404.
 */
export interface HttpRouteTable {
  match(method: string, url: RequestTarget): HttpMatch | null;
}

/**
 * Reads a request body up to `limit` bytes. Bigger bodies are refused with
 * BODY_TOO_LARGE (HTTP 413) without buffering them.
 */
export function readBody(req: HttpRequest, limit: number = DEFAULT_MAX_BODY_BYTES): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > limit) return Promise.reject(bodyTooLarge(limit));
  // Events already past would never come again.
  if (req.readableEnded) return Promise.resolve(Buffer.alloc(0));
  if (req.destroyed) return Promise.reject(req.errored ?? prematureClose());
  // Listeners rather than `for await`: the async iterator, its end-of-stream
  // watcher and a promise per chunk cost more than most bodies this reads.
  // The listeners stay on `req` (it ends with this request), so a late
  // "error" still has a listener.
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on("data", (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        done = true;
        stopReading(req);
        reject(bodyTooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (done) return;
      done = true;
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    });
    req.on("error", (err: Error) => {
      if (done) return;
      done = true;
      reject(err);
    });
    req.on("close", () => {
      if (done) return;
      done = true;
      reject(prematureClose());
    });
  });
}

/**
 * Stops reading a body that is too large. Over HTTP/1.1 the connection
 * goes, as `for await` left early did. Over h2 only the stream may: reading
 * pauses (flow control stops the sender), and once the 413 is sent the
 * stream is reset with NO_ERROR, which asks the client to stop sending
 * without failing the response (RFC 9113 §8.1).
 */
function stopReading(req: HttpRequest): void {
  if (!(req instanceof Http2ServerRequest)) {
    req.destroy();
    return;
  }
  const stream = req.stream;
  req.pause();
  stream.once("finish", () => stream.close(h2.NGHTTP2_NO_ERROR));
}

/** What an interrupted body read rejects with, as node:stream's end-of-stream watcher does. */
function prematureClose(): Error {
  return Object.assign(new Error("Premature close"), { code: "ERR_STREAM_PREMATURE_CLOSE" });
}

function bodyTooLarge(limit: number): ServingError {
  return new ServingError(Status.RESOURCE_EXHAUSTED, "BODY_TOO_LARGE", `request body is larger than the limit of ${limit} bytes`);
}

/** Writes a JSON body (already serialized or a value to serialize). */
export function sendJson(res: HttpResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Writes an error as `google.rpc.Status` JSON with the mapped HTTP status. */
export function sendError(res: HttpResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const { status, body, headers } = httpErrorOf(err);
  sendJson(res, status, body, headers);
}

/** A started HTTP server and how to stop it. */
export interface RunningHttpServer {
  readonly server: Server;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Starts an HTTP server that dispatches to `tables` in order: node:http
 * (HTTP/1.1) in plaintext, h2 and HTTP/1.1 by ALPN with `tls`
 * (core/servers/https-server.ts). Handler failures become
 * `google.rpc.Status` JSON errors; nothing a request does can crash the
 * process.
 */
export async function startHttpServer(
  tables: readonly HttpRouteTable[],
  options: {
    host: string;
    port: number;
    onError?: (err: unknown) => void;
    auth?: Authorizer;
    tls?: ServerTls;
    /** A check each request needing the predict scope passes after its authorization, before its body is read, judged by the subject its route names (core/servers/shed-while-behind.ts). */
    door?: DoorCheck;
  },
): Promise<RunningHttpServer> {
  const auth = options.auth ?? null;
  const door = options.door ?? null;
  const onRequest = (req: HttpRequest, res: HttpResponse): void => {
    void dispatch(tables, auth, door, req, res).catch((err: unknown) => {
      options.onError?.(err);
      sendError(res, err);
    });
  };
  const { server, close } = options.tls === undefined ? plainServer(onRequest) : createSecureHttpServer(options.tls, onRequest);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return { server, port, close };
}

function plainServer(onRequest: (req: HttpRequest, res: HttpResponse) => void): { server: Server; close(): Promise<void> } {
  const server = createServer(onRequest);
  // Keep-alive connections must not hold close() for long; idle ones are closed below.
  server.keepAliveTimeout = 5_000;
  return {
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

async function dispatch(tables: readonly HttpRouteTable[], auth: Authorizer | null, door: DoorCheck | null, req: HttpRequest, res: HttpResponse): Promise<void> {
  const url = requestTarget(req.url);
  const method = req.method ?? "GET";
  let allow: string[] | null = null;
  for (const table of tables) {
    const m = table.match(method, url);
    if (m === null) continue;
    if (m.kind === "handler") {
      // Authorization first: a caller without the scope learns that, not that the gateway is busy.
      const refused = auth?.check(req.headers.authorization, m.access) ?? (checkedAtDoor(m.access) ? door?.(m.subject) : null) ?? null;
      if (refused !== null) {
        req.resume();
        (m.refuse ?? sendError)(res, refused);
        return;
      }
      await m.handle(req, res, url);
      return;
    }
    allow = [...(allow ?? []), ...m.allow];
  }
  // Drain any unread body so keep-alive connections stay usable.
  req.resume();
  if (allow !== null) {
    sendError(
      res,
      new ServingError(Status.UNIMPLEMENTED, "METHOD_NOT_ALLOWED", `method ${method} is not allowed on ${url.pathname}; allowed: ${[...new Set(allow)].join(", ")}`, {
        headers: { allow: [...new Set(allow)].join(", ") },
      }),
    );
    return;
  }
  sendError(res, new ServingError(Status.NOT_FOUND, "ROUTE_NOT_FOUND", `no route for ${method} ${url.pathname}`));
}
