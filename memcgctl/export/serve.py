"""Where the metrics go: an HTTP /metrics endpoint, a node_exporter textfile,
or standard output.  prometheus_client does the exposition; server.py serves it."""

from __future__ import annotations

import signal
import socket
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from ..errors import UsageError, error_from_oserror
from .collector import GroupCollector
from .server import MetricsServer

# What stops a server: systemd's SIGTERM, Ctrl-C, a hang-up.
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def registry_of(collector: GroupCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def exposition(collector: GroupCollector) -> bytes:
    """One scrape in Prometheus's text format."""
    return generate_latest(registry_of(collector))


def write_textfile(collector: GroupCollector, path: Path) -> None:
    """One scrape written to PATH for node_exporter's textfile collector:
    to a temporary file beside it, then renamed over it, so that
    node_exporter never reads half a file (files.replace_file_atomically: no
    link followed on the way, nothing planted written through)."""
    from ..files import replace_file_atomically

    replace_file_atomically(Path(path), exposition(collector), "write metrics")


def parse_listen_address(text: str) -> tuple[str, int]:
    """ADDR:PORT (an IPv6 address in brackets: [::1]:9101) as (address, port)."""
    address, colon, port = text.rpartition(":")
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"listen address {text!r}", "expected ADDR:PORT, a port from 1 to 65535 "
                         "(127.0.0.1:9101, [::1]:9101, 0.0.0.0:9101)")
    address = address.removeprefix("[").removesuffix("]") if address.startswith("[") else address
    if not address:
        raise UsageError(f"listen address {text!r}", "no address before the port (0.0.0.0 for every address)")
    return address, int(port)


def serve(collector: GroupCollector, address: str, port: int, on_ready=None) -> int:
    """Serve /metrics on ADDRESS:PORT (server.MetricsServer) until SIGTERM,
    SIGINT or SIGHUP; the number of the signal that stopped it.
    ON_READY(address, port) is called once the socket listens."""
    # Blocked before the server's thread starts, so that the thread inherits
    # the mask and only sigwait() below receives them.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        try:
            server = MetricsServer((address, port), registry_of(collector))
        except socket.gaierror as err:
            raise UsageError(f"listen on {address}:{port}", f"unknown address: {err.strerror}") from err
        except OSError as err:
            raise error_from_oserror(err, "listen for scrapes", f"{address}:{port}") from err
        thread = threading.Thread(target=server.serve_forever, name="memcgctl-export", daemon=True)
        thread.start()
        if on_ready is not None:
            on_ready(*server.server_address[:2])
        received = signal.sigwait(STOP_SIGNALS)
        server.shutdown()
        server.server_close()
        thread.join(5)
        return received
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
