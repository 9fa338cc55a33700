/**
 * One HTTP request and its response, as route handlers see them: node:http's
 * objects on a plaintext port and for HTTP/1.1 over TLS, node:http2's
 * compatibility objects for h2 (ALPN on a TLS port). Most of what handlers
 * use behaves alike; what does not (how a closed response shows, where the
 * authority is, how a body is announced) is asked here, so no handler has
 * to know which protocol carried the call.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { Http2ServerRequest, Http2ServerResponse } from "node:http2";

export type HttpRequest = IncomingMessage | Http2ServerRequest;
export type HttpResponse = ServerResponse | Http2ServerResponse;

/**
 * True once the response closed before it was finished, i.e. the client
 * went away (or its connection did); asked when a call starts and on the
 * response's "close". node:http sets `destroyed` before "close"; h2
 * responses have no `destroyed`, but their stream shows a reset.
 */
export function responseAbandoned(res: HttpResponse): boolean {
  if (res instanceof Http2ServerResponse) return !res.writableEnded && (res.stream.destroyed || res.stream.closed);
  return !res.writableFinished && (res.destroyed || res.req.socket.destroyed);
}

/** True once nothing more can be written: the response was ended, or its connection or stream is gone. */
export function responseClosed(res: HttpResponse): boolean {
  if (res instanceof Http2ServerResponse) return res.writableEnded || res.stream.destroyed;
  return res.destroyed || res.writableEnded;
}

/**
 * The authorities a request names: h2's `:authority` and any `Host` header
 * (HTTP/1.1 has only the latter; an h2 client may send both). Empty for an
 * HTTP/1.0 request without Host.
 */
export function requestAuthorities(req: HttpRequest): string[] {
  const out: string[] = [];
  const authority = req.headers[":authority"];
  if (typeof authority === "string") out.push(authority);
  const host = req.headers.host;
  if (host !== undefined) out.push(host);
  return out;
}

/**
 * Whether the request carries a body. HTTP/1.1 says so by its framing
 * headers (RFC 9112 §6.3); an h2 request has one unless its HEADERS frame
 * ended the stream (a content-length, when sent, says it as in HTTP/1.1).
 */
export function requestHasBody(req: HttpRequest): boolean {
  const length = req.headers["content-length"];
  if (req instanceof Http2ServerRequest) return length === undefined ? !req.stream.endAfterHeaders : length.trim() !== "0";
  if (req.headers["transfer-encoding"] !== undefined) return true;
  return length !== undefined && length.trim() !== "0";
}
