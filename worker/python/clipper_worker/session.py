"""The worker's session with one gateway address, as
worker/gateway-session.ts and worker/session-state.ts: register and
re-register, beat at the interval the gateway names, reconnect with backoff
when the gateway falls silent, hand batches to the worker and carry answers
back on the connection they came on.

States (each holds only what exists in it) and the only moves:
- registering -> serving: WorkerRegistered;
- serving -> registering: ReregisterWorker (the gateway forgot us);
- registering | serving -> reconnecting: the gateway went silent;
- reconnecting -> registering: the backoff is over, a new connection opens;
- registering | serving | reconnecting -> draining: the worker drains;
- any but stopped -> stopped: the worker closes, the drain ends, or the
  address is gone (or refused the registration).
`serving -> serving` is the one self-move: a registration retried before
the first answer may be answered again with another replica id.
"""
import random
from typing import Optional

from .connection import Connection, now_ms
from .wire import pb

#: Shortest heartbeat interval taken from the gateway, in ms: a bogus tiny value must not make beats a busy loop.
MIN_BEAT_INTERVAL_MS = 10
#: Silence that triggers a reconnect until the gateway names its eviction timeout, in ms.
DEFAULT_EVICTION_TIMEOUT_MS = 3_000
#: How often the silence watchdog looks, in ms.
WATCHDOG_TICK_MS = 100
RECONNECT_BASE_DELAY_MS = 100
RECONNECT_MAX_DELAY_MS = 5_000

TRANSITIONS = {
    "registering": ("serving", "reconnecting", "draining", "stopped"),
    "serving": ("serving", "registering", "reconnecting", "draining", "stopped"),
    "reconnecting": ("registering", "draining", "stopped"),
    "draining": ("stopped",),
    "stopped": (),
}


class IllegalTransition(Exception):
    """A move the table does not allow: a bug in the worker, never a condition of the network."""


def backoff_delay_ms(attempt: int, rnd=random.random) -> int:
    """core/backoff.ts: equal jitter over min(max, base * 2^attempt)."""
    exponent = min(max(0, attempt), 30)
    nominal = min(RECONNECT_MAX_DELAY_MS, RECONNECT_BASE_DELAY_MS * 2 ** exponent)
    return round(nominal / 2 + rnd() * (nominal / 2))


class Session:
    def __init__(self, address: str, settings, ctx, log, owner) -> None:
        self.address = address
        self._s = settings
        self._ctx = ctx
        self._log = log.child(gateway=address)
        self._owner = owner
        self._beat_ms = settings.heartbeat_ms
        self._eviction_ms = DEFAULT_EVICTION_TIMEOUT_MS
        self._attempt = 0
        self.phase = "registering"
        self.conn: Optional[Connection] = self._connect()
        self.replica_id: Optional[int] = None
        self._reconnect_at = 0.0
        self._control_at = 0.0
        self._watchdog_at = now_ms() + WATCHDOG_TICK_MS
        self._send_register()
        self._control_at = now_ms() + self._s.heartbeat_ms

    def _move(self, to: str) -> None:
        if to not in TRANSITIONS[self.phase]:
            raise IllegalTransition(f"illegal session state transition {self.phase} -> {to}")
        lost = self.conn if to in ("reconnecting", "stopped") else None
        self._log.debug("session state changed", **{"from": self.phase, "to": to})
        self.phase = to
        if to not in ("serving", "draining"):
            self.replica_id = None
        if lost is not None:
            self.conn = None
            self._owner.on_connection_lost(lost)

    def _connect(self) -> Connection:
        conn: Connection = Connection(
            self._ctx, self.address, self._s.heartbeat_ms, self._eviction_ms, self._log, self._s.credentials,
            lambda message, payloads: self._on_message(conn, message, payloads),
        )
        self._owner.on_connection_opened(conn)
        return conn

    # --- timers -------------------------------------------------------------------------

    def next_due(self) -> float:
        due = self._watchdog_at
        if self.phase == "reconnecting":
            due = min(due, self._reconnect_at)
        elif self.phase != "stopped":
            due = min(due, self._control_at)
        return due

    def tick(self, t: float) -> None:
        if self.phase == "reconnecting" and t >= self._reconnect_at:
            self._move("registering")
            self.conn = self._connect()
            self._send_register()
            self._control_at = t + self._s.heartbeat_ms
        if self.phase in ("registering", "serving", "draining") and t >= self._control_at:
            if self.phase == "registering":
                self._send_register()
                self._control_at = t + self._s.heartbeat_ms
            else:
                self._send_beat()
                self._control_at = t + self._beat_ms
        if t >= self._watchdog_at:
            self._watchdog_at = t + WATCHDOG_TICK_MS
            self._watchdog()

    def _watchdog(self) -> None:
        if self.phase not in ("registering", "serving") or self.conn is None:
            return
        # Before registration the gateway owes us an answer, so silence means trouble; after it, only a dead link does.
        silent = self.conn.silence_ms(self.phase == "serving")
        if silent <= self._eviction_ms:
            return
        delay = backoff_delay_ms(self._attempt)
        self._log.warn("gateway silent, reconnecting", silentMs=None if silent == float("inf") else round(silent),
                       attempt=self._attempt + 1, delayMs=delay, replicaId=self.replica_id)
        self._attempt += 1
        conn = self.conn
        self._reconnect_at = now_ms() + delay
        self._move("reconnecting")
        conn.close(False)

    # --- outgoing -------------------------------------------------------------------------

    def _send_register(self) -> None:
        conn = self.conn
        # One registration waiting at a time: piled-up copies would register us several times once the link is back.
        if conn is None or conn.has_pending("register"):
            return
        s = self._s
        r = pb.WorkerMessage()
        reg = r.register
        reg.model_name = s.model
        reg.model_version = s.version
        reg.input_type = s.input_type_text
        reg.max_batch_size = s.max_batch_size
        reg.concurrency = s.concurrency
        reg.description = s.description
        # The same on every gateway, so they count this process once.
        reg.worker_id = s.worker_id
        if s.credentials is not None and conn.routing_id is not None:
            key, proof = s.credentials.registration(conn.routing_id, s.model, s.version)
            reg.curve_public_key = key
            reg.registration_proof = proof
        conn.send("register", r)

    def _send_beat(self) -> None:
        conn = self.conn
        if conn is None or conn.has_pending("beat"):
            return
        m = pb.WorkerMessage()
        in_flight, pending = self._owner.load()
        m.beat.in_flight = in_flight
        m.beat.pending_items = pending
        conn.send("beat", m)

    def reply(self, conn: Connection, request, answer, wait_micros: int = 0) -> None:
        """Answers a batch on the connection it came on; dropped when that connection is gone."""
        if conn is not self.conn:
            self._log.debug("dropped the answer to a batch from a closed connection", batchId=request.batch_id)
            return
        m = pb.WorkerMessage()
        res = m.result
        res.batch_id = request.batch_id
        items = res.items
        for code, message in answer.items:
            it = items.add()
            if code != 0:
                it.code = code
                it.message = message
        res.model_micros = answer.model_micros
        if answer.model_error is not None:
            res.model_error = answer.model_error
        res.wait_micros = wait_micros
        conn.send("result", m, answer.outputs)

    # --- incoming ---------------------------------------------------------------------------

    def _on_message(self, conn: Connection, message, payloads) -> None:
        # A closed connection's last words are for a gateway identity that no longer exists.
        if conn is not self.conn:
            return
        kind = message.WhichOneof("kind")
        if kind == "registered":
            self._on_registered(message.registered)
        elif kind == "batch":
            self._owner.on_batch(self, conn, message.batch, payloads)
        elif kind == "reregister":
            self._on_reregister()
        elif kind == "drain":
            self._owner.on_drain_request(self, message.drain.reason or "gateway asked to drain", self.phase == "registering")

    def _on_registered(self, r) -> None:
        if self.phase not in ("registering", "serving"):
            return
        if self.phase == "serving" and self.replica_id == r.replica_id:
            return
        self._move("serving")
        self.replica_id = r.replica_id
        self._attempt = 0
        if r.heartbeat_interval_ms > 0:
            self._beat_ms = max(MIN_BEAT_INTERVAL_MS, r.heartbeat_interval_ms)
        if r.eviction_timeout_ms > 0:
            self._eviction_ms = r.eviction_timeout_ms
        self._log.info("worker registered", replicaId=r.replica_id, model=self._s.model, version=self._s.version,
                       heartbeatIntervalMs=self._beat_ms, evictionTimeoutMs=self._eviction_ms)
        self._control_at = now_ms() + self._beat_ms

    def _on_reregister(self) -> None:
        if self.phase not in ("serving", "registering"):
            return
        self._log.info("gateway asked to re-register", previousReplicaId=self.replica_id)
        if self.phase == "serving":
            self._move("registering")
            self.replica_id = None
        self._send_register()
        self._control_at = now_ms() + self._s.heartbeat_ms

    # --- draining and closing ----------------------------------------------------------------

    def drain(self, reason: str) -> None:
        """Tells the gateway we drain; keeps answering batches already taken, and beating."""
        if self.phase in ("draining", "stopped"):
            return
        self._move("draining")
        if self.conn is not None:
            m = pb.WorkerMessage()
            m.drain.reason = reason
            self.conn.send("drain", m)

    def close(self, graceful: bool) -> None:
        if self.phase == "stopped":
            return
        conn = self.conn
        self._move("stopped")
        if conn is not None:
            conn.close(graceful)
