"""One connection to a gateway (worker/gateway-connection.ts): a ZeroMQ
DEALER connected to its ROUTER, what the transport knows about the
gateway's liveness (from the socket monitor), and the messages waiting for
the link. The session replaces the whole object, and so the routing id,
when it reconnects. Only the runtime's main thread touches it: ZeroMQ
sockets are not thread-safe."""
import collections
import time
from typing import Callable, Deque, List, Optional, Tuple

import zmq
from zmq.utils.monitor import recv_monitor_message

from .wire import decode_gateway_message, encode_worker_message

#: How long a closing socket keeps delivering what it holds on a graceful close, in ms.
GRACEFUL_LINGER_MS = 1_000
#: Messages read from one socket per turn of the loop, so one busy gateway cannot starve another.
MAX_READS_PER_TURN = 256
#: ZMTP heartbeat TTL is sent in tenths of a second in 16 bits.
MAX_HEARTBEAT_TTL_MS = 6_553_500

_MONITORED = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
              | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


def now_ms() -> float:
    return time.monotonic() * 1000


class Connection:
    def __init__(self, ctx: zmq.Context, address: str, ping_ms: int, ping_timeout_ms: int, log, credentials,
                 on_message: Callable[[object, List[bytes]], None]) -> None:
        self._log = log
        self._address = address
        self._on_message = on_message
        self._curve = credentials is not None
        sock = ctx.socket(zmq.DEALER)
        # The routing id this connection chose (CURVE only: its registration proof is bound to it).
        self.routing_id: Optional[bytes] = None
        if credentials is not None:
            self.routing_id = credentials.routing_id()
            sock.setsockopt(zmq.ROUTING_ID, self.routing_id)
            sock.setsockopt(zmq.CURVE_SERVERKEY, credentials.gateway_z85)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, credentials.public_z85)
            sock.setsockopt(zmq.CURVE_SECRETKEY, credentials.secret_z85)
        # Queue only on a completed connection: registrations retried while the gateway is down must not pile up.
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.LINGER, 0)
        if "[" in address:
            sock.setsockopt(zmq.IPV6, 1)
        # ZMTP heartbeats make "connected" trustworthy: a gateway host that vanished without a FIN is noticed.
        sock.setsockopt(zmq.HEARTBEAT_IVL, ping_ms)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, ping_timeout_ms)
        sock.setsockopt(zmq.HEARTBEAT_TTL, min(ping_timeout_ms, MAX_HEARTBEAT_TTL_MS))
        self.monitor = sock.get_monitor_socket(_MONITORED)
        self.socket = sock
        t = now_ms()
        self._last_heard = t
        self._down_since = t
        self._transport_up = False
        self._told = False
        self._pending: Deque[Tuple[str, List[bytes]]] = collections.deque()
        self.phase = "open"  # open | broken | closed
        sock.connect(address)

    # --- liveness ---------------------------------------------------------------------

    def silence_ms(self, trust_transport: bool) -> float:
        """How long the gateway has been silent. Trusting the transport, a link whose ZMTP heartbeats
        are answered counts as hearing from it: an idle gateway sends nothing to a registered worker."""
        t = now_ms()
        if self.phase == "broken":
            return float("inf")
        if not trust_transport:
            return t - self._last_heard
        if self._transport_up:
            return 0.0
        return t - max(self._last_heard, self._down_since)

    def on_monitor_readable(self) -> None:
        while True:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError:
                return
            kind = event["event"]
            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._transport_up = True
            elif kind == zmq.EVENT_DISCONNECTED:
                self._transport_up = False
                self._down_since = now_ms()
            elif not self._told:
                # A failed handshake leaves the link silent; say why once per connection.
                self._told = True
                if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                    self._log.warn("the gateway refused this worker's CURVE key: add its public key to the gateway's --worker-keys", gateway=self._address)
                elif self._curve:
                    self._log.warn("CURVE handshake with the gateway failed: is --gateway-public-key the gateway's key, and does its worker port run CURVE?", gateway=self._address)
                else:
                    self._log.warn("handshake with the gateway failed: its worker port may run CURVE (give --gateway-public-key and --curve-secret-key)", gateway=self._address)

    # --- receiving ----------------------------------------------------------------------

    def on_readable(self) -> None:
        for _ in range(MAX_READS_PER_TURN):
            if self.phase != "open":
                return
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError as err:
                self.phase = "broken"
                self._log.error("receive from gateway failed", err=str(err))
                return
            # Anything at all, even a frame we cannot decode, proves the gateway is alive.
            self._last_heard = now_ms()
            ok, decoded = decode_gateway_message(frames)
            if not ok:
                self._log.warn("ignored a malformed gateway message", error=decoded)
                continue
            try:
                self._on_message(decoded[0], decoded[1])
            except Exception as err:  # a handler bug must not take the loop down
                self._log.error("gateway message handler failed", err=repr(err))

    # --- sending ------------------------------------------------------------------------

    def send(self, kind: str, message, payloads=()) -> bool:
        """Sends now, or keeps the message until the link takes it (in order). False once closed."""
        if self.phase == "closed":
            return False
        frames = encode_worker_message(message, payloads)
        if not self._pending and self._try_send(frames):
            return True
        self._pending.append((kind, frames))
        return True

    def has_pending(self, kind: str) -> bool:
        return any(k == kind for k, _ in self._pending)

    @property
    def wants_out(self) -> bool:
        return bool(self._pending)

    def on_writable(self) -> None:
        while self._pending and self.phase != "closed":
            if not self._try_send(self._pending[0][1]):
                return
            self._pending.popleft()

    def _try_send(self, frames: List[bytes]) -> bool:
        try:
            # Copying small frames is cheaper than pinning them (pyzmq Frame objects).
            self.socket.send_multipart(frames, zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False
        except zmq.ZMQError as err:
            self._log.warn("send to gateway failed", err=str(err))
            return True  # dropped: the gateway re-dispatches what it does not hear back about

    @property
    def flushed(self) -> bool:
        """Nothing waits here: it is all ZeroMQ's (or the link is down and never will take it)."""
        return not self._pending or not self._transport_up

    def close(self, graceful: bool) -> None:
        """`graceful` lets ZeroMQ deliver what it holds for a moment; otherwise it is dropped."""
        if self.phase == "closed":
            return
        self.phase = "closed"
        self._pending.clear()
        try:
            self.socket.disable_monitor()
        except zmq.ZMQError:
            pass
        self.monitor.close(0)
        self.socket.close(GRACEFUL_LINGER_MS if graceful else 0)
