"""clipper_worker's flags, each with the CLIPPER_* environment variable the
TypeScript clipper-worker reads (worker/worker-config.ts), and their checks.

A flag wins over its variable, which wins over the default. Bad usage is an
error naming the flag (the caller exits 2); nothing here raises.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

from .input_types import parse_input_type, unknown_input_type_message

COMMAND = "clipper_worker"
HINT = "run /usr/bin/python3 -m clipper_worker --help for every option"

#: Shortest heartbeat interval accepted, in ms: below it the beats themselves become load.
MIN_HEARTBEAT_MS = 10

# (flag, env variable, default, kind, help); kinds: string, count, host, level, flag.
OPTIONS: List[Tuple[str, str, str, str, str]] = [
    ("model", "CLIPPER_MODEL_NAME", "", "string", "model name (required)"),
    ("version", "CLIPPER_MODEL_VERSION", "", "string", "model version (required)"),
    ("input-type", "CLIPPER_INPUT_TYPE", "doubles", "string", "bytes, integers, floats, doubles or strings (Clipper aliases accepted)"),
    ("gateway", "CLIPPER_GATEWAY", "tcp://127.0.0.1:7000", "string",
     "the gateways' worker RPC endpoints, tcp://host:port or ipc:///path (a gateway on this host, --rpc-ipc-dir), comma-separated; a host name means every address it resolves to (re-resolved)"),
    ("gateway-resolve-ms", "CLIPPER_GATEWAY_RESOLVE_MS", "10000", "count", "how often gateway host names are resolved again, ms (>= 100)"),
    ("module", "CLIPPER_MODULE", "", "string",
     "model module (required): a .py file or an importable module, optionally :FUNCTION (default predict); predict(inputs) -> outputs"),
    ("concurrency", "CLIPPER_WORKER_CONCURRENCY", "1", "count", "batches run at the same time, each on its own thread (>= 1)"),
    ("max-batch-size", "CLIPPER_MAX_BATCH_SIZE", "0", "count", "largest batch the model takes; 0 for no limit"),
    ("model-timeout-ms", "CLIPPER_MODEL_TIMEOUT_MS", "0", "count",
     "a model call running this long has its items answered DEADLINE_EXCEEDED; if it has not returned as long again, the worker exits 1 (its supervisor restarts it); 0 for no timeout"),
    ("heartbeat-ms", "CLIPPER_HEARTBEAT_MS", "1000", "count",
     f"heartbeat and registration retry interval in ms until the gateway names one (>= {MIN_HEARTBEAT_MS})"),
    ("metrics-port", "CLIPPER_WORKER_METRICS_PORT", "", "string",
     "serve GET /metrics (worker and model metrics), /healthz and /readyz on this port; 0 picks a free one; empty for none"),
    ("metrics-host", "CLIPPER_WORKER_METRICS_HOST", "127.0.0.1", "host", "address the metrics port listens on (0.0.0.0 for every interface)"),
    ("tls-cert", "CLIPPER_TLS_CERT", "", "string", "PEM certificate chain: serve the metrics port over HTTPS (with --tls-key); re-read on SIGHUP"),
    ("tls-key", "CLIPPER_TLS_KEY", "", "string", "PEM private key of --tls-cert"),
    ("tls-client-ca", "CLIPPER_TLS_CLIENT_CA", "", "string", "PEM CA bundle: require client certificates it signed on the metrics port (mutual TLS)"),
    ("gateway-public-key", "CLIPPER_GATEWAY_PUBLIC_KEY", "", "string",
     "the gateway's CURVE public key (40 Z85 characters, or a file holding it), for a worker port that runs CURVE; with --curve-secret-key"),
    ("curve-secret-key", "CLIPPER_WORKER_CURVE_SECRET_KEY", "", "string",
     "file with this worker's CURVE secret key (clipper keys generate NAME); its public key must be in the gateway's --worker-keys"),
    ("exit-with-stdin", "CLIPPER_EXIT_WITH_STDIN", "false", "flag",
     "exit at once when standard input reaches its end: for a supervisor that keeps a pipe to it open, so the worker never outlives it"),
    ("log-level", "CLIPPER_LOG_LEVEL", "info", "level", "fatal, error, warn, info, debug or trace"),
]

_FLAG_VALUES = {"1": True, "true": True, "0": False, "false": False}
_LEVELS = {"fatal", "error", "warn", "info", "debug", "trace", "silent"}
# As core/worker-endpoint.ts: a bracketed IPv6 address, or a name / IPv4 address.
_TCP_ENDPOINT = re.compile(r"^tcp://(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9_][A-Za-z0-9_.-]*)):(\d{1,5})$")
_IPC_SCHEME = "ipc://"
# Lists are comma-separated and the gateway's endpoints line space-separated: neither may be in a path.
_IPC_FORBIDDEN = re.compile(r"[\x00-\x20\x7f,]")
#: Longest Unix domain socket path, in bytes: sockaddr_un's sun_path holds 108, the last a NUL.
IPC_PATH_MAX_BYTES = 107


@dataclass(frozen=True)
class Endpoint:
    """tcp://HOST:PORT."""
    host: str
    port: int

    def __str__(self) -> str:
        return f"tcp://[{self.host}]:{self.port}" if ":" in self.host else f"tcp://{self.host}:{self.port}"


@dataclass(frozen=True)
class IpcEndpoint:
    """ipc:///absolute/path: a Unix domain socket of a gateway on this host."""
    path: str

    def __str__(self) -> str:
        return f"{_IPC_SCHEME}{self.path}"


def ipc_path_problem(path: str) -> Optional[str]:
    """Why `path` cannot be a worker socket's path, or None (core/worker-endpoint.ts ipcPathProblem)."""
    if not path.startswith("/"):
        return f"the socket path '{path}' is not absolute"
    if _IPC_FORBIDDEN.search(path):
        shown = re.sub(r"[\x00-\x1f\x7f]", "?", path)
        return f"the socket path '{shown}' holds whitespace, a ',' or a control character"
    size = len(path.encode("utf-8", "surrogateescape"))
    if size > IPC_PATH_MAX_BYTES:
        return (f"the socket path {path} is {size} bytes long; a Unix domain socket's path holds at most "
                f"{IPC_PATH_MAX_BYTES} (use a shorter directory)")
    return None


@dataclass(frozen=True)
class WorkerConfig:
    model: str
    version: str
    input_type: str
    gateway: str
    gateways: Tuple[Endpoint, ...]
    gateway_resolve_ms: int
    module: str
    concurrency: int
    max_batch_size: int
    model_timeout_ms: int
    heartbeat_ms: int
    metrics_port: Optional[int]
    metrics_host: str
    tls_cert: str
    tls_key: str
    tls_client_ca: str
    curve_secret_key: str
    gateway_public_key: str
    exit_with_stdin: bool
    log_level: str


def usage() -> str:
    lines = [
        f"Usage: /usr/bin/python3 -m {COMMAND} --model NAME --version V --module PATH_OR_MODULE [options]",
        "",
        "Serves a Python model to clipper-ts gateways over the native worker dialect.",
        "Every option also reads its environment variable; a flag wins over it.",
        "",
    ]
    for flag, env, default, kind, text in OPTIONS:
        value = "" if kind == "flag" else " VALUE"
        shown = f" (default {default})" if default not in ("", "false") else ""
        lines.append(f"  --{flag}{value}  [{env}]{shown}")
        lines.append(f"      {text}")
    return "\n".join(lines)


def parse_endpoint(text: str) -> Union[Endpoint, IpcEndpoint, str]:
    """tcp://HOST:PORT or ipc:///absolute/path, or why not."""
    if text.startswith(_IPC_SCHEME):
        path = text[len(_IPC_SCHEME):]
        problem = ipc_path_problem(path)
        return IpcEndpoint(path) if problem is None else f"'{text}': {problem}"
    # fullmatch: $ in a Python pattern also matches before a final newline.
    m = _TCP_ENDPOINT.fullmatch(text)
    port = int(m.group(3)) if m else 0
    if m is None or port < 1 or port > 65535:
        return (f"'{text}' is not tcp://HOST:PORT with a port from 1 to 65535 (e.g. tcp://127.0.0.1:7000) "
                "nor ipc:///absolute/path (e.g. ipc:///run/clipper/rpc-0.sock)")
    return Endpoint(m.group(1) or m.group(2), port)


def parse_endpoint_list(text: str) -> Union[List[Union[Endpoint, IpcEndpoint]], str]:
    """The endpoints of a comma-separated list of tcp://HOST:PORT and ipc:///PATH, or why not."""
    parts = [p.strip() for p in text.split(",") if p.strip() != ""]
    if not parts:
        return "no endpoint given (tcp://HOST:PORT or ipc:///PATH, comma-separated for several)"
    out: List[Union[Endpoint, IpcEndpoint]] = []
    for p in parts:
        e = parse_endpoint(p)
        if isinstance(e, str):
            return e
        if e not in out:
            out.append(e)
    return out


def _split_argv(argv: List[str], kinds: Dict[str, str]) -> Union[Dict[str, object], str]:
    """--flag VALUE, --flag=VALUE and bare --flag for flags; the first problem as text."""
    values: Dict[str, object] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or arg == "--":
            return f"unexpected argument '{arg}': this command takes only --options"
        name, eq, inline = arg[2:].partition("=")
        if name == "help":
            values["help"] = True
            i += 1
            continue
        if name not in kinds:
            return f"unknown option '--{name}'"
        if kinds[name] == "flag":
            if eq:
                return f"option '--{name}' takes no value"
            values[name] = True
            i += 1
            continue
        if eq:
            values[name] = inline
            i += 1
            continue
        if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
            return f"option '--{name} <value>' argument missing"
        values[name] = argv[i + 1]
        i += 2
    return values


def parse_config(argv: List[str], env: Dict[str, str]) -> Tuple[str, Union[WorkerConfig, str]]:
    """("ok", config), ("help", text) or ("error", message)."""
    kinds = {flag: kind for flag, _, _, kind, _ in OPTIONS}
    given = _split_argv(argv, kinds)
    if isinstance(given, str):
        return "error", f"{given}\n({HINT})"
    if given.get("help") is True:
        return "help", usage()
    c: Dict[str, object] = {}
    for flag, var, default, kind, _ in OPTIONS:
        if kind == "flag" and given.get(flag) is True:
            c[flag] = True
            continue
        from_flag = given.get(flag)
        raw = from_flag if isinstance(from_flag, str) else env.get(var, default)
        source = f"--{flag}" if isinstance(from_flag, str) else (var if var in env else f"default of --{flag}")
        if kind == "flag":
            b = _FLAG_VALUES.get(raw.lower())
            if b is None:
                return "error", f"{source}: '{raw}' is not a boolean (1, true, 0 or false)"
            c[flag] = b
        elif kind == "count":
            if not re.fullmatch(r"\d+", raw) or int(raw) > 2**53 - 1:
                return "error", f"{source}: '{raw}' is not a whole number >= 0"
            c[flag] = int(raw)
        elif kind == "level":
            if raw not in _LEVELS:
                return "error", f"{source}: '{raw}' is not a log level (fatal, error, warn, info, debug, trace, silent)"
            c[flag] = raw
        elif kind == "host":
            if raw.strip() == "" or any(ch.isspace() for ch in raw):
                return "error", f"{source}: '{raw}' is not a host name or address"
            c[flag] = raw
        else:
            c[flag] = raw
    error = (
        _check_name("model name", "--model", "CLIPPER_MODEL_NAME", str(c["model"]))
        or _check_name("model version", "--version", "CLIPPER_MODEL_VERSION", str(c["version"]))
        or (None if parse_input_type(str(c["input-type"])) else f"--input-type: {unknown_input_type_message(str(c['input-type']))}")
    )
    gateways = parse_endpoint_list(str(c["gateway"]))
    if error is None and isinstance(gateways, str):
        error = f"--gateway: {gateways}"
    error = (
        error
        or ("--gateway-resolve-ms must be at least 100" if int(c["gateway-resolve-ms"]) < 100 else None)  # type: ignore[arg-type]
        or ("--module is required (or set CLIPPER_MODULE): a .py file or an importable module name" if str(c["module"]).strip() == "" else None)
        or ("--concurrency must be at least 1" if int(c["concurrency"]) < 1 else None)  # type: ignore[arg-type]
        or (f"--heartbeat-ms must be at least {MIN_HEARTBEAT_MS}" if int(c["heartbeat-ms"]) < MIN_HEARTBEAT_MS else None)  # type: ignore[arg-type]
        or _check_metrics_port(str(c["metrics-port"]))
        or ("--gateway-public-key and --curve-secret-key go together: give both (CURVE) or neither"
            if (c["gateway-public-key"] == "") != (c["curve-secret-key"] == "") else None)
        or ("--tls-cert and --tls-key go together: give both or neither" if (c["tls-cert"] == "") != (c["tls-key"] == "") else None)
        or ("--tls-cert serves the metrics port: give --metrics-port too" if c["tls-cert"] != "" and c["metrics-port"] == "" else None)
        or ("--tls-client-ca needs --tls-cert and --tls-key" if c["tls-client-ca"] != "" and c["tls-cert"] == "" else None)
    )
    if error is not None:
        return "error", f"{error}\n({HINT})"
    assert not isinstance(gateways, str)
    return "ok", WorkerConfig(
        model=str(c["model"]),
        version=str(c["version"]),
        input_type=str(c["input-type"]),
        gateway=str(c["gateway"]),
        gateways=tuple(gateways),
        gateway_resolve_ms=int(c["gateway-resolve-ms"]),  # type: ignore[arg-type]
        module=str(c["module"]),
        concurrency=int(c["concurrency"]),  # type: ignore[arg-type]
        max_batch_size=int(c["max-batch-size"]),  # type: ignore[arg-type]
        model_timeout_ms=int(c["model-timeout-ms"]),  # type: ignore[arg-type]
        heartbeat_ms=int(c["heartbeat-ms"]),  # type: ignore[arg-type]
        metrics_port=None if c["metrics-port"] == "" else int(str(c["metrics-port"])),
        metrics_host=str(c["metrics-host"]),
        tls_cert=str(c["tls-cert"]),
        tls_key=str(c["tls-key"]),
        tls_client_ca=str(c["tls-client-ca"]),
        curve_secret_key=str(c["curve-secret-key"]),
        gateway_public_key=str(c["gateway-public-key"]),
        exit_with_stdin=bool(c["exit-with-stdin"]),
        log_level=str(c["log-level"]),
    )


def _check_name(what: str, flag: str, env: str, value: str) -> Optional[str]:
    # The one rule of core/names.ts: Clipper joins names into Redis keys with ',' and ':'.
    if value == "":
        return f"{flag} is required (or set {env})"
    if "," in value or ":" in value:
        return f"{flag}: the {what} '{value}' must not contain ',' or ':' (Clipper uses them as key separators)"
    if value.strip() != value:
        return f"{flag}: the {what} '{value}' must not start or end with spaces"
    return None


def _check_metrics_port(text: str) -> Optional[str]:
    if text == "" or (re.fullmatch(r"\d+", text) and int(text) <= 65535):
        return None
    return f"--metrics-port: '{text}' is not a port (0-65535; 0 picks a free one; empty for no metrics server)"
