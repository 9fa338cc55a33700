"""Runs one BatchRequest through the model and builds its per-item answer
(heartbeat.proto BatchResult), as worker/batch-executor.ts does: items
already past their deadline are answered DEADLINE_EXCEEDED without reaching
the model, the rest are decoded and given to the model in calls of at most
--max-batch-size inputs, and each output (or error) becomes an item status
plus a payload frame. No sockets here, so it is testable alone."""
import asyncio
import inspect
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Sequence, Tuple

from .inputs import decode_input
from .input_types import parse_input_type

OK, INVALID_ARGUMENT, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE = 0, 3, 4, 8, 13, 14
EMPTY = b""


@dataclass
class Answer:
    #: (code, message) per item; code 0 means the output frame is the item's answer.
    items: List[Tuple[int, str]]
    outputs: List[bytes]
    model_micros: int = 0
    model_calls: int = 0
    #: Why a model call failed as a whole (raised, or returned the wrong shape); None otherwise.
    model_error: Optional[str] = None
    #: A model call that ran past --model-timeout-ms and has not returned (its thread), else None.
    overdue: Optional[threading.Thread] = None


def fail_all(count: int, code: int, message: str) -> Answer:
    return Answer(items=[(code, message)] * count, outputs=[EMPTY] * count)


@dataclass
class BatchJob:
    input_type: str
    predict: Callable[[list], Any]
    max_batch_size: int = 0
    model_timeout_ms: int = 0
    now_micros: Callable[[], int] = field(default=lambda: time.time_ns() // 1000)


def run_batch(job: BatchJob, request, payloads: Sequence[bytes]) -> Answer:
    """Answers every item, whatever the model does: never raises."""
    count = len(payloads)
    if request.input_type != "" and parse_input_type(request.input_type) != job.input_type:
        return fail_all(count, INVALID_ARGUMENT, f"batch input type '{request.input_type}' does not match this worker's '{job.input_type}'")
    items: List[Tuple[int, str]] = [(OK, "")] * count
    outputs: List[bytes] = [EMPTY] * count
    now = job.now_micros()
    deadlines = request.item_deadlines_unix_micros
    live_index: List[int] = []
    live_inputs: list = []
    for i in range(count):
        # 0 (unset) means no deadline; a passed one is not worth model time: the gateway has answered that caller already.
        deadline = deadlines[i] if i < len(deadlines) else 0
        if 0 < deadline <= now:
            items[i] = (DEADLINE_EXCEEDED, "deadline passed before the model ran")
            continue
        ok, value = decode_input(job.input_type, payloads[i])
        if not ok:
            items[i] = (INVALID_ARGUMENT, str(value))
            continue
        live_index.append(i)
        live_inputs.append(value)
    # The gateway respects the registered max_batch_size; splitting keeps the model within it even if not.
    chunk = job.max_batch_size if job.max_batch_size > 0 else max(1, len(live_inputs))
    answer = Answer(items=items, outputs=outputs)
    for start in range(0, len(live_inputs), chunk):
        index = live_index[start:start + chunk]
        if answer.overdue is not None:
            for i in index:
                items[i] = (DEADLINE_EXCEEDED, "not run: an earlier model call of this batch did not return in time")
            continue
        t0 = time.perf_counter_ns()
        result = _call_model(job.predict, live_inputs[start:start + chunk], job.model_timeout_ms)
        answer.model_micros += (time.perf_counter_ns() - t0) // 1000
        answer.model_calls += 1
        kind = result[0]
        if kind == "overdue":
            answer.overdue = result[2]
            for i in index:
                items[i] = (DEADLINE_EXCEEDED, result[1])
            continue
        if kind == "error":
            if answer.model_error is None:
                answer.model_error = result[1]
            for i in index:
                items[i] = (INTERNAL, result[1])
            continue
        for k, value in enumerate(result[1]):
            i = index[k]
            ok, frame_or_code, message = _encode_output(value)
            if ok:
                outputs[i] = frame_or_code
            else:
                items[i] = (frame_or_code, message)
    return answer


_loops = threading.local()


def _settle(value: Any) -> Any:
    """An awaitable (an async predict) is run to its end on this thread's own event loop."""
    if not inspect.isawaitable(value):
        return value
    loop = getattr(_loops, "loop", None)
    if loop is None:
        loop = _loops.loop = asyncio.new_event_loop()
    return loop.run_until_complete(value)


def _describe(value: Any) -> str:
    return "None" if value is None else f"a {type(value).__name__}"


def _checked(value: Any, n: int) -> Tuple:
    if isinstance(value, (str, bytes, bytearray, dict)) or not hasattr(value, "__len__") or not hasattr(value, "__iter__"):
        return ("error", f"model returned {_describe(value)}, not a list with one output per input")
    if len(value) != n:
        return ("error", f"model returned {len(value)} outputs for {n} inputs; it must return one output per input, in order")
    return ("ok", list(value))


def _error_text(err: BaseException) -> str:
    return str(err) or type(err).__name__


def _call_model(predict: Callable[[list], Any], inputs: list, timeout_ms: int) -> Tuple:
    """("ok", outputs) | ("error", why) | ("overdue", why, thread)."""
    if timeout_ms <= 0:
        try:
            return _checked(_settle(predict(inputs)), len(inputs))
        except Exception as err:
            return ("error", _error_text(err))
    # A thread cannot be stopped: the call runs on one of its own, and the batch stops waiting for it after the timeout.
    box: dict = {}

    def call() -> None:
        try:
            box["value"] = _settle(predict(inputs))
        except BaseException as err:  # reported as the batch's error below
            box["error"] = err

    t = threading.Thread(target=call, name="clipper-model-call", daemon=True)
    t.start()
    t.join(timeout_ms / 1000)
    if t.is_alive():
        return ("overdue", f"the model did not return within {timeout_ms} ms (model timeout)", t)
    if "error" in box:
        return ("error", _error_text(box["error"]))
    return _checked(box.get("value"), len(inputs))


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays (what scikit-learn returns) as their plain values.
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _encode_output(value: Any) -> Tuple[bool, Any, str]:
    """(True, frame, "") or (False, code, message). A returned exception fails only its item,
    with its ``code`` attribute when that is a gRPC status (1-16), else INTERNAL."""
    if isinstance(value, str):
        return True, value.encode("utf-8"), ""
    if isinstance(value, BaseException):
        code = getattr(value, "code", None)
        status = code if isinstance(code, int) and not isinstance(code, bool) and 1 <= code <= 16 else INTERNAL
        return False, status, str(value) or "model returned an error for this item"
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default)
    except (TypeError, ValueError, RecursionError) as err:
        return False, INTERNAL, f"model output is not JSON-serializable: {err}"
    return True, text.encode("utf-8"), ""
