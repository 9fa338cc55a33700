"""The model-replica runtime, native dialect (worker/runtime.ts): one
session per gateway address, batches from every gateway run at most
--concurrency at a time, answers go back per item on the connection each
batch came on, and a drain covers every session.

Threads: one main thread owns every ZeroMQ socket and all state (sockets
are not thread-safe) and runs the loop: poll, read, send, timers. Each of
the --concurrency slots is a thread that runs one batch at a time through
the model; numpy and scikit-learn release the GIL in their heavy parts, so
slots overlap there, and the main thread keeps heartbeats going however
long a model call takes. A slot hands its answer back through a queue and
a byte on a pipe that wakes the loop; signals wake it the same way.
"""
import collections
import os
import queue
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Deque, Dict, Optional

import zmq

from .batch import RESOURCE_EXHAUSTED, UNAVAILABLE, BatchJob, fail_all, run_batch
from .connection import now_ms
from .discovery import Discovery
from .session import Session
from .tracing import batch_trace

#: Batches held beyond the running ones before new ones are refused with RESOURCE_EXHAUSTED
#: (the gateway sends only as many as there are free slots: this only bounds memory).
MAX_WAITING_BATCHES = 64
#: Longest a drain waits for its last messages to reach ZeroMQ, in ms (the link may be down).
DRAIN_FLUSH_TIMEOUT_MS = 2_000
#: Least gap between two "model call failed" log lines, in ms.
MODEL_ERROR_LOG_INTERVAL_MS = 10_000


@dataclass
class Settings:
    model: str
    version: str
    input_type_text: str
    input_type: str
    gateways: tuple
    gateway_resolve_ms: int
    predict: Any
    concurrency: int
    max_batch_size: int
    model_timeout_ms: int
    heartbeat_ms: int
    description: str
    credentials: Any
    metrics: Any
    worker_id: str = ""

    def __post_init__(self) -> None:
        if not self.worker_id:
            self.worker_id = str(uuid.uuid4())


@dataclass
class Job:
    request: Any
    payloads: list
    session: Session
    conn: Any
    arrived_ns: int


class Worker:
    """One worker's life: running -> draining -> stopped, only forward. run() returns the exit code."""

    def __init__(self, s: Settings, log) -> None:
        self._s = s
        self._log = log.child(component="worker")
        self._ctx = zmq.Context.instance()
        self._poller = zmq.Poller()
        self._sessions: Dict[str, Session] = {}
        self._refused: Dict[str, str] = {}
        self._conns: Dict[Any, Session] = {}
        self._monitors: Dict[Any, Any] = {}
        self.phase = "running"
        self._exit: Optional[tuple] = None  # (kind, reason)
        self._pending_items = 0
        self._running = 0
        self._waiting: Deque[Job] = collections.deque()
        self._jobs: "queue.SimpleQueue[Optional[Job]]" = queue.SimpleQueue()
        self._events: "queue.SimpleQueue[tuple]" = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._poller.register(self._wake_r, zmq.POLLIN)
        self._last_model_error_log = -float("inf")
        self._drain_flush_until: Optional[float] = None
        self._batch_job = BatchJob(input_type=s.input_type, predict=s.predict, max_batch_size=s.max_batch_size, model_timeout_ms=s.model_timeout_ms)
        for i in range(s.concurrency):
            threading.Thread(target=self._slot, name=f"clipper-slot-{i}", daemon=True).start()
        self._discovery = Discovery(s.gateways, s.gateway_resolve_ms, self._log, lambda addresses: self.post(("addresses", addresses)))

    # --- from other threads ---------------------------------------------------------------

    def post(self, event: tuple) -> None:
        """Hands an event to the main thread and wakes it (safe from any thread)."""
        self._events.put(event)
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already

    @property
    def wake_fd(self) -> int:
        return self._wake_w

    def registered_gateways(self) -> int:
        return sum(1 for s in list(self._sessions.values()) if s.phase == "serving")

    # --- the loop -------------------------------------------------------------------------

    def run(self) -> int:
        self._discovery.start()
        while self.phase != "stopped":
            t = now_ms()
            due = min([s.next_due() for s in self._sessions.values()] + [t + 100])
            if self._drain_flush_until is not None:
                due = min(due, t + 10)
            for conn in self._conns:
                self._poller.register(conn.socket, zmq.POLLIN | (zmq.POLLOUT if conn.wants_out else 0))
            try:
                ready = dict(self._poller.poll(max(0, due - t)))
            except zmq.ZMQError as err:
                if err.errno == getattr(zmq, "EINTR", 4):
                    ready = {}
                else:
                    raise
            if self._wake_r in ready:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            self._handle_events()
            for conn, session in list(self._conns.items()):
                if conn.monitor in ready:
                    conn.on_monitor_readable()
                flags = ready.get(conn.socket, 0)
                if flags & zmq.POLLIN and conn in self._conns:
                    conn.on_readable()
                if flags & zmq.POLLOUT and conn in self._conns:
                    conn.on_writable()
            t = now_ms()
            for session in list(self._sessions.values()):
                if session.next_due() <= t:
                    session.tick(t)
            self._check_drain_done()
        return self._exit_code()

    def _handle_events(self) -> None:
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            kind = event[0]
            if kind == "answer":
                self._on_answer(event[1], event[2], event[3])
            elif kind == "free":
                self._running -= 1
                self._pump()
            elif kind == "hung":
                self._on_hung(event[1])
            elif kind == "addresses":
                self._follow(event[1])
            elif kind == "drain":
                self.drain(event[1])
            elif kind == "exit":
                self._exit = self._exit or ("stopped", event[1])
                self._shutdown(False)

    def release(self, timeout_s: float) -> None:
        """Lets ZeroMQ deliver what the closed sockets still hold (their linger), for at most `timeout_s`:
        a process that exits without this drops the last answers and the drain notice."""
        t = threading.Thread(target=self._ctx.term, name="clipper-zmq-term", daemon=True)
        t.start()
        t.join(timeout_s)

    def _exit_code(self) -> int:
        kind = self._exit[0] if self._exit else "stopped"
        return 1 if kind in ("refused", "hung", "failed") else 0

    # --- sessions ---------------------------------------------------------------------------

    def _follow(self, addresses) -> None:
        if self.phase != "running":
            return
        for address, session in list(self._sessions.items()):
            if address in addresses:
                continue
            self._log.info("gateway address gone; closing its session", gateway=address)
            session.close(True)
            del self._sessions[address]
        for address in list(self._refused):
            if address not in addresses:
                del self._refused[address]
        for address in sorted(addresses):
            if address in self._sessions or address in self._refused:
                continue
            self._sessions[address] = Session(address, self._s, self._ctx, self._log, self)
        if not addresses:
            self._log.warn("no gateway address resolved yet", gateways=[str(e) for e in self._s.gateways])

    def on_connection_opened(self, conn) -> None:
        self._conns[conn] = True
        self._poller.register(conn.socket, zmq.POLLIN)
        self._poller.register(conn.monitor, zmq.POLLIN)

    def on_connection_lost(self, conn) -> None:
        self._conns.pop(conn, None)
        for sock in (conn.socket, conn.monitor):
            try:
                self._poller.unregister(sock)
            except KeyError:
                pass
        # Batches of a gone connection not yet started: nobody awaits their answers.
        kept: Deque[Job] = collections.deque()
        for job in self._waiting:
            if job.conn is conn:
                self._pending_items -= len(job.payloads)
            else:
                kept.append(job)
        self._waiting = kept

    def load(self):
        return self._running, self._pending_items

    def on_drain_request(self, session: Session, reason: str, refused: bool) -> None:
        if not refused:
            # A gateway drains a worker when its version is deleted, which every gateway on the same Redis sees too.
            self._exit = self._exit or ("drained", reason)
            self._log.info("gateway asked to drain", gateway=session.address, reason=reason)
            self.drain(reason)
            return
        self._log.error("gateway refused the registration", gateway=session.address, reason=reason)
        session.close(False)
        self._sessions.pop(session.address, None)
        self._refused[session.address] = reason
        if not self._sessions:
            self._exit = self._exit or ("refused", reason)
            self.drain(reason)

    def on_batch(self, session: Session, conn, request, payloads) -> None:
        n = len(payloads)
        # While draining, a batch still arrives when the gateway sent it before our DrainWorker reached it
        # (the two cross on the wire): it is run like the ones already taken, since refusing it would fail
        # its callers. Once stopped, the connections are closed and nothing arrives.
        if self.phase == "stopped":
            if self._s.metrics:
                self._s.metrics.rejected(n)
            session.reply(conn, request, fail_all(n, UNAVAILABLE, "worker stopped"))
            return
        if len(self._waiting) >= MAX_WAITING_BATCHES:
            if self._s.metrics:
                self._s.metrics.rejected(n)
            session.reply(conn, request, fail_all(n, RESOURCE_EXHAUSTED,
                                                  f"worker overloaded: {self._running} batches running and {len(self._waiting)} waiting"))
            return
        self._pending_items += n
        self._waiting.append(Job(request, payloads, session, conn, time.perf_counter_ns()))
        self._pump()

    def _pump(self) -> None:
        while self._running < self._s.concurrency and self._waiting:
            self._running += 1
            self._jobs.put(self._waiting.popleft())

    # --- slots (their own threads) ------------------------------------------------------------

    def _slot(self) -> None:
        s = self._s
        name = f"predict {s.model}:{s.version}"
        while True:
            job = self._jobs.get()
            if job is None:
                return
            wait_micros = (time.perf_counter_ns() - job.arrived_ns) // 1000
            request = job.request
            try:
                with batch_trace(request.trace.traceparent, request.trace.tracestate, name,
                                 {"clipper.model": s.model, "clipper.model_version": s.version,
                                  "clipper.batch_id": request.batch_id, "clipper.batch_size": len(job.payloads)}):
                    answer = run_batch(self._batch_job, request, job.payloads)
            except BaseException as err:  # run_batch never raises; this keeps the slot alive if it ever does
                answer = fail_all(len(job.payloads), 13, f"worker failed to run the batch: {err!r}")
            self.post(("answer", job, answer, wait_micros))
            if answer.overdue is not None:
                # The model keeps this slot while it runs; not back after as long again, only a new process gets it back.
                answer.overdue.join(s.model_timeout_ms / 1000)
                self.post(("hung", request.batch_id) if answer.overdue.is_alive() else ("free",))

    # --- answers --------------------------------------------------------------------------

    def _on_answer(self, job: Job, answer, wait_micros: int) -> None:
        if self._s.metrics:
            self._s.metrics.batch_ran(answer)
        self._pending_items -= len(job.payloads)
        job.session.reply(job.conn, job.request, answer, wait_micros)
        if answer.model_error is not None:
            t = now_ms()
            if t - self._last_model_error_log >= MODEL_ERROR_LOG_INTERVAL_MS:
                self._last_model_error_log = t
                self._log.warn("model call failed; the batch was answered with errors", batchId=job.request.batch_id, error=answer.model_error)
        if answer.overdue is not None:
            self._log.warn("model call ran past the model timeout; its items were answered DEADLINE_EXCEEDED",
                           batchId=job.request.batch_id, modelTimeoutMs=self._s.model_timeout_ms)
            return
        self._running -= 1
        self._pump()

    def _on_hung(self, batch_id: int) -> None:
        if self.phase == "stopped":
            return
        ms = self._s.model_timeout_ms
        self._log.error("model hangs; stopping the worker", batchId=batch_id, modelTimeoutMs=ms)
        self._exit = ("hung", f"a model call has not returned {2 * ms} ms after it started (model timeout {ms} ms)")
        self._shutdown(False)

    # --- drain and shutdown ---------------------------------------------------------------

    def drain(self, reason: str = "worker shutting down") -> None:
        if self.phase != "running":
            return
        self._exit = self._exit or ("stopped", reason)
        self.phase = "draining"
        self._discovery.stop()
        self._log.info("worker draining", reason=reason, running=self._running, waiting=len(self._waiting), gateways=len(self._sessions))
        for session in self._sessions.values():
            session.drain(reason)

    def _check_drain_done(self) -> None:
        if self.phase != "draining" or self._running > 0 or self._waiting:
            return
        if self._drain_flush_until is None:
            self._drain_flush_until = now_ms() + DRAIN_FLUSH_TIMEOUT_MS
        flushed = all(c.flushed for c in self._conns)
        if flushed or now_ms() >= self._drain_flush_until:
            self._shutdown(True)

    def _shutdown(self, graceful: bool) -> None:
        if self.phase == "stopped":
            return
        self.phase = "stopped"
        self._discovery.stop()
        self._waiting.clear()
        for session in list(self._sessions.values()):
            session.close(graceful)
        self._sessions.clear()
        for _ in range(self._s.concurrency):
            self._jobs.put(None)
        self._log.info("worker closed", graceful=graceful)
