"""memcgctl daemon on the real kernel (cgroup v1 here; tests/test_daemon_v2.py
runs the v2 cases in the VM), inside a fresh child of the test's own memory
cgroup.  Each daemon is a process of its own, killed at the end."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli, run_process

MIB = 1024**2
GIB = 1024**3
V1_UNLIMITED = "9223372036854771712"

# A process that writes page cache from inside its group when asked:
# "<MiB> <file> [sync]" on stdin, "done" on stdout.
WRITER = """
import os, sys
block = b"x" * (1024 * 1024)
print("ready", flush=True)
for line in sys.stdin:
    mebibytes, path, *sync = line.split()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for _ in range(int(mebibytes)):
        os.write(fd, block)
    if sync:
        os.fsync(fd)
    os.close(fd)
    print("done", flush=True)
"""


@pytest.fixture(autouse=True)
def v1_only(request):
    if "kernel_root" in request.fixturenames:
        kernel_root = request.getfixturevalue("kernel_root")
        if kernel_root.version != 1:
            pytest.skip("cgroup v1 tests (tests/test_daemon_v2.py runs v2 in the VM)")


def write_config(tmp_path: Path, text: str, name: str = "daemon.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def usage(kernel_root, group: str) -> int:
    return int(kernel_root.read(group, "memory.usage_in_bytes"))


def wait_for(predicate, seconds: float = 10.0, every: float = 0.005) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


class Daemon:
    """`memcgctl daemon` as a process of its own; its stderr goes to a file."""

    def __init__(self, kernel_root, config: Path, log: Path, *args: str):
        self.log_path = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "memcgctl", "--root", str(kernel_root.path), "daemon", "--config", str(config),
             *args], stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True)
        kernel_root.processes.append(self.process)  # killed at the end whatever happens

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for_log(self, text: str, seconds: float = 10.0) -> None:
        assert wait_for(lambda: text in self.log(), seconds, every=0.02), f"no {text!r} in:\n{self.log()}"

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=30)


class Writer:
    """WRITER started inside GROUP."""

    def __init__(self, kernel_root, group: str):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "memcgctl", "--root", str(kernel_root.path), "run", group, "--",
             sys.executable, "-c", WRITER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            start_new_session=True)
        kernel_root.processes.append(self.process)
        assert self.process.stdout.readline().strip() == "ready"

    def write(self, mebibytes: int, file: Path, sync: bool = False) -> None:
        self.process.stdin.write(f"{mebibytes} {file}{' sync' if sync else ''}\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "done"


def counters(journal_directory: Path) -> dict:
    document = json.loads(next(journal_directory.glob("daemon-counters-*.json")).read_text())  # one root
    return {(row["group"], row["policy"]): row for row in document["rows"]}


# --- watermark, event-driven -----------------------------------------------------------


def test_watermark_reacts_to_the_crossing_within_100_ms_not_at_the_interval(kernel_root, tmp_path,
                                                                            journal_directory):
    run_cli(kernel_root.path, "create", "web")
    writer = Writer(kernel_root, "web")
    cache = tmp_path / "cache"
    writer.write((192 * MIB - usage(kernel_root, "web")) // MIB, cache, sync=True)  # just under high, clean
    config = write_config(tmp_path, 'interval = 30.0\n\n[[group]]\nmatch = "web"\npolicy = "watermark"\n'
                                    'high = "200M"\nlow = "100M"\n')
    daemon = Daemon(kernel_root, config, tmp_path / "log", "-v")
    daemon.wait_for_log("web: watching usage crossing 200 MiB (eventfd)")
    daemon.wait_for_log("pass: read 1 group")  # the read right after registering
    time.sleep(1.0)  # long after the start-up passes; the next interval pass is 30 s away
    assert usage(kernel_root, "web") < 200 * MIB, "the daemon acted before the crossing"
    crossing_write = 12
    crossing_started = time.monotonic()
    writer.write(crossing_write, cache)  # about 192M -> 204M: crosses high once
    written = time.monotonic()
    # What the writer adds after the daemon's step stays: low plus at most that.
    assert wait_for(lambda: usage(kernel_root, "web") <= (100 + crossing_write) * MIB, seconds=5, every=0.001)
    reached_low = time.monotonic()
    assert reached_low - crossing_started < 0.100, (
        f"low reached {1000 * (reached_low - crossing_started):.0f} ms after the write began "
        f"(write took {1000 * (written - crossing_started):.0f} ms)\n{daemon.log()}")
    daemon.wait_for_log("web: watermark: usage")
    action = next(line for line in daemon.log().splitlines() if "web: watermark: usage" in line)
    after = action.split(" -> ")[1].split(" in ")[0]
    assert float(after.split()[0]) <= 100 and after.split()[1] == "MiB", action
    assert "woken by the kernel for web" in daemon.log()
    assert kernel_root.read("web", "memory.limit_in_bytes") == V1_UNLIMITED  # the dip was restored
    assert daemon.stop() == 0
    row = counters(journal_directory)[("web", "watermark")]
    assert row["actions"] == 1 and row["reclaimed_bytes"] >= 100 * MIB and row["errors"] == 0


def test_anonymous_memory_backs_off_exponentially_and_says_so_once(kernel_root, tmp_path, journal_directory):
    run_cli(kernel_root.path, "create", "anon")
    holder = kernel_root.hold_anonymous_memory("anon", 60 * MIB)
    config = write_config(tmp_path, 'interval = 0.1\n\n[[group]]\nmatch = "anon"\npolicy = "watermark"\n'
                                    'high = "30M"\nlow = "20M"\nstep_seconds = 1\n')
    daemon = Daemon(kernel_root, config, tmp_path / "log")
    time.sleep(6.5)
    assert daemon.stop() == 0
    row = counters(journal_directory)[("anon", "watermark")]
    # Tries at 0, 1, 3 s (then 7 s): without the backoff, every 0.1 s interval.
    assert 2 <= row["actions"] <= 4, row
    assert row["backoffs"] == row["actions"] and row["reclaimed_bytes"] < 5 * MIB
    assert daemon.log().count("backing off") == 1, daemon.log()
    assert "anon: watermark: backing off: the kernel could reclaim no more" in daemon.log()
    assert kernel_root.read("anon", "memory.limit_in_bytes") == V1_UNLIMITED
    assert holder.poll() is None, "the daemon must never kill"


def test_a_backed_off_group_is_said_once_then_summed_up_and_daemon_status_shows_it(kernel_root, tmp_path,
                                                                                     journal_directory):
    run_cli(kernel_root.path, "create", "anon")
    kernel_root.hold_anonymous_memory("anon", 60 * MIB)
    config = write_config(tmp_path, 'interval = 0.1\n\n[[group]]\nmatch = "anon"\npolicy = "watermark"\n'
                                    'high = "30M"\nlow = "20M"\nstep_seconds = 1\nbackoff_max = 2\n')
    daemon = Daemon(kernel_root, config, tmp_path / "log")
    # Tries at 0, 1, 3, 5, 7 s: the pause reaches backoff_max (2 s) at the second.
    daemon.wait_for_log("still backing off")
    time.sleep(4.5)
    shown = run_process(kernel_root.path, "daemon", "status")
    assert (shown.returncode, shown.stderr) == (0, ""), shown
    anon_row = next(line for line in shown.stdout.splitlines() if line.startswith("anon "))
    assert re.search(r"watermark +[\d.]+ \w+ +\d\d:\d\d:\d\d [\d.]+ MiB -> [\d.]+ MiB +until \d\d:\d\d:\d\d "
                     r"\([3-6] tries\) +usage [\d.]+ MiB >= high 30 MiB", anon_row), anon_row
    assert daemon.stop() == 0
    row = counters(journal_directory)[("anon", "watermark")]
    assert 4 <= row["actions"] <= 6, row
    lines = [line.removeprefix("memcgctl daemon: ") for line in daemon.log().splitlines()]
    about_anon = [line for line in lines if line.startswith("anon: ")]
    # The first step in full, its backoff, one summary; the retries after it quietly (-v shows them).
    assert len(about_anon) == 3, about_anon
    assert re.match(r"anon: watermark: usage [\d.]+ MiB >= high 30 MiB: [\d.]+ MiB -> [\d.]+ MiB in ", about_anon[0])
    assert about_anon[1].startswith("anon: watermark: backing off: the kernel could reclaim no more")
    assert re.fullmatch(r"anon: watermark: still backing off: 2 steps without progress over 1 s \(.*\); trying "
                        r"every 2 s from now on, without a line each time", about_anon[2]), about_anon[2]
    assert kernel_root.read("anon", "memory.limit_in_bytes") == V1_UNLIMITED


def test_the_rate_cap_spreads_a_big_step_over_seconds(kernel_root, tmp_path, journal_directory):
    run_cli(kernel_root.path, "create", "web")
    kernel_root.fill_page_cache("web", tmp_path / "cache", 150)
    config = write_config(tmp_path, 'interval = 30.0\n\n[[group]]\nmatch = "web"\npolicy = "watermark"\n'
                                    'high = "100M"\nlow = "40M"\nmax_bytes_per_second = "30M"\n')
    daemon = Daemon(kernel_root, config, tmp_path / "log")
    samples = []  # (seconds, usage)
    started = time.monotonic()
    while time.monotonic() - started < 15:
        samples.append((time.monotonic(), usage(kernel_root, "web")))
        if samples[-1][1] <= 41 * MIB:
            break
        time.sleep(0.01)
    assert samples[-1][1] <= 41 * MIB, daemon.log()  # went on below high, down to low
    assert daemon.stop() == 0
    # Never faster than 30M a second, plus one second's worth at once (and a
    # few MiB the group frees by itself or the kernel reclaims past a target).
    for earlier, (when, later_usage) in ((a, b) for i, a in enumerate(samples) for b in samples[i + 1:]):
        assert earlier[1] - later_usage <= 30 * MIB * (when - earlier[0] + 1) + 10 * MIB, (earlier, when)
    assert samples[-1][0] - samples[0][0] >= (150 - 40 - 30) / 30 - 0.3  # so it took about 2.7 s or more
    steps = [line for line in daemon.log().splitlines() if "web: watermark: usage" in line]
    assert len(steps) >= 4 and "(crossed high 100 MiB at " in steps[-1], daemon.log()
    for line in steps:  # each step within what the bucket held
        before, after = (float(size.split()[0]) for size in line.split(": ")[-1].split(" in ")[0].split(" -> "))
        assert before - after <= 32, line
    assert counters(journal_directory)[("web", "watermark")]["actions"] == len(steps)


# --- pool ------------------------------------------------------------------------------


def test_pool_over_budget_takes_the_excess_from_the_group_furthest_above_its_share(kernel_root, tmp_path,
                                                                                    journal_directory):
    sizes = {"a": 40, "b": 60, "c": 160}
    for name, mebibytes in sizes.items():
        run_cli(kernel_root.path, "create", name)
        kernel_root.fill_page_cache(name, tmp_path / f"cache-{name}", mebibytes)
    before = {name: usage(kernel_root, name) for name in sizes}
    assert sum(before.values()) > 250 * MIB
    config = write_config(tmp_path, '[[pool]]\ngroups = ["a", "b", "c"]\nbudget = "200M"\n')
    completed = run_process(kernel_root.path, "daemon", "--config", str(config), "--once")
    assert completed.returncode == 0, completed.stderr
    after = {name: usage(kernel_root, name) for name in sizes}
    assert sum(after.values()) <= 200 * MIB + MIB, after
    for untouched in ("a", "b"):
        assert abs(after[untouched] - before[untouched]) < 2 * MIB, (before, after)
    assert before["c"] - after["c"] >= sum(before.values()) - 200 * MIB - MIB
    assert "c: pool: pool total" in completed.stderr
    assert [line for line in completed.stderr.splitlines() if ": pool: " in line and " a: " in line] == []
    rows = counters(journal_directory)
    assert rows[("c", "pool")]["reclaimed_bytes"] > 50 * MIB and ("a", "pool") not in rows
    assert all(kernel_root.read(name, "memory.limit_in_bytes") == V1_UNLIMITED for name in sizes)


# --- crashes, signals, reloads -----------------------------------------------------------


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace")
def test_sigkill_mid_shrink_then_restart_restores_the_limit(kernel_root, tmp_path, journal_directory):
    run_cli(kernel_root.path, "create", "web", "--limit", "1G")
    limit_path = kernel_root.path / "web" / "memory.limit_in_bytes"
    kernel_root.fill_page_cache("web", tmp_path / "cache", 150)
    config = write_config(tmp_path, '[[group]]\nmatch = "web"\npolicy = "watermark"\nhigh = "100M"\n'
                                    'low = "10M"\nstep_seconds = 2\n')
    # strace holds the daemon's second write to the limit (the restore) for
    # 5 s: the limit is lowered, and the daemon is killed right then.
    traced = subprocess.Popen(
        ["strace", "-f", "-qq", "-o", "/dev/null", "-P", str(limit_path), "-e", "trace=write",
         "-e", "inject=write:delay_enter=5000000:when=2",
         sys.executable, "-m", "memcgctl", "--root", str(kernel_root.path), "daemon", "--config", str(config)],
        stderr=subprocess.DEVNULL, start_new_session=True)
    kernel_root.processes.append(traced)
    assert wait_for(lambda: limit_path.read_text().strip() == str(10 * MIB), seconds=20), "never lowered"
    daemon_pid = int(Path(f"/proc/{traced.pid}/task/{traced.pid}/children").read_text().split()[0])
    os.kill(daemon_pid, signal.SIGKILL)
    traced.wait(timeout=30)
    assert limit_path.read_text().strip() == str(10 * MIB), "the kill should leave the limit lowered"
    assert list(journal_directory.glob("*.restore")), "the dip was journaled"
    restarted = run_process(kernel_root.path, "daemon", "--config", str(config), "--once")
    assert restarted.returncode == 0, restarted.stderr
    assert f"memcgctl: restored {GIB} to {limit_path}" in restarted.stderr
    assert limit_path.read_text().strip() == str(GIB)
    assert list(journal_directory.glob("*.restore")) == []


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace")
def test_a_running_daemon_restores_what_a_killed_shrink_left_and_keeps_a_limit_set_since(kernel_root, tmp_path,
                                                                                       journal_directory):
    """Issue 17, finding 1: a `memcgctl shrink` killed while the daemon runs
    is undone by the daemon at its next rescan, not only by the next
    command; a limit set by hand since is kept and said so."""
    for name in ("web", "db", "other"):
        run_cli(kernel_root.path, "create", name, "--limit", "1G")
    config = write_config(tmp_path, 'rescan_interval = 0.5\n\n[[group]]\nmatch = "other"\npolicy = "watermark"\n'
                                    'high = "900M"\nlow = "800M"\n')
    daemon = Daemon(kernel_root, config, tmp_path / "log")
    kernel_root.kill_a_shrink_with_the_limit_lowered("web", tmp_path / "web-cache", str(10 * MIB))
    web_limit = kernel_root.path / "web" / "memory.limit_in_bytes"
    daemon.wait_for_log(f"memcgctl daemon: restored {GIB} to {web_limit}, left behind by a memcgctl (pid ")
    assert kernel_root.read("web", "memory.limit_in_bytes") == str(GIB)
    # A second one, whose limit the admin changes before the daemon looks.
    daemon.process.send_signal(signal.SIGSTOP)
    try:
        kernel_root.kill_a_shrink_with_the_limit_lowered("db", tmp_path / "db-cache", str(10 * MIB))
        kernel_root.write("db", "memory.limit_in_bytes", str(768 * MIB))
    finally:
        daemon.process.send_signal(signal.SIGCONT)
    db_limit = kernel_root.path / "db" / "memory.limit_in_bytes"
    daemon.wait_for_log(f"memcgctl daemon: left {db_limit} at {768 * MIB}, written by someone else since a memcgctl")
    assert kernel_root.read("db", "memory.limit_in_bytes") == str(768 * MIB)
    assert list(journal_directory.glob("*.restore")) == []
    assert daemon.process.poll() is None
    assert daemon.stop() == 0, daemon.log()


def test_sigterm_mid_shrink_undoes_the_step_and_exits_0(kernel_root, tmp_path, journal_directory):
    run_cli(kernel_root.path, "create", "web", "--limit", "1G")
    limit_path = kernel_root.path / "web" / "memory.limit_in_bytes"
    kernel_root.keep_dirtying("web", tmp_path / "dirty")  # the kernel keeps reclaiming: a long step
    config = write_config(tmp_path, '[[group]]\nmatch = "web"\npolicy = "watermark"\nhigh = "100M"\n'
                                    'low = "10M"\nstep_seconds = 30\n')
    daemon = Daemon(kernel_root, config, tmp_path / "log")
    assert wait_for(lambda: list(journal_directory.glob("*.restore")), seconds=20), daemon.log()
    time.sleep(0.2)  # in the limit write
    stopping = time.monotonic()
    assert daemon.stop(signal.SIGTERM) == 0, daemon.log()
    assert time.monotonic() - stopping < 5, "SIGTERM should cut the 30 s step short"
    assert limit_path.read_text().strip() == str(GIB)
    assert list(journal_directory.glob("*.restore")) == []
    assert "SIGTERM: stopping; the step in flight was undone" in daemon.log()


def test_sighup_with_a_broken_file_keeps_the_old_rules(kernel_root, tmp_path):
    run_cli(kernel_root.path, "create", "web")
    config = write_config(tmp_path, 'interval = 30.0\n\n[[group]]\nmatch = "web"\npolicy = "watermark"\n'
                                    'high = "100M"\nlow = "50M"\n')
    daemon = Daemon(kernel_root, config, tmp_path / "log", "-v")
    daemon.wait_for_log("web: watching usage crossing 100 MiB")
    config.write_text('[[group]]\nmatch = "web"\npolicy = "watermark"\nhigh = "lots"\nlow = "50M"\n')
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_for_log("reload failed, keeping the previous configuration: configuration line 4, key 'high'")
    kernel_root.fill_page_cache("web", tmp_path / "cache", 150)
    daemon.wait_for_log("web: watermark: usage")
    assert wait_for(lambda: usage(kernel_root, "web") <= 100 * MIB, seconds=5)
    assert daemon.process.poll() is None
    # A good file is taken: the new rule's threshold is registered.
    config.write_text('[[group]]\nmatch = "web"\npolicy = "watermark"\nhigh = "300M"\nlow = "250M"\n')
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_for_log("web: watching usage crossing 300 MiB")
    assert daemon.stop(signal.SIGINT) == 0


def test_groups_come_and_go_at_once_without_an_error_storm(kernel_root, tmp_path):
    for name in ("a", "b"):
        run_cli(kernel_root.path, "create", "-p", f"jobs/{name}")
    config = write_config(tmp_path, 'interval = 30.0\nrescan_interval = 30.0\n\n[[group]]\nmatch = "jobs/*"\n'
                                    'policy = "watermark"\nhigh = "100M"\nlow = "50M"\n')
    daemon = Daemon(kernel_root, config, tmp_path / "log", "-v")
    daemon.wait_for_log("jobs/b: watching usage crossing")
    (kernel_root.path / "jobs" / "a").rmdir()  # rmdir signals the group's eventfd
    daemon.wait_for_log("jobs/a: the group is gone; no longer watched")
    run_cli(kernel_root.path, "create", "jobs/c")
    daemon.wait_for_log("jobs/c: watching usage crossing")
    kernel_root.fill_page_cache("jobs/c", tmp_path / "cache", 150)
    daemon.wait_for_log("jobs/c: watermark: usage")
    assert wait_for(lambda: usage(kernel_root, "jobs/c") <= 100 * MIB, seconds=5)
    # With rescans 30 s apart, inotify found jobs/c, and the rmdir (or inotify) jobs/a's end.
    time.sleep(0.5)
    assert daemon.process.poll() is None
    lines_about_a = [line.removeprefix("memcgctl daemon: ") for line in daemon.log().splitlines()
                     if "jobs/a" in line and " started on " not in line]
    # The rmdir wakes the daemon (unless a rescan sees the group gone first).
    woken = "woken by the kernel for jobs/a"
    assert lines_about_a.count(woken) <= 1
    assert [line for line in lines_about_a if line != woken] == [
        "jobs/a: watched by [[group]] 1 (line 4)",
        "jobs/a: watching usage crossing 100 MiB (eventfd)",
        "jobs/a: the group is gone; no longer watched",
    ]  # and nothing more
    assert "error" not in daemon.log().lower() and "Traceback" not in daemon.log()
    assert daemon.stop() == 0


# --- the command line --------------------------------------------------------------------


def test_once_and_check_exit_codes(kernel_root, tmp_path):
    run_cli(kernel_root.path, "create", "-p", "batch/x")
    run_cli(kernel_root.path, "create", "batch/y")
    for name in ("batch/x", "batch/y"):  # the rule is in percent of their limits
        assert run_cli(kernel_root.path, "limit", name, "1G").exit_code == 0
    good = write_config(tmp_path, '[[group]]\nmatch = "batch/*"\npolicy = "watermark"\nhigh = "90%"\n'
                                  'low = "80%"\n\n[[pool]]\ngroups = ["batch/x", "nothing*"]\nbudget = "1G"\n')
    checked = run_process(kernel_root.path, "daemon", "--config", str(good), "--check")
    assert (checked.returncode, checked.stderr) == (0, "")
    assert checked.stdout.splitlines() == ["[[group]] 1 (line 1): watermark: batch/x batch/y",
                                           "[[pool]] 1 (line 7): pool: batch/x"]
    once = run_process(kernel_root.path, "daemon", "--config", str(good), "--once")
    assert (once.returncode, once.stderr) == (0, "")
    bad = write_config(tmp_path, '[[group]]\nmatch = "batch/*"\npolicy = "watermark"\nhigh = "80%"\n'
                                 'low = "90%"\n', "bad.toml")
    for mode in ("--check", "--once"):
        refused = run_process(kernel_root.path, "daemon", "--config", str(bad), mode)
        assert refused.returncode == 78
        assert refused.stderr == (f"memcgctl: configuration line 5, key 'low': low (90%) must be below high "
                                  f"(80%) ({bad})\n")


def test_a_dry_run_previews_a_new_configuration_beside_the_running_daemon(kernel_root, tmp_path):
    """Issue 17, finding 8: -n needs no daemon lock, so a new file can be tried
    against the live groups while the daemon runs (it used to exit 75)."""
    run_cli(kernel_root.path, "create", "web", "--limit", "1G")
    kernel_root.fill_page_cache("web", tmp_path / "cache", 40)
    config = write_config(tmp_path, '[[group]]\nmatch = "web"\npolicy = "watermark"\nhigh = "900M"\n'
                                    'low = "800M"\n')
    running = Daemon(kernel_root, config, tmp_path / "log", "-v")
    running.wait_for_log("web: watching usage crossing")
    new = write_config(tmp_path, '[[group]]\nmatch = "web"\npolicy = "watermark"\nhigh = "20M"\nlow = "10M"\n',
                       name="new.toml")
    limit_path = kernel_root.path / "web" / "memory.limit_in_bytes"
    preview = run_process(kernel_root.path, "-n", "daemon", "--config", str(new), "--once")
    assert preview.returncode == 0, preview.stderr
    assert re.fullmatch(rf"memcgctl daemon: web: watermark: usage [\d.]+ MiB >= high 20 MiB: would run: echo "
                        rf"{10 * MIB} > {re.escape(str(limit_path))}; echo {GIB} > {re.escape(str(limit_path))}\n",
                        preview.stderr), preview.stderr
    assert kernel_root.read("web", "memory.limit_in_bytes") == str(GIB)
    assert usage(kernel_root, "web") > 30 * MIB  # nothing was reclaimed
    assert running.process.poll() is None
    # The real run still needs the lock.
    second = run_process(kernel_root.path, "daemon", "--config", str(new), "--once")
    assert second.returncode == 75, second.stderr
    assert running.stop() == 0


def test_a_second_daemon_on_the_root_exits_75_naming_the_first(kernel_root, tmp_path):
    run_cli(kernel_root.path, "create", "web")
    config = write_config(tmp_path, '[[group]]\nmatch = "web"\npolicy = "watermark"\nhigh = "1G"\nlow = "1M"\n')
    first = Daemon(kernel_root, config, tmp_path / "log", "-v")
    first.wait_for_log("web: watching usage crossing")
    second = run_process(kernel_root.path, "daemon", "--config", str(config))
    assert second.returncode == 75
    assert second.stderr == (f"memcgctl: start daemon: another memcgctl daemon (pid {first.process.pid}) runs "
                             f"on this root ({kernel_root.path})\n")
    assert first.stop() == 0
    third = run_process(kernel_root.path, "daemon", "--config", str(config), "--once")
    assert third.returncode == 0, third.stderr
