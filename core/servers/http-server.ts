import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Authorizer } from "../auth/authorizer.js";
import type { Access } from "../auth/scopes.js";
import type { ServerTls } from "../tls/server-tls.js";
import { ServingError } from "../errors.js";
import { status as Status } from "@grpc/grpc-js";
import { httpErrorOf } from "../status.js";

/** Largest request body any route reads, in bytes (grpc-js's default max message size). */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

/**
 * The outcome of asking one route table about a request. A handler match
 * names the access it needs (core/auth/scopes.ts), checked before it runs.
 */
export type HttpMatch =
  | { readonly kind: "handler"; readonly access: Access; readonly handle: (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void> }
  | { readonly kind: "method-not-allowed"; readonly allow: readonly string[] };

/**
 * A set of HTTP routes. Tables are asked in order; the first handler match
 * wins. When none handles the request, a path that some table knows under
 * another method gets 405 (with Allow), anything else 404.
 */
export interface HttpRouteTable {
  match(method: string, url: URL): HttpMatch | null;
}

/**
 * Reads a request body up to `limit` bytes. Bigger bodies are refused with
 * BODY_TOO_LARGE (HTTP 413) without buffering them.
 */
export function readBody(req: IncomingMessage, limit: number = DEFAULT_MAX_BODY_BYTES): Promise<Buffer> {
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
        // As `for await` did when left early: stop reading this body at all.
        req.destroy();
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

/** What an interrupted body read rejects with, as node:stream's end-of-stream watcher does. */
function prematureClose(): Error {
  return Object.assign(new Error("Premature close"), { code: "ERR_STREAM_PREMATURE_CLOSE" });
}

function bodyTooLarge(limit: number): ServingError {
  return new ServingError(Status.RESOURCE_EXHAUSTED, "BODY_TOO_LARGE", `request body is larger than the limit of ${limit} bytes`);
}

/** Writes a JSON body (already serialized or a value to serialize). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Writes an error as `google.rpc.Status` JSON with the mapped HTTP status. */
export function sendError(res: ServerResponse, err: unknown): void {
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
 * Starts a node:http server that dispatches to `tables` in order. Handler
 * failures become `google.rpc.Status` JSON errors; nothing a request does
 * can crash the process.
 */
export async function startHttpServer(
  tables: readonly HttpRouteTable[],
  options: { host: string; port: number; onError?: (err: unknown) => void; auth?: Authorizer; tls?: ServerTls },
): Promise<RunningHttpServer> {
  const auth = options.auth ?? null;
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    void dispatch(tables, auth, req, res).catch((err: unknown) => {
      options.onError?.(err);
      sendError(res, err);
    });
  };
  const server: Server = options.tls === undefined ? createServer(onRequest) : httpsServer(options.tls, onRequest);
  // Keep-alive connections must not hold close() for long; idle ones are closed below.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

/** An HTTPS server that takes each reloaded certificate for new handshakes; open connections keep theirs. */
function httpsServer(tls: ServerTls, onRequest: (req: IncomingMessage, res: ServerResponse) => void): Server {
  const server = createHttpsServer(tls.httpsOptions(), onRequest);
  tls.onReload((context) => server.setSecureContext(context));
  return server;
}

async function dispatch(tables: readonly HttpRouteTable[], auth: Authorizer | null, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://localhost");
  const method = req.method ?? "GET";
  let allow: string[] | null = null;
  for (const table of tables) {
    const m = table.match(method, url);
    if (m === null) continue;
    if (m.kind === "handler") {
      const refused = auth?.check(req.headers.authorization, m.access) ?? null;
      if (refused !== null) {
        req.resume();
        sendError(res, refused);
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
