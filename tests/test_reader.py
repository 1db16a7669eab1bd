"""The one reader of a group (kernel/figures.py, Backend.read_figures): bad
text is a memcgctl error wherever it is read, and what the daemon's snapshot
holds is not read again by the step it plans."""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from pathlib import Path

import pytest

import memcgctl.kernel.fs
from memcgctl.errors import MemcgError
from memcgctl.kernel.discovery import open_hierarchy
from memcgctl.kernel.v2 import RECLAIM_CHUNK
from memcgctl.operations.shrink import StopReason, plan_shrink, shrink_locked
from memcgctl.safety.deadline import Deadline
from memcgctl.sizes import ShrinkTarget

from conftest import run_cli

MIB = 1024**2
# Past Python's int digit limit (4,300): int() raises ValueError.
HUGE = "9" * 5000


def test_flat_keyed_text_is_numbers_by_key_or_an_error_naming_the_file():
    from memcgctl.kernel.figures import parse_flat_keyed

    path = Path("/x"), "memory.stat"
    assert parse_flat_keyed("anon 1\nfile 2\n", *path) == {"anon": 1, "file": 2}
    assert parse_flat_keyed("anon 1\n\nfile 2", *path) == {"anon": 1, "file": 2}
    assert parse_flat_keyed("", *path) == {}
    for text, shown in (("anon 1\nfile\n", "'file'"), ("anon x\n", "'anon x'"), (f"anon {HUGE}\n", "'anon 999")):
        with pytest.raises(MemcgError) as caught:
            parse_flat_keyed(text, *path)
        assert str(caught.value).startswith(f"read memory.stat: expected 'key number' lines, found {shown}")
        assert str(caught.value).endswith("(/x/memory.stat)")


def test_flat_keyed_text_with_keys_parses_only_those():
    from memcgctl.kernel.figures import parse_flat_keyed

    text = f"anon 1\nfile 2\nodd {HUGE}\n"
    assert parse_flat_keyed(text, Path("/x"), "memory.stat", frozenset({"anon", "shmem"})) == {"anon": 1}
    with pytest.raises(MemcgError):
        parse_flat_keyed(text, Path("/x"), "memory.stat", frozenset({"odd"}))


@pytest.mark.parametrize("command", [["stat"], ["stat", "--json"], ["stat", "web", "--detail"],
                                     ["top", "-b", "-n", "1"]])
def test_a_huge_number_in_memory_stat_is_an_error_not_a_traceback(fake_root, command):
    run_cli(fake_root, "create", "web")
    (fake_root / "web" / "memory.stat").write_text(f"anon {HUGE}\nfile 0\ncache {HUGE}\n")
    result = run_cli(fake_root, *command)  # a traceback is raised by run_cli
    assert result.exit_code == 74  # EX_IOERR: what a kernel file held is not what the kernel writes
    # A listing leaves the group out and names it (the other groups shown); --detail has no other.
    left_out = "" if "--detail" in command else f"{command[0]}: left out web, which cannot be read: "
    assert "web " not in result.stdout and '"web"' not in result.stdout
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"memcgctl: {left_out}read memory.stat: expected 'key number' lines, found ")
    assert result.stderr.rstrip().endswith(f"({fake_root / 'web' / 'memory.stat'})")


def test_a_huge_number_makes_export_count_an_error_and_go_on(fake_root):
    run_cli(fake_root, "create", "web")
    run_cli(fake_root, "create", "db")
    (fake_root / "web" / "memory.stat").write_text(f"anon {HUGE}\n")
    result = run_cli(fake_root, "export")
    assert result.exit_code == 0
    assert "memcgctl_scrape_errors 1.0" in result.stdout and "memcgctl_scrape_groups 1.0" in result.stdout
    assert 'memcgctl_memory_usage_bytes{group="db"}' in result.stdout
    assert 'group="web"' not in result.stdout


def test_a_huge_number_in_memory_stat_is_logged_by_the_daemon_which_goes_on(fake_root, tmp_path):
    run_cli(fake_root, "create", "web")
    (fake_root / "web" / "memory.stat").write_text(f"anon {HUGE}\n")
    config = tmp_path / "daemon.toml"
    config.write_text('[[group]]\nmatch = "web"\npolicy = "pressure"\n')  # the pressure policy reads memory.stat
    result = run_cli(fake_root, "daemon", "--config", str(config), "--once")
    assert result.exit_code == 0
    assert ("memcgctl daemon: web: cannot read the group: read memory.stat: expected 'key number' lines, "
            "found 'anon 999") in result.stderr
    assert "Traceback" not in result.stderr


def count_opens(monkeypatch, name: str) -> list:
    """Every open of a file called NAME from now on (one entry each)."""
    opened = []
    real_open = os.open

    def counting(path, *args, **kwargs):
        if os.fsdecode(path).rpartition("/")[2] == name:
            opened.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(memcgctl.kernel.fs.os, "open", counting)
    return opened


def reclaim_that_works(monkeypatch, current: Path, each_write=None) -> list:
    """A fake v2 memory.reclaim that frees what it is asked (memory.current
    goes down by it); the amounts written, in order.  EACH_WRITE(written) is
    called inside each write, as a slow kernel would take its time there."""
    written = []
    real_write = os.write

    def reclaiming(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("/memory.reclaim"):
            written.append(int(data))
            current.write_text(str(int(current.read_text()) - int(data)))
            if each_write is not None:
                each_write(written)
        return real_write(fd, data)

    monkeypatch.setattr(memcgctl.kernel.fs.os, "write", reclaiming)
    return written


def test_the_daemon_reads_memory_current_once_for_the_snapshot_and_once_after_the_write(
        fake_v2, tmp_path, monkeypatch):
    """shrink_locked read memory.current five more times on v2 although the
    daemon's snapshot held it."""
    run_cli(fake_v2, "create", "web")
    current = fake_v2 / "web" / "memory.current"
    current.write_text(str(950 * MIB))
    config = tmp_path / "daemon.toml"
    config.write_text('[[group]]\nmatch = "web"\npolicy = "watermark"\nhigh = "900M"\nlow = "800M"\n')
    written = reclaim_that_works(monkeypatch, current)
    opened = count_opens(monkeypatch, "memory.current")
    result = run_cli(fake_v2, "daemon", "--config", str(config), "--once")
    assert result.exit_code == 0
    assert "web: watermark: usage 950 MiB >= high 900 MiB: 950 MiB -> 800 MiB in " in result.stderr
    assert sum(written) == 150 * MIB and max(written) == RECLAIM_CHUNK  # in pieces
    assert current.read_text() == str(800 * MIB)
    assert len(opened) == 1 + len(written), opened  # the snapshot, and what each piece reached


def test_v2_reclaim_makes_the_planned_write_not_one_planned_again(fake_v2, monkeypatch):
    run_cli(fake_v2, "create", "web")
    current = fake_v2 / "web" / "memory.current"
    current.write_text(str(104 * MIB))
    backend = open_hierarchy(fake_v2)
    web = backend.group("web")
    plan = plan_shrink(backend, web, ShrinkTarget(bytes=100 * MIB))
    assert [write.value for write in plan.steps[0].writes] == [str(4 * MIB)]  # what a dry run shows
    current.write_text(str(103 * MIB))  # the group freed some of its own since
    written = reclaim_that_works(monkeypatch, current)
    assert backend.reclaim(plan.steps[0]) == 99 * MIB
    assert written == [4 * MIB]


def test_v1_restores_the_limit_its_plan_read_not_one_read_again(fake_v1):
    """v1's shrink_to made its plan a second time, reading the limit again."""
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    (fake_v1 / "web" / "memory.usage_in_bytes").write_text(str(500 * MIB))
    backend = open_hierarchy(fake_v1)
    web = backend.group("web")
    plan = plan_shrink(backend, web, ShrinkTarget(bytes=100 * MIB))
    lower, restore = plan.steps[0].writes
    assert (lower.value, restore.value) == (str(100 * MIB), str(1024 * MIB))
    limit = fake_v1 / "web" / "memory.limit_in_bytes"
    limit.write_text(str(2048 * MIB))  # not what the plan (and its dry run) said
    backend.carry_out(plan.steps)
    assert limit.read_text() == str(1024 * MIB)


def test_shrink_locked_given_the_usage_does_not_read_it_to_plan(fake_v2, monkeypatch):
    run_cli(fake_v2, "create", "web")
    current = fake_v2 / "web" / "memory.current"
    current.write_text(str(300 * MIB))
    backend = open_hierarchy(fake_v2)
    web = backend.group("web")
    written = reclaim_that_works(monkeypatch, current)
    opened = count_opens(monkeypatch, "memory.current")
    result = shrink_locked(backend, web, ShrinkTarget(bytes=100 * MIB), usage=300 * MIB)
    assert (result.before, result.after, result.reached) == (300 * MIB, 100 * MIB, True)
    assert len(opened) == len(written) == 200 * MIB // RECLAIM_CHUNK  # after each write: what it reached


def slow_shrink_from_300_to_100_mib(fake_v2, monkeypatch, deadline: Deadline):
    """Shrink web from 300 to 100 MiB within DEADLINE on a fake memory.reclaim
    that takes 0.2 s a write: (result, the amounts written, memory.current)."""
    run_cli(fake_v2, "create", "web")
    current = fake_v2 / "web" / "memory.current"
    current.write_text(str(300 * MIB))
    backend = open_hierarchy(fake_v2)
    written = reclaim_that_works(monkeypatch, current, lambda written: time.sleep(0.2))
    return shrink_locked(backend, backend.group("web"), ShrinkTarget(bytes=100 * MIB), deadline), written, current


def test_a_reclaim_is_written_in_pieces_and_the_deadline_is_kept_between_them(fake_v2, monkeypatch):
    """One memory.reclaim write of the whole amount could not be cut short:
    the kernel looks for signals only between its reclaim rounds, and 6.1
    made one round of 55 MiB that took over 80 s."""
    result, written, current = slow_shrink_from_300_to_100_mib(fake_v2, monkeypatch, Deadline(0.5))
    assert result.stopped_because is StopReason.DEADLINE and not result.reached
    assert written == [RECLAIM_CHUNK] * 3  # the third piece ends past the deadline: no fourth
    assert result.after == 300 * MIB - 3 * RECLAIM_CHUNK == int(current.read_text())


def test_a_timeout_of_0_still_gives_the_pieces_one_attempts_time(fake_v2, monkeypatch):
    """--timeout 0 is one attempt: one whole memory.reclaim write reclaimed
    clean page cache in full; in pieces, they go on for ATTEMPT_FLOOR_SECONDS."""
    result, written, _ = slow_shrink_from_300_to_100_mib(fake_v2, monkeypatch, Deadline(0))
    assert result.stopped_because is StopReason.DEADLINE and not result.reached
    assert len(written) in (2, 3), written  # 0.2 s each, past 0.5 s: no more
    assert result.after == 300 * MIB - len(written) * RECLAIM_CHUNK


def growing_kernel_reclaim(monkeypatch, current: Path, growth: int, answer_eagain: bool) -> list:
    """A kernel's memory.reclaim (as cgroup-v2.rst has it) in a group that
    does not shrink: each write reclaims the piece while a writer charges it
    again and GROWTH bytes more; or, ANSWER_EAGAIN, reclaims nothing and
    answers EAGAIN."""
    def grow_and_maybe_refuse(written):
        current.write_text(str(int(current.read_text()) + written[-1] + growth))
        if answer_eagain:
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    return reclaim_that_works(monkeypatch, current, grow_and_maybe_refuse)


def test_pieces_the_kernel_reclaimed_in_full_are_progress_while_a_writer_grows_the_group(fake_v2, monkeypatch):
    """CI on 6.12: a page-cache fill grew the group as fast as two 8 MiB
    pieces took it, and the step stopped at 'the kernel reclaims nothing
    more' 100 MiB above its target."""
    run_cli(fake_v2, "create", "web")
    current = fake_v2 / "web" / "memory.current"
    current.write_text(str(300 * MIB))
    backend = open_hierarchy(fake_v2)
    backend.fs.is_kernel = True  # the kernel's answer to each write is what counts
    written = growing_kernel_reclaim(monkeypatch, current, RECLAIM_CHUNK // 2, answer_eagain=False)
    result = shrink_locked(backend, backend.group("web"), ShrinkTarget(bytes=100 * MIB), Deadline(0.5))
    assert result.stopped_because is StopReason.DEADLINE, result
    assert len(written) > 2 and int(current.read_text()) == 300 * MIB + len(written) * RECLAIM_CHUNK // 2


def test_a_kernel_that_answers_eagain_twice_with_no_fall_is_no_progress(fake_v2, monkeypatch):
    run_cli(fake_v2, "create", "web")
    current = fake_v2 / "web" / "memory.current"
    current.write_text(str(300 * MIB))
    backend = open_hierarchy(fake_v2)
    backend.fs.is_kernel = True
    written = growing_kernel_reclaim(monkeypatch, current, 0, answer_eagain=True)
    result = shrink_locked(backend, backend.group("web"), ShrinkTarget(bytes=100 * MIB), Deadline(30))
    assert result.stopped_because is StopReason.NO_PROGRESS, result
    assert written == [RECLAIM_CHUNK] * 2 and int(current.read_text()) == 300 * MIB


def test_sigterm_during_a_piece_of_a_daemon_step_stops_the_daemon_after_that_piece(fake_v2, tmp_path, monkeypatch):
    run_cli(fake_v2, "create", "web")
    current = fake_v2 / "web" / "memory.current"
    current.write_text(str(950 * MIB))
    config = tmp_path / "daemon.toml"
    config.write_text('[[group]]\nmatch = "web"\npolicy = "watermark"\nhigh = "900M"\nlow = "100M"\n'
                      'step_seconds = 60\n')

    def terminated_in_the_second(written):
        if len(written) == 2 or written[-1] > RECLAIM_CHUNK:  # (a whole step in one write: stop there too)
            os.kill(os.getpid(), signal.SIGTERM)

    written = reclaim_that_works(monkeypatch, current, terminated_in_the_second)
    result = run_cli(fake_v2, "daemon", "--config", str(config))
    assert result.exit_code == 0, result.stderr
    assert "SIGTERM: stopping; the step in flight was undone" in result.stderr
    assert written == [RECLAIM_CHUNK] * 2
    assert int(current.read_text()) == 950 * MIB - 2 * RECLAIM_CHUNK
    assert (fake_v2 / "web" / "memory.max").read_text().strip() == "max"  # v2 changes no limit


def usage_file_of(root) -> str:
    return "memory.current" if (root / "cgroup.controllers").exists() else "memory.usage_in_bytes"


@pytest.mark.parametrize(("file", "text", "shown"), [
    ("usage", "-5\n", "expected a number of 0 or more, found '-5'"),
    ("memory.stat", "anon -5\nfile 0\n", "expected 'key number' lines, found 'anon -5' (a number is 0 or more)"),
])
def test_a_negative_figure_is_bad_text_that_export_skips_and_stat_names(fake_root, file, text, shown):
    """The kernel's byte and event counts are unsigned: "-5" in a fake tree is
    not what the kernel writes, never a figure of -5 bytes."""
    run_cli(fake_root, "create", "web")
    run_cli(fake_root, "create", "db")
    name = usage_file_of(fake_root) if file == "usage" else file
    (fake_root / "web" / name).write_text(text)
    exported = run_cli(fake_root, "export")
    assert exported.exit_code == 0
    assert "memcgctl_scrape_errors 1.0" in exported.stdout and "memcgctl_scrape_groups 1.0" in exported.stdout
    assert 'group="web"' not in exported.stdout and "-5" not in exported.stdout
    assert 'memcgctl_memory_usage_bytes{group="db"}' in exported.stdout
    stat = run_cli(fake_root, "stat", "--json")
    assert stat.exit_code == 74
    assert [row["group"] for row in json.loads(stat.stdout)] == ["db"]
    assert stat.stderr == (f"memcgctl: stat: left out web, which cannot be read: read {name}: {shown} "
                           f"({fake_root / 'web' / name})\n")
    assert (fake_root / "web" / name).read_text() == text
