"""The worker's Prometheus metrics, with the TypeScript worker's names
(worker/metrics.ts), and the model's own (``runtime.metrics``, as
worker/model-metrics.ts): names get the prefix ``clipper_model_``; every
series carries ``service``, ``model`` and ``version`` labels. Needs Debian's
python3-prometheus-client; without it the model's metrics API still
works but records nothing, and --metrics-port is refused."""
import re
from typing import Any, Dict, Optional, Sequence

try:
    import prometheus_client as prom  # type: ignore
    from prometheus_client import CollectorRegistry  # type: ignore
except ImportError:
    prom = None

from .batch import DEADLINE_EXCEEDED, INVALID_ARGUMENT, OK

SERVICE = "clipper-worker"
#: Seconds, 100 µs to 10 s: the buckets of every clipper-ts duration histogram.
DURATION_BUCKETS_SECONDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
MODEL_METRIC_PREFIX = "clipper_model_"
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_BASE_LABELS = ("service", "model", "version")
_RESERVED = {"service", "model", "version", "le", "quantile"}
OUTCOMES = ("ok", "error", "expired", "invalid", "rejected")


def available() -> bool:
    return prom is not None


class _Handle:
    """One model metric; label values by name, among the metric's label names."""

    def __init__(self, metric: Any, base: Dict[str, str]) -> None:
        self._metric = metric
        self._base = base

    def _series(self, labels: Optional[Dict[str, Any]]) -> Any:
        if self._metric is None:
            return None
        values = dict(self._base)
        for k, v in (labels or {}).items():
            values[k] = str(v)
        return self._metric.labels(**values)

    def inc(self, value: float = 1, labels: Optional[Dict[str, Any]] = None) -> None:
        s = self._series(labels)
        if s is not None:
            s.inc(value)

    def dec(self, value: float = 1, labels: Optional[Dict[str, Any]] = None) -> None:
        s = self._series(labels)
        if s is not None:
            s.dec(value)

    def set(self, value: float, labels: Optional[Dict[str, Any]] = None) -> None:
        s = self._series(labels)
        if s is not None:
            s.set(value)

    def observe(self, value: float, labels: Optional[Dict[str, Any]] = None) -> None:
        s = self._series(labels)
        if s is not None:
            s.observe(value)


class ModelMetrics:
    """What ``setup(runtime)`` gets as ``runtime.metrics``. A name defined again with the same kind
    returns the metric already defined; with another kind it raises. Mistakes are TypeErrors naming the fix."""

    def __init__(self, registry: Any, base: Dict[str, str]) -> None:
        self._registry = registry
        self._base = base
        self._defined: Dict[str, tuple] = {}

    def counter(self, name: str, help: str = "", label_names: Sequence[str] = ()) -> _Handle:
        return self._define(name, "counter", help, label_names, None)

    def gauge(self, name: str, help: str = "", label_names: Sequence[str] = ()) -> _Handle:
        return self._define(name, "gauge", help, label_names, None)

    def histogram(self, name: str, help: str = "", label_names: Sequence[str] = (), buckets: Optional[Sequence[float]] = None) -> _Handle:
        return self._define(name, "histogram", help, label_names, buckets)

    def add_metric(self, name: str, type: str, description: str = "", buckets: Optional[Sequence[float]] = None) -> None:
        """Clipper's ``add_metric(name, type, description, buckets)``: Counter, Gauge or Histogram (any case)."""
        kind = type.lower()
        if kind == "summary":
            raise TypeError(f"metric {name}: Summary is not supported (summaries cannot be aggregated across replicas); use Histogram")
        if kind not in ("counter", "gauge", "histogram"):
            raise TypeError(f"metric {name}: unknown type '{type}'; use Counter, Gauge or Histogram")
        self._define(name, kind, description, (), buckets)

    def report_metric(self, name: str, value: float, labels: Optional[Dict[str, Any]] = None) -> None:
        """Clipper's ``report_metric(name, value)``: a counter is increased by value, a gauge set to it, a histogram observes it."""
        d = self._defined.get(name)
        if d is None:
            raise TypeError(f"no model metric named '{name}'; define it first with add_metric, counter, gauge or histogram")
        kind, handle = d
        if kind == "counter":
            handle.inc(value, labels)
        elif kind == "gauge":
            handle.set(value, labels)
        else:
            handle.observe(value, labels)

    def _define(self, name: str, kind: str, help: str, label_names: Sequence[str], buckets: Optional[Sequence[float]]) -> _Handle:
        if not isinstance(name, str) or not _NAME.match(name):
            raise TypeError(f"metric name '{name}' is invalid: use letters, digits and '_', not starting with a digit")
        existing = self._defined.get(name)
        if existing is not None:
            if existing[0] != kind:
                raise TypeError(f"metric {name} is already defined as a {existing[0]}, not a {kind}")
            return existing[1]
        labels = list(label_names)
        for l in labels:
            if not _NAME.match(l) or l.startswith("__"):
                raise TypeError(f"metric {name}: label name '{l}' is invalid")
            if l in _RESERVED:
                raise TypeError(f"metric {name}: label name '{l}' is reserved (the worker sets service, model and version)")
        metric = None
        if prom is not None:
            full = MODEL_METRIC_PREFIX + name
            args = dict(name=full, documentation=help or name, labelnames=[*_BASE_LABELS, *labels], registry=self._registry)
            if kind == "counter":
                metric = prom.Counter(**args)
            elif kind == "gauge":
                metric = prom.Gauge(**args)
            else:
                metric = prom.Histogram(**args, buckets=tuple(buckets) if buckets else DURATION_BUCKETS_SECONDS)
        handle = _Handle(metric, self._base)
        self._defined[name] = (kind, handle)
        return handle


def outcome_of(code: int) -> str:
    return "ok" if code == OK else "expired" if code == DEADLINE_EXCEEDED else "invalid" if code == INVALID_ARGUMENT else "error"


class WorkerMetrics:
    """clipper_worker_predict_duration_seconds, clipper_worker_items_total{outcome},
    clipper_worker_model_errors_total; the model's metrics on the same registry."""

    def __init__(self, model: str, version: str) -> None:
        base = {"service": SERVICE, "model": model, "version": version}
        self.registry = CollectorRegistry(auto_describe=True) if prom is not None else None
        self.model = ModelMetrics(self.registry, base)
        if prom is None:
            return
        # Process metrics as the TypeScript worker's process_* (without its nodejs_* ones).
        prom.ProcessCollector(registry=self.registry)
        self._duration = prom.Histogram(
            "clipper_worker_predict_duration_seconds", "Time the model spent on one batch, in seconds.",
            labelnames=_BASE_LABELS, buckets=DURATION_BUCKETS_SECONDS, registry=self.registry,
        ).labels(**base)
        items = prom.Counter(
            "clipper_worker_items_total",
            "Batch items answered, by outcome (ok, error, expired: deadline passed before the model ran, invalid: undecodable input, rejected: draining or overloaded).",
            labelnames=(*_BASE_LABELS, "outcome"), registry=self.registry,
        )
        self._items = {o: items.labels(**base, outcome=o) for o in OUTCOMES}
        self._model_errors = prom.Counter(
            "clipper_worker_model_errors_total", "Model calls that failed as a whole (raised, or returned no list of one output per input).",
            labelnames=_BASE_LABELS, registry=self.registry,
        ).labels(**base)

    def batch_ran(self, answer: Any) -> None:
        if prom is None:
            return
        if answer.model_calls > 0:
            self._duration.observe(answer.model_micros / 1e6)
        if answer.model_error is not None:
            self._model_errors.inc()
        for code, _ in answer.items:
            self._items[outcome_of(code)].inc()

    def rejected(self, count: int) -> None:
        if prom is not None and count > 0:
            self._items["rejected"].inc(count)

    def exposition(self) -> bytes:
        return prom.generate_latest(self.registry) if prom is not None else b""
