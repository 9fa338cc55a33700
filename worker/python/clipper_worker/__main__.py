"""/usr/bin/python3 -m clipper_worker: flags -> load the model -> setup(runtime)
-> serve until a signal or a drain (exit codes as clipper-worker: 0 after a
drain, 1 when the gateways refused it, its model hangs or setup failed, 2
for bad usage)."""
import os
import signal
import socket
import sys
import threading

MIN_PYTHON = (3, 9)


def _fail(message: str, code: int) -> "NoReturn":  # type: ignore[name-defined]
    sys.stderr.write(f"clipper_worker: {message}\n")
    sys.stderr.flush()
    sys.exit(code)


def _check_interpreter() -> None:
    missing = []
    for module, package in (("zmq", "python3-zmq"), ("google.protobuf", "python3-protobuf"), ("numpy", "python3-numpy")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if sys.version_info < MIN_PYTHON or missing:
        need = f"; missing: {' '.join(missing)} (apt-get install {' '.join(missing)})" if missing else ""
        _fail(f"this interpreter ({sys.executable}, Python {sys.version.split()[0]}) cannot run the worker{need}. "
              f"Run it with Debian's /usr/bin/python3 (Python >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]}), whose packages it uses", 2)


def main(argv=None) -> int:
    _check_interpreter()
    from . import ModelRuntime
    from . import metrics as metrics_mod
    from .config import COMMAND, parse_config
    from .curve import load_credentials
    from .input_types import parse_input_type
    from .log import Log
    from .model_loader import load_model

    kind, c = parse_config(list(sys.argv[1:] if argv is None else argv), dict(os.environ))
    if kind == "help":
        print(c)
        return 0
    if kind == "error":
        _fail(str(c), 2)
    log = Log("clipper-worker", c.log_level)
    if c.exit_with_stdin:
        _watch_stdin(log)
    credentials = None
    if c.curve_secret_key:
        try:
            credentials = load_credentials(c.curve_secret_key, c.gateway_public_key)
        except ImportError as err:
            _fail(str(err), 2)
        if isinstance(credentials, str):
            _fail(credentials, 2)
    if c.metrics_port is not None and not metrics_mod.available():
        _fail(f"--metrics-port needs python3-prometheus-client (apt-get install python3-prometheus-client) in {sys.executable}", 2)
    tls = None
    if c.tls_cert:
        from .ops_server import tls_context
        try:
            tls = tls_context(c.tls_cert, c.tls_key, c.tls_client_ca)
        except (OSError, ValueError) as err:
            _fail(f"--tls-cert/--tls-key/--tls-client-ca: cannot load: {err}", 2)
    try:
        from .runtime import Settings, Worker
    except ImportError as err:  # the stubs generated from proto/ are missing
        _fail(str(err), 2)
    model = load_model(c.module)
    if isinstance(model, str):
        _fail(model, 2)

    metrics = metrics_mod.WorkerMetrics(c.model, c.version)
    if model.setup is not None:
        # Before registering: no query may reach a model that is not set up.
        try:
            model.setup(ModelRuntime(metrics.model, c.model, c.version, c.input_type, log.child(component="model")))
        except BaseException as err:
            log.fatal("model setup failed", err=repr(err))
            _fail(f"the setup function of {model.where} failed: {type(err).__name__}: {err}", 1)
    worker = Worker(Settings(
        model=c.model, version=c.version, input_type_text=c.input_type, input_type=parse_input_type(c.input_type),
        gateways=c.gateways, gateway_resolve_ms=c.gateway_resolve_ms, predict=model.predict, concurrency=c.concurrency,
        max_batch_size=c.max_batch_size, model_timeout_ms=c.model_timeout_ms, heartbeat_ms=c.heartbeat_ms,
        description=f"host={socket.gethostname()} pid={os.getpid()} python={model.where}", credentials=credentials, metrics=metrics,
    ), log)
    server = None
    if c.metrics_port is not None:
        from .ops_server import OpsServer
        try:
            server = OpsServer(c.metrics_host, c.metrics_port, metrics.exposition,
                               lambda: (True, "") if worker.registered_gateways() > 0 else (False, "not registered with any gateway"), tls)
        except OSError as err:
            _fail(f"--metrics-port {c.metrics_port} on {c.metrics_host}: {err.strerror or err}", 2)
    print(f"clipper-worker: {c.model}:{c.version} ({c.input_type}) connecting to {c.gateway}", flush=True)
    if server is not None:
        print(f"clipper-worker: metrics=http://{c.metrics_host}:{server.port}/metrics", flush=True)
        log.info("metrics listening", metricsPort=server.port, host=c.metrics_host)
    _handle_signals(worker, log, lambda: _reload_tls(server, c, log))
    code = worker.run()
    worker.release(2.0)
    if server is not None:
        server.close()
    sys.stdout.flush()
    # A hung model's thread cannot be stopped; nothing else is left to wait for.
    os._exit(code)


#: Longest a graceful stop may take before the process exits anyway, in seconds (core/lifecycle.ts).
SHUTDOWN_DEADLINE_S = 10


def _handle_signals(worker, log, reload) -> None:
    state = {"stopping": False}

    def stop(signum, _frame) -> None:
        name = signal.Signals(signum).name
        if state["stopping"]:
            log.warn("second signal, exiting now", signal=name)
            os._exit(1)
        state["stopping"] = True
        log.info("shutting down", signal=name)
        timer = threading.Timer(SHUTDOWN_DEADLINE_S, lambda: (log.error("shutdown overran its deadline, exiting"), os._exit(1)))
        timer.daemon = True
        timer.start()
        # A signal drains: finish the batches in flight, then exit 0.
        worker.post(("drain", "signal"))

    def hup(_signum, _frame) -> None:
        log.info("reloading", signal="SIGHUP")
        reload()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, hup)
    # A signal wakes the loop from its poll at once.
    signal.set_wakeup_fd(worker.wake_fd, warn_on_full_buffer=False)


def _reload_tls(server, c, log) -> None:
    if server is None or not c.tls_cert:
        return
    from .ops_server import tls_context
    try:
        server.reload_tls(tls_context(c.tls_cert, c.tls_key, c.tls_client_ca))
        log.info("metrics port certificate reloaded")
    except (OSError, ValueError) as err:
        log.error("reload failed; keeping the previous certificate", err=str(err))


def _watch_stdin(log) -> None:
    """--exit-with-stdin: the end of standard input means the process that started this one is gone."""

    def watch() -> None:
        try:
            while sys.stdin.buffer.read1(4096):
                pass  # whatever is written is not a message: only the end of the pipe is
        except (OSError, ValueError):
            pass
        log.warn("standard input closed: the process that started this one is gone; exiting")
        os._exit(1)

    threading.Thread(target=watch, name="clipper-stdin", daemon=True).start()


if __name__ == "__main__":
    main()
