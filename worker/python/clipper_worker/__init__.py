"""clipper_worker: serves a Python model to clipper-ts gateways over the
native worker dialect (proto/clipper/v1/heartbeat.proto).

A model is a module with ``predict(inputs) -> outputs`` (one output per
input, in order) and an optional ``setup(runtime)``; run it with
``/usr/bin/python3 -m clipper_worker --model NAME --version V --module PATH_OR_MODULE``.
"""
from .tracing import current_trace

__all__ = ["current_trace", "ModelRuntime"]
__version__ = "0.1.0"


class ModelRuntime:
    """What ``setup(runtime)`` receives: the model's metrics API, who the worker is, and a logger."""

    def __init__(self, metrics, model: str, version: str, input_type: str, log) -> None:
        #: Define and report the model's own metrics (served on --metrics-port), see clipper_worker.metrics.ModelMetrics.
        self.metrics = metrics
        self.model = model
        self.version = version
        #: The input type as given to the worker.
        self.input_type = input_type
        #: A logger for the model's own lifecycle lines (info, warn, error ... with keyword fields).
        self.log = log
