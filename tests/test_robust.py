"""Figures, time and output: what a sysadmin reads and how long memcgctl may take.

Hierarchical `stat` figures with a KERNEL column; every --timeout validated,
0 as one attempt, a default, and one budget for the lock wait and the work;
output errors as exit codes instead of tracebacks; what is left when the
kernel reclaims no more, named from memory.stat.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from memcgctl.errors import UsageError
from memcgctl.kernel.discovery import open_hierarchy
from memcgctl.operations.shrink import StopReason, shrink
from memcgctl.safety.deadline import Deadline
from memcgctl.safety.journal import Journal
from memcgctl.sizes import parse_size, parse_target

from conftest import run_cli, run_process

MIB = 1024**2
GIB = 1024**3


def limit_file(version: int) -> str:
    return "memory.limit_in_bytes" if version == 1 else "memory.max"


def usage_file(version: int) -> str:
    return "memory.usage_in_bytes" if version == 1 else "memory.current"


def version_of(root: Path) -> int:
    return 2 if (root / "cgroup.controllers").exists() else 1


def stat_table(stdout: str) -> dict:
    """{group: {column: cell}} of a piped `stat` table (cells are separated
    by two spaces or more; a size such as "50 MiB" has one)."""
    header, *rows = (re.split(r"\s{2,}", line.strip()) for line in stdout.splitlines())
    return {row[0]: dict(zip(header, row, strict=True)) for row in rows}


def set_fake_figures(root: Path, group: str, usage: int, stat: dict) -> None:
    """What the kernel would show for GROUP of a fake tree."""
    (root / group / usage_file(version_of(root))).write_text(f"{usage}\n")
    (root / group / "memory.stat").write_text("".join(f"{key} {value}\n" for key, value in stat.items()))


# --- stat: hierarchical figures, kernel memory in a column of its own ---------------

FAKE_STATS = {  # a parent whose child holds everything: the parent's own counters are 0 on v1
    1: {"cache": 0, "rss": 0, "shmem": 0, "total_cache": 50 * MIB, "total_rss": 10 * MIB, "total_shmem": 5 * MIB},
    2: {"anon": 10 * MIB, "file": 50 * MIB, "kernel": 10 * MIB, "shmem": 5 * MIB},
}


def test_stat_table_shows_hierarchical_figures_that_add_up_to_usage(fake_root):
    version = version_of(fake_root)
    run_cli(fake_root, "create", "-p", "parent/child")
    set_fake_figures(fake_root, "parent", 70 * MIB, FAKE_STATS[version])
    result = run_cli(fake_root, "stat", "parent")
    assert result.exit_code == 0, result.stderr
    row = stat_table(result.stdout)["parent"]
    assert (row["USAGE"], row["ANON"], row["FILE"], row["SHMEM"], row["KERNEL"]) == (
        "70 MiB", "10 MiB", "50 MiB", "5 MiB", "10 MiB")
    # JSON keeps memory.stat as the kernel gives it, local keys included.
    [figures] = json.loads(run_cli(fake_root, "stat", "--json", "parent").stdout)
    assert figures["stat"] == FAKE_STATS[version]


def test_a_parent_shows_the_page_cache_its_child_holds(kernel_root, tmp_path):
    root = kernel_root.path
    run_cli(root, "create", "-p", "parent/child")
    kernel_root.fill_page_cache("parent/child", tmp_path / "cache", 50)
    result = run_cli(root, "stat", "parent", "parent/child")
    assert result.exit_code == 0, result.stderr
    rows = stat_table(result.stdout)
    parent = {column: parse_size(cell) for column, cell in rows["parent"].items() if column in
              ("USAGE", "ANON", "FILE", "SHMEM", "KERNEL")}
    assert parent["FILE"] >= 45 * MIB, rows
    assert parse_size(rows["parent/child"]["FILE"]) >= 45 * MIB
    # The columns add up to usage (each cell is rounded to 3 significant figures or so).
    assert abs(parent["ANON"] + parent["FILE"] + parent["KERNEL"] - parent["USAGE"]) <= parent["USAGE"] * 0.02
    [figures] = json.loads(run_cli(root, "stat", "--json", "parent").stdout)
    kernel_keys = {line.split()[0] for line in kernel_root.read("parent", "memory.stat").splitlines()}
    assert set(figures["stat"]) == kernel_keys
    if kernel_root.version == 1:  # the local key stays local in JSON; total_* is the hierarchical one
        assert figures["stat"]["cache"] < MIB and figures["stat"]["total_cache"] >= 45 * MIB
    else:
        assert figures["stat"]["file"] >= 45 * MIB


PIPE_HOLDER = """
import os, sys, time
pipes = []
for _ in range(int(sys.argv[1])):
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    try:
        while True:
            os.write(write_end, b"x" * 4096)
    except BlockingIOError:
        pass
    pipes.append((read_end, write_end))
print("ready", flush=True)
time.sleep(600)
"""


def hold_kernel_memory(kernel_root, group: str, pipes: int = 400):
    """A process in GROUP holding PIPES full pipes: 64 KiB of kernel memory each
    (pipe buffers are charged to the group), which no reclaim can free."""
    process = kernel_root.start(group, sys.executable, "-c", PIPE_HOLDER, str(pipes))
    assert process.stdout.readline().strip() == "ready"
    return process


def test_kernel_memory_has_its_own_column(kernel_root):
    run_cli(kernel_root.path, "create", "web")
    hold_kernel_memory(kernel_root, "web")
    row = stat_table(run_cli(kernel_root.path, "stat", "web").stdout)["web"]
    assert parse_size(row["KERNEL"]) >= 20 * MIB, row
    assert parse_size(row["KERNEL"]) > parse_size(row["ANON"]) + parse_size(row["FILE"])


# --- --timeout: validated, inf is no limit, 0 is one attempt -------------------------

BAD_TIMEOUTS = ["nan", "-1", "1e300", "abc", "-inf", "1e999", "5s", ""]
COMMANDS = {"shrink": ["shrink", "web", "1M"], "limit": ["limit", "web", "2G"], "empty": ["empty", "web"]}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("timeout", BAD_TIMEOUTS)
def test_a_bad_timeout_is_one_line_exit_2_and_nothing_changes(fake_v1, command, timeout):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    (fake_v1 / "web" / "memory.usage_in_bytes").write_text(str(500 * MIB))
    result = run_cli(fake_v1, *COMMANDS[command], "--timeout", timeout)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (f"memcgctl: bad timeout {timeout!r}: expected seconds from 0 to 31536000, "
                             "or inf for no limit\n")
    assert (fake_v1 / "web" / "memory.limit_in_bytes").read_text() == str(GIB)


@pytest.mark.parametrize(("text", "seconds"), [("0", 0.0), ("2.5", 2.5), (" 10 ", 10.0), ("31536000", 31536000.0),
                                              ("inf", None), ("INF", None), ("infinity", None)])
def test_timeouts_that_are_numbers_of_seconds_or_inf(text, seconds):
    from memcgctl.cli.options import parse_timeout

    assert parse_timeout(text) == seconds
    with pytest.raises(UsageError):
        parse_timeout("31536001")


def hold_lock_for(journal_directory: Path, group_path: Path, seconds: float) -> threading.Thread:
    """Another memcgctl, as it were, holding GROUP_PATH's lock for SECONDS."""
    taken = threading.Event()

    def hold():
        with Journal(journal_directory).locked(group_path):
            taken.set()
            time.sleep(seconds)

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(10)
    return thread


def test_timeout_inf_waits_for_the_lock_as_long_as_it_takes(fake_v1, journal_directory):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    holder = hold_lock_for(journal_directory, fake_v1 / "web", 0.5)
    started = time.monotonic()
    result = run_cli(fake_v1, "limit", "--timeout", "inf", "web", "2G")
    waited = time.monotonic() - started
    holder.join()
    assert (result.exit_code, result.stderr) == (0, "")
    assert waited >= 0.4
    assert (fake_v1 / "web" / "memory.limit_in_bytes").read_text() == str(2 * GIB)


def test_timeout_0_does_not_wait_for_another_memcgctl(fake_v1, journal_directory):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    (fake_v1 / "web" / "memory.usage_in_bytes").write_text(str(500 * MIB))
    holder = hold_lock_for(journal_directory, fake_v1 / "web", 1.5)
    started = time.monotonic()
    result = run_cli(fake_v1, "shrink", "--timeout", "0", "web", "1M")
    waited = time.monotonic() - started
    holder.join()
    assert result.exit_code == 75
    assert "another memcgctl is changing it (waited 0 s)" in result.stderr
    assert waited < 1.0
    assert (fake_v1 / "web" / "memory.limit_in_bytes").read_text() == str(GIB)


def test_timeout_0_still_reclaims_clean_page_cache(kernel_root, tmp_path):
    run_cli(kernel_root.path, "create", "web", "--limit", "1G")
    limit_before = kernel_root.read("web", limit_file(kernel_root.version))
    kernel_root.fill_page_cache("web", tmp_path / "cache", 100)
    os.sync()  # clean: reclaim needs no writeback
    assert int(kernel_root.read("web", usage_file(kernel_root.version))) > 90 * MIB
    result = run_process(kernel_root.path, "shrink", "-v", "--timeout", "0", "web", "10M")
    assert result.returncode == 0, result.stderr
    assert "(target 10 MiB)" in result.stdout
    assert int(kernel_root.read("web", usage_file(kernel_root.version))) <= 10 * MIB
    assert kernel_root.read("web", limit_file(kernel_root.version)) == limit_before


# --- a default timeout, and one budget ------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_changing_commands_have_a_documented_default_timeout(command):
    result = run_cli(None, command, "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "--timeout SECONDS" in text and "[default: 60]" in text
    assert "inf: no limit" in text


def start_up_seconds(root: Path) -> float:
    """How long a memcgctl command that does almost nothing takes here (a
    slow VM takes seconds): the slack that time limits below allow."""
    started = time.monotonic()
    assert run_process(root, "stat", "web").returncode == 0
    return time.monotonic() - started


class SlowLimitWrites:
    """The os module as memcgctl's filesystem layer sees it, where writing
    VALUE to a file under ROOT takes SECONDS, as a v1 limit write does while
    the kernel reclaims; like the kernel's, a signal cuts it short."""

    def __init__(self, root: Path, value: bytes, seconds: float):
        self._under, self._value, self._seconds = os.path.realpath(root) + os.sep, value, seconds

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd: int, data: bytes) -> int:
        if data == self._value and os.readlink(f"/proc/self/fd/{fd}").startswith(self._under):
            time.sleep(self._seconds)
        return os.write(fd, data)


def test_the_lock_wait_and_the_shrink_share_one_budget(fake_v1, journal_directory, monkeypatch):
    """Another memcgctl holds the group for 1 s of a 1.5 s budget, then the
    kernel reclaims slowly: the whole command ends at 1.5 s (or 0.5 s after
    the lock, the least one kernel call gets), not at 1 + 1.5 s."""
    import memcgctl.kernel.fs

    run_cli(fake_v1, "create", "web", "--limit", "1G")
    (fake_v1 / "web" / "memory.usage_in_bytes").write_text(str(500 * MIB))
    monkeypatch.setattr(memcgctl.kernel.fs, "os", SlowLimitWrites(fake_v1, str(MIB).encode(), 30))
    holder = hold_lock_for(journal_directory, fake_v1 / "web", 1.0)
    started = time.monotonic()
    result = run_cli(fake_v1, "shrink", "--timeout", "1.5", "web", "1M")
    took = time.monotonic() - started
    holder.join()
    assert result.exit_code == 75
    assert "timed out after 1.5 s" in result.stderr
    assert 1.4 <= took < 2.2, f"{took:.2f} s: the lock wait and the shrink each had a budget of their own"
    assert (fake_v1 / "web" / "memory.limit_in_bytes").read_text() == str(GIB)  # restored


# v1 reclaim waits for page writeback without looking at signals: with a writer
# dirtying page cache, the kernel can take seconds more to notice a deadline.
KERNEL_WRITEBACK_ALLOWANCE = 5.0


def test_a_v1_limit_below_usage_gives_up_after_its_timeout(kernel_root, tmp_path):
    """v1 reclaims inside the limit write as long as it makes progress: a
    writer dirtying page cache kept it going for minutes.  The limit stays."""
    if kernel_root.version != 1:
        pytest.skip("a v2 memory.max below usage is written only after shrinking (test_kernel.py)")
    run_cli(kernel_root.path, "create", "web", "--limit", "4G")
    kernel_root.keep_dirtying("web", tmp_path / "dirty")
    slack = 2 * start_up_seconds(kernel_root.path) + 0.5
    started = time.monotonic()
    result = run_process(kernel_root.path, "limit", "--timeout", "1", "web", "1M")
    took = time.monotonic() - started
    assert result.returncode in (0, 75), result.stderr
    assert took < 1 + 0.5 + slack + KERNEL_WRITEBACK_ALLOWANCE  # not the minutes it took without
    if result.returncode == 75:  # the time ran out (or the kernel gave up by itself: EBUSY)
        assert result.stderr.startswith("memcgctl: set limit of web: the time ran out ") or \
            "could not reclaim enough" in result.stderr, result.stderr
        assert kernel_root.read("web", "memory.limit_in_bytes") == str(4 * GIB)
    else:
        assert kernel_root.read("web", "memory.limit_in_bytes") == str(MIB)


def test_empty_gives_up_after_its_timeout(kernel_root, tmp_path):
    run_cli(kernel_root.path, "create", "web", "--limit", "4G")
    kernel_root.keep_dirtying("web", tmp_path / "dirty")
    slack = 2 * start_up_seconds(kernel_root.path) + 0.5
    started = time.monotonic()
    result = run_process(kernel_root.path, "empty", "--timeout", "1", "web")
    took = time.monotonic() - started
    assert result.returncode in (0, 75), result.stderr
    if result.returncode == 75:
        assert result.stderr.startswith("memcgctl: empty web: timed out after 1 s: ")
        assert result.stderr.count("\n") == 1
    assert took < 1 + 0.5 + slack + KERNEL_WRITEBACK_ALLOWANCE  # not the minutes it took without
    assert kernel_root.read("web", limit_file(kernel_root.version)) == str(4 * GIB)


# --- output errors: exit 74 (a closed pipe: 141, quiet), never a traceback ------------


def memcgctl_argv(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "memcgctl", "--root", str(root), *args]


@pytest.fixture
def root_with_web(fake_root):
    assert run_cli(fake_root, "create", "web", "--limit", "1G").exit_code == 0
    return fake_root


OUTPUT_COMMANDS = [["stat"], ["stat", "--json", "web"], ["tree"], ["limit", "web"], ["--help"]]


@pytest.mark.parametrize("args", OUTPUT_COMMANDS, ids=" ".join)
def test_a_full_disk_is_exit_74_and_one_line(root_with_web, args):
    with open("/dev/full", "w") as full:
        completed = subprocess.run(memcgctl_argv(root_with_web, *args), stdout=full, stderr=subprocess.PIPE,
                                   text=True, timeout=60)
    assert completed.returncode == 74
    assert completed.stderr == "memcgctl: write standard output: no space left on device (ENOSPC)\n"


@pytest.mark.parametrize("args", OUTPUT_COMMANDS, ids=" ".join)
def test_a_closed_stdout_is_exit_74_and_one_line(root_with_web, args):
    completed = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", *memcgctl_argv(root_with_web, *args)],
                               stderr=subprocess.PIPE, text=True, timeout=60)
    assert completed.returncode == 74
    assert completed.stderr == "memcgctl: write standard output: standard output is closed (EBADF)\n"


# export writes bytes (to the binary stream under stdout) and top guards its own
# frames: each says it in its own words, never a traceback.
@pytest.mark.parametrize(("args", "line"), [
    (["export", "web"], "memcgctl: write metrics: bad file descriptor (EBADF) (standard output)\n"),
    (["top", "-b", "-n", "1"], "memcgctl: write output: standard output is closed (EBADF) (stdout)\n"),
], ids=["export", "top"])
def test_a_closed_stdout_is_exit_74_and_one_line_for_export_and_top(root_with_web, args, line):
    completed = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", *memcgctl_argv(root_with_web, *args)],
                               stderr=subprocess.PIPE, text=True, timeout=60)
    assert (completed.returncode, completed.stderr) == (74, line)
    assert (root_with_web / "web" / limit_file(version_of(root_with_web))).read_text().strip() == str(GIB)


@pytest.mark.parametrize("args", OUTPUT_COMMANDS, ids=" ".join)
def test_a_reader_that_went_away_is_quiet_exit_141(root_with_web, args):
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -0` that exited before memcgctl wrote
    try:
        completed = subprocess.run(memcgctl_argv(root_with_web, *args), stdout=write_end, stderr=subprocess.PIPE,
                                   text=True, timeout=60)
    finally:
        os.close(write_end)
    assert (completed.returncode, completed.stderr) == (141, "")


# A dry run prints its plan: a closed or full output is the output's failure,
# said once (or not at all for a reader that went away), never the group's or
# the process's, and nothing is changed either way.
DRY_RUNS = [["-n", "create", "new"], ["-n", "create", "new", "other"], ["-n", "attach", "web", "PID"],
            ["-n", "delete", "web"]]


def dry_run_argv(root: Path, args: list[str]) -> list[str]:
    return memcgctl_argv(root, *[str(os.getpid()) if arg == "PID" else arg for arg in args])


def nothing_changed(root: Path) -> None:
    assert (root / "web").is_dir() and not (root / "new").exists() and not (root / "other").exists()
    assert str(os.getpid()) not in (root / "web" / "cgroup.procs").read_text().split()


@pytest.mark.parametrize("args", DRY_RUNS, ids=" ".join)
def test_a_dry_run_to_a_reader_that_went_away_is_quiet_exit_141(root_with_web, args):
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        completed = subprocess.run(dry_run_argv(root_with_web, args), stdout=write_end, stderr=subprocess.PIPE,
                                   text=True, timeout=60)
    finally:
        os.close(write_end)
    assert (completed.returncode, completed.stderr) == (141, "")
    nothing_changed(root_with_web)


@pytest.mark.parametrize("args", DRY_RUNS, ids=" ".join)
def test_a_dry_run_to_a_full_disk_blames_the_output(root_with_web, args):
    with open("/dev/full", "w") as full:
        completed = subprocess.run(dry_run_argv(root_with_web, args), stdout=full, stderr=subprocess.PIPE,
                                   text=True, timeout=60)
    assert (completed.returncode, completed.stderr) == (
        74, "memcgctl: write standard output: no space left on device (ENOSPC)\n")
    nothing_changed(root_with_web)


@pytest.mark.parametrize(("args", "exit_code"), [(["stat", "nope"], 66), (["--bogus"], 2),
                                               (["limit", "web", "--timeout", "nan", "2G"], 2), (["stat"], 0)],
                         ids=lambda value: " ".join(value) if isinstance(value, list) else str(value))
@pytest.mark.parametrize("stderr", ["full", "closed"])
def test_a_full_or_closed_stderr_keeps_the_exit_status(root_with_web, args, exit_code, stderr):
    """With no stderr to say it on, the exit status still tells (no traceback, no exit 1)."""
    redirect = "2>/dev/full" if stderr == "full" else "2>&-"
    completed = subprocess.run(["sh", "-c", f'exec "$@" {redirect}', "sh", *memcgctl_argv(root_with_web, *args)],
                               stdout=subprocess.DEVNULL, timeout=60)
    assert completed.returncode == exit_code
    assert (root_with_web / "web" / limit_file(version_of(root_with_web))).read_text().strip() == str(GIB)


def test_a_verbose_shrink_to_a_full_disk_still_shrinks_and_restores(kernel_root, tmp_path):
    run_cli(kernel_root.path, "create", "web", "--limit", "1G")
    kernel_root.fill_page_cache("web", tmp_path / "cache", 60)
    with open("/dev/full", "w") as full:
        completed = subprocess.run(memcgctl_argv(kernel_root.path, "-v", "shrink", "web", "10M"), stdout=full,
                                   stderr=subprocess.PIPE, text=True, timeout=60)
    assert completed.returncode == 74
    assert completed.stderr == "memcgctl: write standard output: no space left on device (ENOSPC)\n"
    assert int(kernel_root.read("web", usage_file(kernel_root.version))) <= 10 * MIB
    assert kernel_root.read("web", limit_file(kernel_root.version)) == str(GIB)


# --- what is left when the kernel reclaims no more ------------------------------------


def test_a_shrink_stopped_by_kernel_memory_says_so(kernel_root):
    run_cli(kernel_root.path, "create", "web", "--limit", "1G")
    hold_kernel_memory(kernel_root, "web")
    result = run_process(kernel_root.path, "shrink", "--timeout", "30", "web", "1M")
    assert result.returncode == 75
    [line] = result.stderr.splitlines()
    assert line.endswith(f" ({kernel_root.path / 'web'})")
    what_is_left = line.split("memory.stat shows what is left: ", 1)[1].rsplit(" (", 1)[0]
    first, *others = what_is_left.split(", ")
    assert first.endswith(" kernel memory"), line
    assert parse_size(first.removesuffix(" kernel memory")) >= 20 * MIB
    assert any(part.endswith(" anonymous memory") for part in others), line  # the python holding the pipes
    assert "without swap" not in line
    assert kernel_root.read("web", limit_file(kernel_root.version)) == str(GIB)


def test_a_shrink_stopped_by_kernel_memory_as_a_library_result(kernel_root):
    run_cli(kernel_root.path, "create", "web")
    hold_kernel_memory(kernel_root, "web")
    backend = open_hierarchy(kernel_root.path)
    result = shrink(backend, backend.group("web"), parse_target("1M"), Deadline(30))
    assert result.stopped_because is StopReason.NO_PROGRESS and not result.reached
    assert result.left["kernel"] >= 20 * MIB
    assert result.left["kernel"] > result.left["anon"] + result.left["file"]
    assert abs(result.after - int(kernel_root.read("web", usage_file(kernel_root.version)))) < MIB


@pytest.mark.parametrize("pid", ["12345678901234567890", "4194305", "\u00b2"])
def test_a_process_id_no_process_can_have_is_a_usage_error(root_with_web, pid):
    result = run_cli(root_with_web, "attach", "web", pid)
    assert result.exit_code == 2, result
    assert result.stderr.startswith(f"memcgctl: bad process id '{pid}': ") and result.stderr.count("\n") == 1
    assert (root_with_web / "web" / "cgroup.procs").read_text() == ""
