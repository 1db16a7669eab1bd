"""memcgctl daemon as a service, on fake trees: what systemd hears on
$NOTIFY_SOCKET (Type=notify), the form of its log lines (journal, terminal,
file), and `memcgctl daemon status`.  Each daemon is a process of its own,
ended by its pid at the end of the test."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import run_cli, run_process

MIB = 1024**2
WATERMARK = '[[group]]\nmatch = "web"\npolicy = "watermark"\nhigh = "900M"\nlow = "800M"\n'
TIMESTAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "


def write(tmp_path: Path, text: str, name: str = "daemon.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def start_daemon(root: Path, config: Path, *args: str, stderr=subprocess.DEVNULL, env: dict | None = None,
                 before: tuple = ()) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "memcgctl", "--root", str(root), *before, "daemon", "--config",
                             str(config), *args], stdout=subprocess.DEVNULL, stderr=stderr,
                            env={**os.environ, **(env or {})}, start_new_session=True)


@pytest.fixture
def daemons():
    """The daemons a test starts: ended (by pid) whatever happens."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def wait_for(predicate, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def crossing_web(fake_v1: Path) -> None:
    """web at 950M, above the watermark's high (a fake tree never reclaims)."""
    assert run_cli(fake_v1, "create", "web", "--limit", "1G").exit_code == 0
    (fake_v1 / "web" / "memory.usage_in_bytes").write_text(str(950 * MIB))


# --- sd_notify -------------------------------------------------------------------------


class NotifySocket:
    """A socket bound where $NOTIFY_SOCKET says, as systemd binds it."""

    def __init__(self, address: str):
        self.address = address
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind("\0" + address[1:] if address.startswith("@") else address)
        self.messages: list[dict] = []

    def receive(self, seconds: float = 15.0) -> dict:
        self.socket.settimeout(seconds)
        data = self.socket.recv(4096).decode()
        message = dict(line.split("=", 1) for line in data.split("\n"))
        self.messages.append(message)
        return message

    def receive_until(self, key: str) -> dict:
        """Messages up to the first that sets KEY (STATUS= lines come after each pass)."""
        while True:
            message = self.receive()
            if key in message:
                return message

    def close(self) -> None:
        self.socket.close()


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_systemd_hears_ready_status_reloading_ready_stopping_in_order(fake_v1, tmp_path, journal_directory,
                                                                       daemons, kind):
    crossing_web(fake_v1)
    config = write(tmp_path, "interval = 0.2\n" + WATERMARK)
    address = str(tmp_path / "notify") if kind == "path" else f"@memcgctl-test-{uuid.uuid4().hex}"
    listener = NotifySocket(address)
    try:
        daemon = start_daemon(fake_v1, config, env={"NOTIFY_SOCKET": address})
        daemons.append(daemon)
        ready = listener.receive()
        # READY=1 comes after the first pass, with what it did.
        assert ready["READY"] == "1"
        assert ready["STATUS"] == "1 group(s) watched by 1 rule(s); 0 bytes reclaimed in 1 step(s)"
        daemon.send_signal(signal.SIGHUP)
        sent_after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        reloading = listener.receive_until("RELOADING")
        assert reloading["RELOADING"] == "1" and set(reloading) == {"RELOADING", "MONOTONIC_USEC"}
        assert sent_after <= int(reloading["MONOTONIC_USEC"]) <= sent_after + 10_000_000  # the same clock
        assert listener.receive_until("READY") == {"READY": "1"}
        status = listener.receive_until("STATUS")  # each pass says what it did so far, when that changed
        assert re.fullmatch(r"1 group\(s\) watched by 1 rule\(s\); 0 bytes reclaimed in \d+ step\(s\)",
                            status["STATUS"])
        daemon.send_signal(signal.SIGTERM)
        assert listener.receive_until("STOPPING") == {"STOPPING": "1"}
        assert daemon.wait(timeout=30) == 0
        states = [key for message in listener.messages for key in ("READY", "RELOADING", "STOPPING") if key in message]
        assert states == ["READY", "RELOADING", "READY", "STOPPING"]
    finally:
        listener.close()


def test_a_reload_that_fails_still_says_ready_and_why(fake_v1, tmp_path, journal_directory, daemons):
    crossing_web(fake_v1)
    config = write(tmp_path, "interval = 0.2\n" + WATERMARK)
    address = str(tmp_path / "notify")
    listener = NotifySocket(address)
    try:
        daemons.append(daemon := start_daemon(fake_v1, config, env={"NOTIFY_SOCKET": address}))
        listener.receive_until("READY")
        config.write_text(WATERMARK.replace('"900M"', '"lots"'))
        daemon.send_signal(signal.SIGHUP)
        listener.receive_until("RELOADING")
        ready = listener.receive_until("READY")
        assert ready["STATUS"].startswith("reload failed, kept the previous configuration: configuration line 4, "
                                          "key 'high': bad size 'lots'")
        # The next passes say so too, until a reload works.
        assert listener.receive_until("STATUS")["STATUS"].endswith(
            "; the last reload failed (see the log), running the previous configuration")
        config.write_text(WATERMARK)
        daemon.send_signal(signal.SIGHUP)
        assert listener.receive_until("READY") == {"READY": "1"}
        assert "reload failed" not in listener.receive_until("STATUS")["STATUS"]
        assert daemon.poll() is None
    finally:
        listener.close()


def test_a_daemon_on_a_fake_v2_tree_polls_without_a_traceback(fake_v2, tmp_path, journal_directory, daemons):
    """Plain files notify nothing: the daemon reads them at each interval
    (epoll refused memory.events of a fake tree, with a traceback)."""
    assert run_cli(fake_v2, "create", "web", "--limit", "1G").exit_code == 0
    (fake_v2 / "web" / "memory.current").write_text(str(950 * MIB))
    daemon = subprocess.Popen([sys.executable, "-m", "memcgctl", "--root", str(fake_v2), "daemon", "--config",
                               str(write(tmp_path, "interval = 0.2\n" + WATERMARK))],
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    daemons.append(daemon)
    assert wait_for(lambda: "backed off" in run_process(fake_v2, "daemon", "status").stdout)
    time.sleep(3.5)  # retries at 1 and 3 s
    daemon.send_signal(signal.SIGTERM)
    _, stderr = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, stderr
    # A fake tree does not reclaim (memory.reclaim makes no progress): the
    # first step and its backoff are said, the retries are not.
    lines = [line.removeprefix("memcgctl daemon: ") for line in stderr.splitlines()]
    assert [line.split(":")[0] for line in lines] == ["started on " + str(fake_v2) + " (cgroup v2), "
                                                      + str(tmp_path / "daemon.toml"), "web", "web", "SIGTERM"], lines
    assert lines[1].startswith("web: watermark: usage 950 MiB >= high 900 MiB: 950 MiB -> 950 MiB in ")
    assert lines[2].startswith("web: watermark: backing off: the kernel reclaims nothing more")


def test_without_notify_socket_nothing_is_sent_and_the_daemon_runs(fake_v1, tmp_path, journal_directory, daemons):
    crossing_web(fake_v1)
    env = {key: value for key, value in os.environ.items() if key != "NOTIFY_SOCKET"}
    daemon = subprocess.Popen([sys.executable, "-m", "memcgctl", "--root", str(fake_v1), "daemon", "--config",
                               str(write(tmp_path, "interval = 0.2\n" + WATERMARK))], env=env,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    daemons.append(daemon)
    assert wait_for(lambda: run_process(fake_v1, "daemon", "status").returncode == 0)
    daemon.send_signal(signal.SIGTERM)
    _, stderr = daemon.communicate(timeout=30)
    assert daemon.returncode == 0 and "Traceback" not in stderr


# --- the form of the log lines -----------------------------------------------------------


def test_stderr_that_is_the_journal_gets_priority_prefixes(fake_v1, tmp_path, journal_directory, daemons):
    crossing_web(fake_v1)
    assert run_cli(fake_v1, "create", "unlimited").exit_code == 0
    config = write(tmp_path, "interval = 0.2\n" + WATERMARK + '\n[[group]]\nmatch = "unlimited"\n'
                             'policy = "watermark"\nhigh = "90%"\nlow = "80%"\n')
    log = tmp_path / "journal"
    with log.open("w") as stream:
        status = os.fstat(stream.fileno())
        daemon = start_daemon(fake_v1, config, "-v", stderr=stream,
                              env={"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"})
    daemons.append(daemon)
    assert wait_for(lambda: "web: watermark: usage 950 MiB" in log.read_text())
    config.write_text(WATERMARK.replace('"900M"', '"lots"'))
    daemon.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "reload failed" in log.read_text())
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0
    lines = log.read_text().splitlines()
    assert all(re.match(r"<[3467]>memcgctl daemon: ", line) for line in lines), lines

    def priority_of(text: str) -> str:
        found = [line[:3] for line in lines if line[3:].startswith(f"memcgctl daemon: {text}")]
        assert found, f"no {text!r} in {lines}"
        return found[0]

    assert priority_of(f"started on {fake_v1} (cgroup v1), {config}: 2 rule(s)") == "<6>"  # info
    assert priority_of('unlimited: [[group]] 2 (line 8): high = "90%"') == "<4>"  # a warning
    assert priority_of("web: watermark: usage 950 MiB >= high 900 MiB: 950 MiB -> 950 MiB") == "<6>"
    assert priority_of("reload failed, keeping the previous configuration: configuration line 4") == "<3>"  # error
    assert priority_of("SIGTERM: stopping") == "<6>"
    assert any(line.startswith("<7>memcgctl daemon: pass: read ") for line in lines)  # -v's detail: debug


def test_stderr_that_is_another_file_gets_plain_lines(fake_v1, tmp_path, journal_directory):
    crossing_web(fake_v1)
    config = write(tmp_path, WATERMARK)
    other = os.stat(tmp_path)  # JOURNAL_STREAM inherited from a unit, naming something else
    with (tmp_path / "log").open("w") as stream:
        done = subprocess.run([sys.executable, "-m", "memcgctl", "--root", str(fake_v1), "-n", "daemon", "--config",
                               str(config), "--once"], stderr=stream, timeout=60,
                              env={**os.environ, "JOURNAL_STREAM": f"{other.st_dev}:{other.st_ino}"})
    assert done.returncode == 0
    assert (tmp_path / "log").read_text().startswith("memcgctl daemon: web: watermark: usage 950 MiB >= high")


def test_a_terminal_gets_timestamps(fake_v1, tmp_path, journal_directory):
    crossing_web(fake_v1)
    config = write(tmp_path, WATERMARK)
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "memcgctl", "--root", str(fake_v1), "-n", "daemon", "--config",
                               str(config), "--once"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=terminal, timeout=60)
        os.close(terminal)
        terminal = -1
        output = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the terminal's other end is closed and all was read
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)
    assert done.returncode == 0
    lines = output.decode().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(TIMESTAMP + r"memcgctl daemon: web: watermark: usage 950 MiB >= high 900 MiB: would run: .*",
                        lines[0]), lines
    stamp = time.mktime(time.strptime(lines[0][:19], "%Y-%m-%d %H:%M:%S"))
    assert abs(stamp - time.time()) < 120  # local time, now


# --- the start line ------------------------------------------------------------------------


def log_of_a_daemon_started_and_stopped(root, config, tmp_path, daemons) -> list[str]:
    """The lines a daemon on ROOT by CONFIG logs from its start, once it answers
    `daemon status`, to its exit on SIGTERM (asserted to be 0)."""
    log = tmp_path / "log"
    with log.open("w") as stream:
        daemons.append(daemon := start_daemon(root, config, stderr=stream))
    assert wait_for(lambda: run_process(root, "daemon", "status").returncode == 0)
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0
    return log.read_text().splitlines()


def test_the_start_line_names_the_rules_and_groups_without_v(fake_v1, tmp_path, journal_directory, daemons):
    for index in range(12):
        assert run_cli(fake_v1, "create", "-p", f"batch/job{index:02}").exit_code == 0
    config = write(tmp_path, "interval = 0.2\n" + WATERMARK.replace('"web"', '"batch/*"')
                   + '\n[[pool]]\ngroups = ["nothing*"]\nbudget = "1G"\n')
    lines = log_of_a_daemon_started_and_stopped(fake_v1, config, tmp_path, daemons)
    names = " ".join(f"batch/job{index:02}" for index in range(10))
    assert lines[0] == (
        f"memcgctl daemon: started on {fake_v1} (cgroup v1), {config}: 1 rule(s), 1 pool(s), 12 group(s): "
        f"[[group]] 1 (line 2) watermark: {names} and 2 more; [[pool]] 1 (line 8) pool: (no group matches now)")
    assert lines[1:] == ["memcgctl daemon: SIGTERM: stopping"]


def test_the_start_line_escapes_a_name_once(fake_v1, tmp_path, journal_directory, daemons):
    assert run_cli(fake_v1, "create", "a\\x2db").exit_code == 0  # a backslash, as systemd's names have
    config = write(tmp_path, "interval = 0.2\n" + WATERMARK.replace('"web"', '"a*"'))
    lines = log_of_a_daemon_started_and_stopped(fake_v1, config, tmp_path, daemons)
    assert lines[0].endswith(" watermark: a\\\\x2db")  # shown: a\\x2db


def test_once_says_nothing_but_its_actions(fake_v1, tmp_path, journal_directory):
    assert run_cli(fake_v1, "create", "web").exit_code == 0
    result = run_process(fake_v1, "daemon", "--config", str(write(tmp_path, WATERMARK)), "--once")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")  # cron mails any output


# --- daemon status ---------------------------------------------------------------------------


def test_status_without_a_daemon_exits_3(fake_v1, tmp_path, journal_directory):
    result = run_cli(fake_v1, "daemon", "status")
    assert (result.exit_code, result.stdout) == (3, "")
    assert result.stderr == f"memcgctl: daemon status: no memcgctl daemon runs on this root ({fake_v1})\n"
    missing = tmp_path / "no-journal-yet"
    result = run_cli(fake_v1, "--journal-dir", str(missing), "daemon", "status")
    assert result.exit_code == 3
    assert not missing.exists()  # asking made nothing


def test_status_of_a_running_daemon_then_of_a_killed_one(fake_v1, tmp_path, journal_directory, daemons):
    crossing_web(fake_v1)
    assert run_cli(fake_v1, "create", "idle").exit_code == 0
    config = write(tmp_path, "interval = 0.2\n" + WATERMARK + '\n[[pool]]\ngroups = ["web", "idle"]\n'
                             'budget = "4G"\n')
    daemons.append(daemon := start_daemon(fake_v1, config))
    assert wait_for(lambda: run_process(fake_v1, "daemon", "status").returncode == 0)
    shown = run_process(fake_v1, "daemon", "status")
    assert (shown.returncode, shown.stderr) == (0, "")
    lines = shown.stdout.splitlines()
    assert re.fullmatch(rf"memcgctl daemon \(pid {daemon.pid}\) on {re.escape(str(fake_v1))} \(cgroup v1\), "
                        r"running since \d\d:\d\d:\d\d", lines[0])
    assert re.fullmatch(rf"configuration {re.escape(str(config))}; as of \d\d:\d\d:\d\d", lines[1])
    assert re.fullmatch(r"2 group\(s\) watched by 2 rule\(s\); 0 bytes reclaimed in \d+ step\(s\)", lines[2])
    assert lines[3] == ""
    assert lines[4].split() == ["GROUP", "RULE", "RECLAIMED", "LAST", "ACTION", "BACKED", "OFF", "WHY"]
    rows = lines[5:]
    assert [row.split("  ")[0] for row in rows] == ["idle", "web", "web"]
    assert re.fullmatch(r"idle +\[\[pool\]\] 1 \(line 8\) pool +0 bytes +- +-", rows[0])
    assert re.fullmatch(r"web +\[\[group\]\] 1 \(line 2\) watermark +0 bytes +\d\d:\d\d:\d\d 950 MiB -> 950 MiB +- +"
                        r"usage 950 MiB >= high 900 MiB", rows[1])
    assert re.fullmatch(r"web +\[\[pool\]\] 1 \(line 8\) pool +0 bytes +- +-", rows[2])
    document = json.loads(run_process(fake_v1, "daemon", "status", "--json").stdout)
    assert (document["pid"], document["root"], document["version"], document["config"]) == (
        daemon.pid, str(fake_v1), 1, str(config))
    web = next(row for row in document["groups"] if row["group"] == "web" and row["policy"] == "watermark")
    assert web["last_action"]["before"] == web["last_action"]["after"] == 950 * MIB
    assert abs(web["last_action"]["at"] - time.time()) < 60
    assert (web["backed_off_until"], web["reclaimed_bytes"]) == (None, 0)
    daemon.kill()  # SIGKILL: the file stays, and must not speak for a dead daemon
    daemon.wait(timeout=30)
    assert list(journal_directory.glob("daemon-*.status.json"))
    stale = run_process(fake_v1, "daemon", "status")
    assert (stale.returncode, stale.stdout) == (3, "")
    assert "no memcgctl daemon runs on this root" in stale.stderr


def test_status_of_another_root_is_not_this_daemons(fake_v1, fake_v2, tmp_path, journal_directory, daemons):
    crossing_web(fake_v1)
    daemons.append(start_daemon(fake_v1, write(tmp_path, "interval = 0.2\n" + WATERMARK)))
    assert wait_for(lambda: run_process(fake_v1, "daemon", "status").returncode == 0)
    assert run_process(fake_v2, "daemon", "status").returncode == 3


def test_status_takes_no_daemon_options(fake_v1):
    result = run_cli(fake_v1, "daemon", "--once", "status")
    assert result.exit_code == 2
    assert result.stderr.startswith("memcgctl: daemon: status takes no --config, --once or --check")
    missing = run_cli(fake_v1, "daemon")
    assert (missing.exit_code, missing.stderr) == (2, "memcgctl: daemon: missing option '--config' "
                                                      "(see 'memcgctl daemon -h')\n")


def test_a_planted_status_file_is_refused_not_followed(fake_v1, tmp_path, journal_directory):
    from memcgctl.daemon.status import status_file_name

    secret = tmp_path / "secret"
    secret.write_text("{}")
    (journal_directory / status_file_name(fake_v1)).symlink_to(secret)
    result = run_cli(fake_v1, "daemon", "status")
    assert (result.exit_code, result.stdout) == (74, "")
    assert result.stderr.startswith("memcgctl: read daemon status: too many levels of symbolic links (ELOOP)")


@pytest.mark.parametrize("text", ["not json", "[]", '{"pid": 1}', '{"pid": true, "started": 1}'])
def test_a_status_file_not_in_the_daemons_format_is_one_line_not_a_traceback(fake_v1, journal_directory, text):
    from memcgctl.daemon.status import status_file_name

    path = journal_directory / status_file_name(fake_v1)
    path.write_text(text)
    result = run_cli(fake_v1, "daemon", "status")
    assert (result.exit_code, result.stdout) == (74, "")
    assert result.stderr.startswith("memcgctl: read daemon status: not in the daemon's format (")
    assert result.stderr.endswith(f" ({path})\n") and result.stderr.count("\n") == 1
