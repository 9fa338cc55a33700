/**
 * The HTTP port of a server with TLS: one listener that offers h2 and
 * http/1.1 by ALPN and hands both to the same request handler (node:http2's
 * compatibility API; core/servers/http-exchange.ts says where the two
 * differ). Plaintext ports stay HTTP/1.1 (core/servers/http-server.ts).
 *
 * Each reloaded certificate serves new handshakes (setSecureContext); open
 * connections keep theirs. Closing stops accepting, lets calls in progress
 * finish, and then closes every connection: h2 sessions get GOAWAY, and
 * HTTP/1.1 connections close once idle, so a stopping process is not held
 * open by a client's idle keep-alive connection or h2 session.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createSecureServer, Http2ServerRequest, Http2ServerResponse, type Http2SecureServer, type ServerHttp2Session } from "node:http2";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { ServerTls } from "../tls/server-tls.js";
import type { HttpRequest, HttpResponse } from "./http-exchange.js";

/** An HTTPS server and how to stop it. */
export interface SecureHttpServer {
  readonly server: Http2SecureServer;
  /** Stops accepting; resolves once every call in progress was answered and every connection closed. */
  close(): Promise<void>;
}

/** Calls in progress on one HTTP/1.1 connection. */
interface Http1Connection {
  active: number;
}

export function createSecureHttpServer(tls: ServerTls, onRequest: (req: HttpRequest, res: HttpResponse) => void): SecureHttpServer {
  const sessions = new Set<ServerHttp2Session>();
  const http1 = new Map<Socket, Http1Connection>();
  let closing = false;

  const server = createSecureServer({ ...tls.httpsOptions(), allowHTTP1: true }, (req: HttpRequest, res: HttpResponse) => {
    if (!(req instanceof Http2ServerRequest) && !(res instanceof Http2ServerResponse)) trackHttp1(req, res);
    onRequest(req, res);
  });
  tls.onReload((context) => server.setSecureContext(context));

  server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    if (closing) session.close();
  });
  server.on("secureConnection", (socket: TLSSocket) => {
    if (socket.alpnProtocol === "h2") return;
    http1.set(socket, { active: 0 });
    socket.once("close", () => http1.delete(socket));
  });

  function trackHttp1(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket;
    const connection = http1.get(socket);
    if (connection === undefined) return;
    connection.active++;
    if (closing) res.setHeader("connection", "close");
    res.once("close", () => {
      connection.active--;
      // Flushes the answer first, then closes.
      if (closing && connection.active === 0) socket.destroySoon();
    });
  }

  return {
    server,
    close: () =>
      new Promise<void>((resolve) => {
        closing = true;
        server.close(() => resolve());
        // Graceful: GOAWAY now, the session ends once its open streams have.
        for (const session of sessions) session.close();
        for (const [socket, connection] of http1) if (connection.active === 0) socket.destroySoon();
      }),
  };
}
