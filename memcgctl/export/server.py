"""The HTTP server of `memcgctl export --listen`, as node_exporter behaves:
/metrics (and a small page at /) and 404 for every other path, one request
per connection, a timeout on each connection, and a bound on connections
that idle clients cannot use up.

The standard library's threading HTTP server gives each connection a thread
and an fd until the client finishes; prometheus_client's start_http_server
answers every path and waits on a silent client for ever.  Here a connection
that has not yet sent its request is the first to go: at the bound, the
oldest such connection is closed to make room, so a scrape is answered
however many clients sit idle or send half a request.
"""

from __future__ import annotations

import errno
import os
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

# Well under systemd's default of 1,024 fds, and far more than scrapers need.
MAX_CONNECTIONS = 64
# How long a client may take to send its request or read the answer.
CONNECTION_TIMEOUT_SECONDS = 10.0

INDEX_PAGE = (b"<html><head><title>memcgctl exporter</title></head><body>"
              b"<h1>memcgctl exporter</h1><p><a href=\"/metrics\">Metrics</a></p></body></html>\n")


class MetricsHandler(BaseHTTPRequestHandler):
    """GET or HEAD of /metrics (one scrape) or / (a page linking to it)."""

    server: MetricsServer
    timeout = CONNECTION_TIMEOUT_SECONDS  # socket timeout of each read and write
    server_version = "memcgctl-exporter"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.answer(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self.answer(send_body=False)

    def answer(self, send_body: bool) -> None:
        self.server.started_answering(self.request)
        path = self.path.partition("?")[0]  # a query string is allowed, as by node_exporter
        if path == "/metrics":
            body, content_type = self.server.scrape(self.headers.get("Accept", ""))
            status = 200
        elif path == "/":
            status, content_type, body = 200, "text/html; charset=utf-8", INDEX_PAGE
        else:
            status, content_type, body = 404, "text/plain; charset=utf-8", b"Not found: see /metrics\n"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format, *args) -> None:  # noqa: A002 (http.server's signature)
        pass  # a line per scrape would fill the journal; Prometheus records its scrapes


class MetricsServer(socketserver.ThreadingMixIn, HTTPServer):
    """Serves REGISTRY's scrapes, one at a time, on ADDRESS (host, port)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], registry: CollectorRegistry,
                 max_connections: int = MAX_CONNECTIONS):
        family, _, _, _, sockaddr = socket.getaddrinfo(address[0], address[1], type=socket.SOCK_STREAM,
                                                       flags=socket.AI_PASSIVE)[0]
        self.address_family = family
        self.registry = registry
        self.max_connections = max_connections
        self._lock = threading.Lock()
        self._scrape_lock = threading.Lock()  # one scrape reads the groups at a time
        # Open connections: socket -> monotonic time it came, for those still
        # sending their request (idle); those being answered are in _answering.
        self._waiting: dict[socket.socket, float] = {}
        self._answering: set[socket.socket] = set()
        host, port = sockaddr[0], sockaddr[1]
        if not isinstance(host, str) or not isinstance(port, int):  # (int, bytes): a Python built without IPv6
            raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))
        super().__init__((host, port), MetricsHandler)

    def scrape(self, accept: str) -> tuple[bytes, str]:
        """One scrape in the format ACCEPT (an Accept header) asks for, and its content type."""
        encoder, content_type = choose_encoder(accept)  # Prometheus's text format, or OpenMetrics
        with self._scrape_lock:
            return encoder(self.registry), content_type

    def verify_request(self, request, client_address) -> bool:
        """Make room for REQUEST: at the bound, close the oldest connection that
        has not sent its request yet; if every one is being answered, refuse."""
        with self._lock:
            if len(self._waiting) + len(self._answering) >= self.max_connections:
                if not self._waiting:
                    return False  # closed at once by socketserver
                oldest = min(self._waiting, key=self._waiting.__getitem__)
                del self._waiting[oldest]
                _hang_up(oldest)  # its thread's read returns, and the thread ends
            self._waiting[request] = time.monotonic()
        return True

    def started_answering(self, request) -> None:
        with self._lock:
            if self._waiting.pop(request, None) is not None:
                self._answering.add(request)

    def shutdown_request(self, request) -> None:
        with self._lock:
            self._waiting.pop(request, None)
            self._answering.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        pass  # a client that went away or timed out: nothing to say, the next scrape goes on

    def get_request(self):
        try:
            return super().get_request()
        except OSError:
            time.sleep(0.1)  # accept failed (EMFILE): wait for fds rather than spin on the ready socket
            raise


def _hang_up(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already gone
