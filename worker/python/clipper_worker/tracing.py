"""The W3C trace context of the batch a model is running, for the model:
``clipper_worker.current_trace()`` gives (traceparent, tracestate) on the
thread that runs the batch. When OpenTelemetry for Python is importable the
batch also runs inside a span "predict MODEL:VERSION", child of the
gateway's batch span, so spans the model makes join the caller's trace
(with no SDK configured, OpenTelemetry's API makes that a no-op)."""
import contextlib
import threading
from typing import Iterator, Optional, Tuple

_local = threading.local()

try:  # optional: never required
    from opentelemetry import context as _otel_context  # type: ignore
    from opentelemetry import trace as _otel_trace  # type: ignore
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator  # type: ignore

    _propagator = TraceContextTextMapPropagator()
    _tracer = _otel_trace.get_tracer("clipper_worker")
except ImportError:
    _otel_context = None


def current_trace() -> Optional[Tuple[str, str]]:
    """(traceparent, tracestate) of the batch running on this thread; None outside a batch or when the gateway sent none."""
    return getattr(_local, "trace", None)


@contextlib.contextmanager
def batch_trace(traceparent: str, tracestate: str, name: str, attributes: dict) -> Iterator[None]:
    previous = getattr(_local, "trace", None)
    _local.trace = (traceparent, tracestate) if traceparent else None
    try:
        if _otel_context is None or not traceparent:
            yield
            return
        carrier = {"traceparent": traceparent}
        if tracestate:
            carrier["tracestate"] = tracestate
        parent = _propagator.extract(carrier)
        with _tracer.start_as_current_span(name, context=parent, kind=_otel_trace.SpanKind.SERVER, attributes=attributes):
            yield
    finally:
        _local.trace = previous
