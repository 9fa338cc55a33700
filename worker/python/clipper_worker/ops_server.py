"""The metrics port: GET /metrics (Prometheus text), /healthz (the process
is alive) and /readyz (registered with a gateway; 503 with the reason
otherwise), as core/servers/ops-routes.ts. Optional TLS (HTTP/1.1 only),
its files re-read on SIGHUP. Requests carry no body; connections are
bounded in number and idle time, so a slow client cannot pile up threads."""
import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional, Tuple

#: Connections served at once; more are closed at once.
MAX_CONNECTIONS = 64
#: Longest a connection may sit idle, in seconds.
IDLE_TIMEOUT_S = 10


def tls_context(cert: str, key: str, client_ca: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class OpsServer:
    def __init__(self, host: str, port: int, metrics: Callable[[], bytes], readiness: Callable[[], Tuple[bool, str]],
                 tls: Optional[ssl.SSLContext]) -> None:
        self._tls = tls
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            timeout = IDLE_TIMEOUT_S
            server_version = "clipper-worker"
            sys_version = ""

            def log_message(self, *args) -> None:  # one line per request is not a lifecycle event
                pass

            def _send(self, status: int, body: bytes, content_type: str, extra: Optional[dict] = None) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, status: int, value: dict, extra: Optional[dict] = None) -> None:
                self._send(status, json.dumps(value).encode(), "application/json", extra)

            def _route(self) -> None:
                path = self.path.split("?", 1)[0]
                if path not in ("/metrics", "/healthz", "/readyz"):
                    self._json(404, {"error": {"code": "NOT_FOUND", "message": f"no route {path}: this port serves /metrics, /healthz and /readyz"}})
                    return
                if self.command not in ("GET", "HEAD"):
                    self._json(405, {"error": {"code": "METHOD_NOT_ALLOWED", "message": f"{path} takes GET or HEAD"}}, {"allow": "GET, HEAD"})
                    return
                if path == "/metrics":
                    self._send(200, metrics(), "text/plain; version=0.0.4; charset=utf-8")
                elif path == "/healthz":
                    self._json(200, {"status": "ok"})
                else:
                    ready, reason = readiness()
                    self._json(200 if ready else 503, {"status": "ready"} if ready else {"status": "not ready", "reason": reason})

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _route

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

            def process_request(self, request, client_address):
                if not outer._slots.acquire(blocking=False):
                    self.shutdown_request(request)
                    return
                super().process_request(request, client_address)

            def process_request_thread(self, request, client_address):
                try:
                    if outer._tls is not None:
                        request.settimeout(IDLE_TIMEOUT_S)
                        try:
                            request = outer._tls.wrap_socket(request, server_side=True)
                        except (ssl.SSLError, OSError):
                            self.shutdown_request(request)
                            return
                    super().process_request_thread(request, client_address)
                finally:
                    outer._slots.release()

        self._server = Server((host, port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="clipper-metrics", daemon=True)
        self._thread.start()

    def reload_tls(self, ctx: ssl.SSLContext) -> None:
        """New connections use the new certificate; open ones keep theirs."""
        self._tls = ctx

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
