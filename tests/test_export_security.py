"""What the exporter answers, and what root trusts when it exports (issue 17,
findings 3, 9, 10, 11 and 12): only /metrics, a bound on connections that
idle clients cannot use up, the daemon's counters only from a checked
journal directory and only for the root being exported, and a textfile
written without following links."""

from __future__ import annotations

import http.client
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_export import MIB, free_port, samples, stop, value, wait_for, write_daemon_counters
from unprivileged import NOBODY, as_nobody, memcgctl_as_nobody, needs_root_and_setpriv, remove_tree

from memcgctl.daemon.counters import counters_file_name
from memcgctl.kernel.discovery import build_fake_root

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
    assert value(samples(body), "memcgctl_memory_limit_bytes", group="web") == 100 * MIB
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
        assert status == 200 and value(samples(body), "memcgctl_memory_limit_bytes", group="web") == 100 * MIB
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


@pytest.fixture
def private(tmp_path) -> Path:
    """A directory only root may write, holding root's file `precious`."""
    directory = tmp_path / "root-only"
    directory.mkdir(mode=0o700)
    (directory / "precious").write_text("precious")
    return directory


# --- findings 3, 10, 12: the daemon's counters, per root, from a checked directory ----------

WATERMARK_ALL = '[[group]]\nmatch = "*"\npolicy = "watermark"\nhigh = "900M"\nlow = "800M"\n'


def test_daemons_on_two_roots_sharing_a_journal_keep_their_own_counters(tmp_path, journal_directory):
    # Root A's group `a` is over its high watermark; root B (batch, say) has an idle `a`.
    root_a, root_b = tmp_path / "a-root", tmp_path / "batch"
    for root in (root_a, root_b):
        build_fake_root(root, 1)
        assert run_cli(root, "create", "a").exit_code == 0
    (root_a / "a" / "memory.usage_in_bytes").write_text(str(950 * MIB))
    config = tmp_path / "daemon.toml"
    config.write_text(WATERMARK_ALL)
    # In this process: the counters name a live pid, as a running daemon's do.
    for root in (root_a, root_b):
        assert run_cli(root, "daemon", "--config", str(config), "--once").exit_code == 0
    assert sorted(path.name for path in journal_directory.glob("daemon-counters*")) == sorted(
        [counters_file_name(root_a), counters_file_name(root_b)])
    exported_a = samples(run_cli(root_a, "export").stdout)
    exported_b = samples(run_cli(root_b, "export").stdout)
    assert value(exported_a, "memcgctl_daemon_actions_total", group="a", policy="watermark") == 1
    assert value(exported_b, "memcgctl_daemon_actions_total", group="a", policy="watermark") == 0
    assert value(exported_a, "memcgctl_daemon_up") == value(exported_b, "memcgctl_daemon_up") == 1


def test_counters_written_for_another_root_are_not_exported(tmp_path, journal_directory, fake_v1):
    other = tmp_path / "other"
    build_fake_root(other, 1)
    # B's rows under A's name (a copy, or a root mounted again at A's path).
    write_daemon_counters(journal_directory, fake_v1, os.getpid(),
                          root_identity=(other.stat().st_dev, other.stat().st_ino))
    result = run_cli(fake_v1, "export")
    found = samples(result.stdout)
    assert value(found, "memcgctl_daemon_up") is None and value(found, "memcgctl_scrape_errors") == 1
    assert not any(name.startswith("memcgctl_daemon_actions") for name, _ in found)


@needs_root_and_setpriv()
def test_a_forged_counters_file_in_a_directory_nobody_owns_is_not_believed(fake_v1, attacker_dir):
    forged = write_daemon_counters(attacker_dir, fake_v1, os.getpid())  # a live pid, invented rows
    os.chown(forged, NOBODY.pw_uid, NOBODY.pw_gid)
    result = run_cli(fake_v1, "--journal-dir", str(attacker_dir), "export")
    assert result.exit_code == 0, result.stderr
    found = samples(result.stdout)
    assert value(found, "memcgctl_daemon_up") is None  # not 1
    assert value(found, "memcgctl_scrape_errors") == 1
    assert not any(name.startswith("memcgctl_daemon_reclaimed") for name, _ in found)


@pytest.fixture
def exporter_code(code) -> Path:
    """The readable copy of memcgctl, with prometheus_client, for export as nobody."""
    import prometheus_client

    target = code / "prometheus_client"
    if not target.exists():
        shutil.copytree(Path(prometheus_client.__file__).parent, target,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for path in [target, *target.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    return code


@needs_root_and_setpriv()
def test_a_non_root_exporter_does_not_say_the_daemon_is_down(exporter_code, journal_directory):
    # Root's journal directory is 0700: nobody cannot read the counters of the
    # daemon that runs, and must not report memcgctl_daemon_up 0 (an alert).
    shared = Path(tempfile.mkdtemp(prefix="memcgctl-shared-"))
    try:
        shared.chmod(0o755)
        root = shared / "cgroup"
        build_fake_root(root, 1)
        journal_directory.chmod(0o700)
        write_daemon_counters(journal_directory, root, os.getpid())
        assert samples(run_cli(root, "export").stdout)[("memcgctl_daemon_up", frozenset())] == 1  # root reads it
        result = memcgctl_as_nobody(exporter_code, "--root", str(root), "--journal-dir", str(journal_directory),
                                    "export")
        assert result.returncode == 0, result.stderr
        found = samples(result.stdout)
        assert value(found, "memcgctl_daemon_up") is None
        assert value(found, "memcgctl_scrape_errors") == 1
        assert result.stderr == ""
    finally:
        remove_tree(shared)


# --- finding 11: --textfile follows no link and writes through nothing planted -------


@needs_root_and_setpriv()
def test_textfile_in_a_directory_nobody_swapped_for_a_symlink_writes_nothing_elsewhere(fake_v1, attacker_dir, private):
    textfile_directory = attacker_dir / "textfile"
    as_nobody(["mkdir", str(textfile_directory)])
    target = textfile_directory / "memcgctl.prom"
    assert run_cli(fake_v1, "export", "--textfile", str(target)).exit_code == 0  # as meant: nobody's directory
    # nobody swaps the directory for a link to one only root may write.
    swapped = as_nobody(["sh", "-c", f"rm -r {textfile_directory} && ln -s {private} {textfile_directory}"])
    assert swapped.returncode == 0, swapped.stderr
    result = run_cli(fake_v1, "export", "--textfile", str(target))
    assert result.exit_code == 74, result.stderr
    assert result.stderr == ("memcgctl: write metrics: refused: a symbolic link or not a directory on the way "
                             f"(memcgctl never follows one here) ({textfile_directory})\n")
    assert [path.name for path in private.iterdir()] == ["precious"]  # nothing made in root's directory


@needs_root_and_setpriv()
def test_textfile_never_writes_through_a_planted_temporary_file(fake_v1, attacker_dir, private):
    target = attacker_dir / "memcgctl.prom"
    # The name our temporary file will have (export runs in this process), planted as a link to root's file.
    planted_name = attacker_dir / f".memcgctl.prom.{os.getpid()}.tmp"
    planted = as_nobody(["ln", "-s", str(private / "precious"), str(planted_name)])
    assert planted.returncode == 0, planted.stderr
    assert run_cli(fake_v1, "export", "--textfile", str(target)).exit_code == 0
    assert (private / "precious").read_text() == "precious"
    assert "memcgctl_scrape_groups" in target.read_text() and not target.is_symlink()
