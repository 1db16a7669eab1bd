"""What the exporter answers, and what root trusts when it exports (issue 17,
findings 3, 9, 10, 11 and 12): only /metrics, a bound on connections that
idle clients cannot use up, the daemon's counters only from a checked
journal directory and only for the root being exported, and a textfile
written without following links."""

from __future__ import annotations

import http.client
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_export import free_port, samples, stop, value, wait_for

from conftest import run_cli

LOOPBACK = "127.0.0.1"


def start_exporter(root: Path, port: int, *args: str, max_fds: int | None = None) -> subprocess.Popen:
    """memcgctl export --listen on loopback; MAX_FDS: its RLIMIT_NOFILE."""
    def limit_fds():
        if max_fds is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_fds, max_fds))

    return subprocess.Popen([sys.executable, "-m", "memcgctl", "--root", str(root), "export", *args,
                             "--listen", f"{LOOPBACK}:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=limit_fds)


def get(port: int, path: str, method: str = "GET", timeout: float = 5) -> tuple[int, str, str]:
    """(status, content type, body) of METHOD PATH."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read().decode()
    finally:
        connection.close()


@pytest.fixture
def exporter(fake_v1):
    assert run_cli(fake_v1, "create", "web", "--limit", "100M").exit_code == 0
    port = free_port()
    process = start_exporter(fake_v1, port, max_fds=128)
    wait_for(lambda: get(port, "/metrics")[0] == 200, 30, "the exporter")
    yield process, port
    assert stop(process) == 0
    assert process.stderr.read() == ""


# --- finding 9: only /metrics; idle clients cannot starve a scrape -------------------


def test_only_metrics_and_the_index_page_are_served(exporter):
    _, port = exporter
    status, content_type, body = get(port, "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    assert value(samples(body), "memcgctl_memory_limit_bytes", group="web") == 100 * 1024**2
    status, content_type, body = get(port, "/")
    assert status == 200 and content_type.startswith("text/html") and 'href="/metrics"' in body
    for path in ("/etc/passwd", "/metrics/../etc/passwd", "/metricsx", "/favicon.ico", "/metrics/"):
        status, _, body = get(port, path)
        assert (status, "memcgctl_" in body) == (404, False), path
    assert get(port, "/metrics", method="POST")[0] == 501
    assert get(port, "/metrics", method="HEAD")[:2] == (200, "text/plain; version=0.0.4; charset=utf-8")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_scrape_is_answered_while_many_clients_sit_idle(exporter):
    process, port = exporter
    idle = []
    try:
        # 150 clients (with 128 fds, the old server ran out): half say
        # nothing, half send half a request and stop.
        for number in range(150):
            client = socket.create_connection((LOOPBACK, port), timeout=5)
            if number % 2:
                client.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            idle.append(client)
        time.sleep(0.5)
        started = time.monotonic()
        status, _, body = get(port, "/metrics", timeout=5)
        answered_in = time.monotonic() - started
        assert status == 200 and value(samples(body), "memcgctl_memory_limit_bytes", group="web") == 100 * 1024**2
        assert answered_in < 3, answered_in
        assert open_fds(process.pid) < 100  # the bound on connections holds: no fd per idle client
        assert process.poll() is None
    finally:
        for client in idle:
            client.close()


def test_an_idle_client_is_hung_up_on_after_the_timeout(exporter):
    _, port = exporter
    with socket.create_connection((LOOPBACK, port), timeout=30) as client:
        client.sendall(b"GET /metrics HTTP/1.1\r\n")  # and never the end of the headers
        started = time.monotonic()
        assert client.recv(100) == b""  # closed by the exporter, no answer
        assert 5 < time.monotonic() - started < 25
