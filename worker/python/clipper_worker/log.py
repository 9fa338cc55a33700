"""Structured log lines on stdout, one JSON object per line in the form the
TypeScript processes write (pino: level number, time in ms, service, pid,
msg, and the event's fields), so one log pipeline reads both."""
import json
import os
import sys
import threading
import time
from typing import Any, Dict, Optional

LEVELS = {"trace": 10, "debug": 20, "info": 30, "warn": 40, "error": 50, "fatal": 60, "silent": 100}
_lock = threading.Lock()


class Log:
    def __init__(self, service: str, level: str, fields: Optional[Dict[str, Any]] = None) -> None:
        self._service = service
        self._min = LEVELS.get(level, 30)
        self._fields = fields or {}

    def child(self, **fields: Any) -> "Log":
        c = Log(self._service, "info", {**self._fields, **fields})
        c._min = self._min
        return c

    def enabled(self, level: str) -> bool:
        return LEVELS[level] >= self._min

    def _write(self, level: str, msg: str, fields: Dict[str, Any]) -> None:
        if LEVELS[level] < self._min:
            return
        line = {"level": LEVELS[level], "time": int(time.time() * 1000), "service": self._service, "pid": os.getpid(), "name": self._service}
        line.update(self._fields)
        line.update(fields)
        line["msg"] = msg
        text = json.dumps(line, default=str, separators=(",", ":")) + "\n"
        with _lock:
            try:
                sys.stdout.write(text)
                sys.stdout.flush()
            except (OSError, ValueError):
                pass  # stdout gone: nobody reads the log any more

    def trace(self, msg: str, **f: Any) -> None:
        self._write("trace", msg, f)

    def debug(self, msg: str, **f: Any) -> None:
        self._write("debug", msg, f)

    def info(self, msg: str, **f: Any) -> None:
        self._write("info", msg, f)

    def warn(self, msg: str, **f: Any) -> None:
        self._write("warn", msg, f)

    def error(self, msg: str, **f: Any) -> None:
        self._write("error", msg, f)

    def fatal(self, msg: str, **f: Any) -> None:
        self._write("fatal", msg, f)

    # The names Python's logging uses, so a model can treat runtime.log like a logging.Logger for simple calls.
    warning = warn
    critical = fatal
