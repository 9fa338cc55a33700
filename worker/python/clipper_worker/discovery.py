"""Which gateway addresses a worker serves (worker/gateway-discovery.ts):
its --gateway endpoints, each host name resolved to every address it has
(IPv4 ones when it has any), again every --gateway-resolve-ms, so a worker
follows the gateways behind a Kubernetes headless Service as they come and
go. Lookups block, so they run on a thread of their own; an endpoint given
as an IP address, or a Unix domain socket (ipc://), is used as it is."""
import ipaddress
import socket
import threading
from typing import Callable, Dict, FrozenSet, List, Sequence

from .config import IpcEndpoint


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def zmq_address(ip: str, port: int) -> str:
    return f"tcp://[{ip}]:{port}" if ":" in ip else f"tcp://{ip}:{port}"


def addresses_of(host: str) -> List[str]:
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    v4 = [i[4][0] for i in infos if i[0] == socket.AF_INET]
    chosen = v4 if v4 else [i[4][0] for i in infos]
    return list(dict.fromkeys(chosen))


class Discovery:
    def __init__(self, endpoints: Sequence, every_ms: int, log, on_change: Callable[[FrozenSet[str]], None]) -> None:
        self._endpoints = list(endpoints)
        self._every_s = every_ms / 1000
        self._log = log
        self._on_change = on_change
        self._known: Dict[object, List[str]] = {}
        self._current: FrozenSet[str] = frozenset()
        self._stop = threading.Event()

    @property
    def is_static(self) -> bool:
        return all(isinstance(e, IpcEndpoint) or is_ip(e.host) for e in self._endpoints)

    def start(self) -> None:
        """Static endpoints are reported at once; names from a thread that looks them up again and again."""
        if self.is_static:
            self._resolve()
            return
        threading.Thread(target=self._loop, name="clipper-discovery", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._resolve()
            self._stop.wait(self._every_s)

    def _resolve(self) -> None:
        found = set()
        for e in self._endpoints:
            if isinstance(e, IpcEndpoint):
                found.add(str(e))
                continue
            if is_ip(e.host):
                ips = [e.host]
            else:
                try:
                    ips = addresses_of(e.host)
                    self._known[e] = ips
                except OSError as err:
                    ips = self._known.get(e, [])
                    self._log.warn("cannot resolve gateway host; keeping its last addresses", host=e.host, err=str(err), keeping=len(ips))
            for ip in ips:
                found.add(zmq_address(ip, e.port))
        if self._stop.is_set():
            return
        nxt = frozenset(found)
        if nxt != self._current:
            self._current = nxt
            self._on_change(nxt)
