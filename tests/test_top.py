"""memcgctl top on fake trees: frames as data (rates, events since start,
groups appearing and vanishing), the order of rows, the keys of the live
view, batch and JSON output, and bad options.  The real kernel and a real
terminal: test_top_kernel.py and test_top_terminal.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from memcgctl.kernel.discovery import open_hierarchy
from memcgctl.operations.sampling import Sampler, order_rows
from memcgctl.render.frames import compact_size

from conftest import run_cli

MIB = 1024**2


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_groups(root, *names):
    for name in names:
        assert run_cli(root, "create", "-p", name).exit_code == 0


def set_file(root, group, name, text):
    (root / group / name).write_text(text)


def set_usage(root, version, group, usage, anon=0, file=0):
    if version == 1:
        set_file(root, group, "memory.usage_in_bytes", f"{usage}\n")
        set_file(root, group, "memory.stat", f"cache {file}\nrss {anon}\ntotal_cache {file}\ntotal_rss {anon}\n"
                                             f"total_swap 0\ntotal_workingset_refault_anon 0\n"
                                             f"total_workingset_refault_file 0\n")
    else:
        set_file(root, group, "memory.current", f"{usage}\n")
        set_file(root, group, "memory.stat", f"anon {anon}\nfile {file}\nkernel 0\n")


def rows_by_name(frame):
    return {row.group: row for row in frame.rows}


@pytest.mark.parametrize("version", [1, 2])
def test_pids_count_the_processes_attach_put_in_a_fake_tree(tmp_path, version):
    """`attach` on a fake tree writes the PID without a newline: top must
    count it as `stat` does, not show 0."""
    import os

    root = tmp_path / "cg"
    from memcgctl.kernel.discovery import build_fake_root

    build_fake_root(root, version)
    make_groups(root, "web")
    assert run_cli(root, "attach", "web", str(os.getpid())).exit_code == 0
    assert (root / "web" / "cgroup.procs").read_text() == str(os.getpid())
    completed = subprocess.run([sys.executable, "-m", "memcgctl", "--root", str(root), "top", "-b", "-n", "1",
                                "--json"], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert [group["pids"] for group in json.loads(completed.stdout)["groups"]] == [1]
    stat = run_cli(root, "stat", "--json", "web")
    assert json.loads(stat.stdout)[0]["pids"] == 1


@pytest.mark.parametrize("version", [1, 2])
def test_a_frame_has_rates_percent_and_events_since_start(tmp_path, version):
    root = tmp_path / "cg"
    from memcgctl.kernel.discovery import build_fake_root

    build_fake_root(root, version)
    make_groups(root, "web")
    assert run_cli(root, "limit", "web", "100M").exit_code == 0
    set_usage(root, version, "web", 50 * MIB, anon=10 * MIB, file=40 * MIB)
    clock = FakeClock()
    sampler = Sampler(open_hierarchy(root), clock=clock)
    first = rows_by_name(sampler.next_frame())["web"]
    assert (first.sample.usage, first.sample.anon, first.sample.file) == (50 * MIB, 10 * MIB, 40 * MIB)
    assert first.percent_of_limit == 50.0
    assert first.change_per_second is None  # nothing to compare with yet
    assert not first.stands_out

    # 2 seconds later: 46 MiB more, and an OOM kill.
    clock.now += 2
    set_usage(root, version, "web", 96 * MIB, anon=10 * MIB, file=86 * MIB)
    if version == 1:
        set_file(root, "web", "memory.failcnt", "7\n")
        set_file(root, "web", "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    else:
        set_file(root, "web", "memory.events", "low 0\nhigh 3\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n")
    frame = sampler.next_frame()
    second = rows_by_name(frame)["web"]
    assert frame.seconds_since_previous == 2
    assert second.change_per_second == 23 * MIB
    assert second.percent_of_limit == 96.0
    expected = {"failcnt": 7, "oom_kill": 1} if version == 1 else {"high": 3, "max": 5, "oom_kill": 1}
    assert second.events_since_start == expected
    assert second.stands_out


def test_events_count_from_the_first_sighting(fake_v2):
    make_groups(fake_v2, "web")
    set_file(fake_v2, "web", "memory.events", "low 0\nhigh 40\nmax 2\noom 0\noom_kill 9\noom_group_kill 0\n")
    sampler = Sampler(open_hierarchy(fake_v2), clock=FakeClock())
    assert rows_by_name(sampler.next_frame())["web"].events_since_start == {"high": 0, "max": 0, "oom_kill": 0}
    set_file(fake_v2, "web", "memory.events", "low 0\nhigh 41\nmax 2\noom 0\noom_kill 9\noom_group_kill 0\n")
    row = rows_by_name(sampler.next_frame())["web"]
    assert row.events_since_start == {"high": 1, "max": 0, "oom_kill": 0}
    assert row.sample.events == {"high": 41, "max": 2, "oom_kill": 9}
    assert row.stands_out  # the kills were before top started: they count all the same


def test_a_reset_failcnt_counts_again_from_zero(fake_v1):
    make_groups(fake_v1, "web")
    set_file(fake_v1, "web", "memory.failcnt", "50\n")
    sampler = Sampler(open_hierarchy(fake_v1))
    sampler.next_frame()
    set_file(fake_v1, "web", "memory.failcnt", "3\n")  # someone wrote 0, then 3 failures
    assert rows_by_name(sampler.next_frame())["web"].events_since_start == {"failcnt": 3, "oom_kill": 0}


def test_v2_pressure_high_and_swap_come_from_their_files(fake_v2):
    make_groups(fake_v2, "web")
    set_file(fake_v2, "web", "memory.pressure", "some avg10=12.34 avg60=1.00 avg300=0.10 total=99\n"
                                                "full avg10=1.00 avg60=0.00 avg300=0.00 total=9\n")
    set_file(fake_v2, "web", "memory.swap.current", "4096\n")
    assert run_cli(fake_v2, "limit", "web", "--high", "64M").exit_code == 0
    row = rows_by_name(Sampler(open_hierarchy(fake_v2)).next_frame())["web"]
    assert (row.sample.pressure, row.sample.swap, row.sample.high, row.sample.limit) == (12.34, 4096, 64 * MIB, None)


def test_v1_refaults_per_second(fake_v1):
    make_groups(fake_v1, "web")
    clock = FakeClock()
    sampler = Sampler(open_hierarchy(fake_v1), clock=clock)
    set_file(fake_v1, "web", "memory.stat", "total_workingset_refault_anon 5\ntotal_workingset_refault_file 10\n")
    assert rows_by_name(sampler.next_frame())["web"].sample.refaults == 15
    set_file(fake_v1, "web", "memory.stat", "total_workingset_refault_anon 5\ntotal_workingset_refault_file 410\n")
    clock.now += 4
    assert rows_by_name(sampler.next_frame())["web"].refaults_per_second == 100


def test_groups_appear_and_vanish_between_frames(fake_root):
    make_groups(fake_root, "old", "gone")
    sampler = Sampler(open_hierarchy(fake_root))
    first = sampler.next_frame()
    assert [row.group for row in first.rows] == ["gone", "old"]
    assert run_cli(fake_root, "delete", "gone").exit_code == 0
    make_groups(fake_root, "new")
    second = sampler.next_frame()
    assert [row.group for row in second.rows] == ["new", "old"]
    assert (second.appeared, second.vanished) == (["new"], ["gone"])


def test_a_named_group_removed_later_is_left_out_without_error(fake_root):
    make_groups(fake_root, "web/one", "db")
    sampler = Sampler(open_hierarchy(fake_root), ["web", "db"])
    assert [row.group for row in sampler.next_frame().rows] == ["web", "web/one", "db"]
    assert run_cli(fake_root, "delete", "-r", "web").exit_code == 0
    frame = sampler.next_frame()
    assert [row.group for row in frame.rows] == ["db"]
    assert sorted(frame.vanished) == ["web", "web/one"]


def test_order_rows_sorts_reverses_filters_and_makes_a_tree(fake_v2):
    make_groups(fake_v2, "a/small", "a/big", "b")
    for group, usage in {"a": 30, "a/small": 1, "a/big": 29, "b": 50}.items():
        set_usage(fake_v2, 2, group, usage * MIB)
    rows = Sampler(open_hierarchy(fake_v2)).next_frame().rows
    names = lambda ordered: [(depth, row.group) for depth, row in ordered]  # noqa: E731
    assert names(order_rows(rows)) == [(0, "b"), (0, "a"), (0, "a/big"), (0, "a/small")]
    assert names(order_rows(rows, reverse=True)) == [(0, "a/small"), (0, "a/big"), (0, "a"), (0, "b")]
    assert names(order_rows(rows, "group")) == [(0, "a"), (0, "a/big"), (0, "a/small"), (0, "b")]
    assert names(order_rows(rows, tree=True)) == [(0, "b"), (0, "a"), (1, "a/big"), (1, "a/small")]
    assert names(order_rows(rows, name_filter="BIG")) == [(0, "a/big")]
    assert names(order_rows(rows, tree=True, name_filter="a/")) == [(0, "a/big"), (0, "a/small")]
    # unlimited sorts last by limit, whatever the direction
    assert run_cli(fake_v2, "limit", "b", "1G").exit_code == 0
    rows = Sampler(open_hierarchy(fake_v2)).next_frame().rows
    assert names(order_rows(rows, "limit"))[0] == (0, "b")
    assert names(order_rows(rows, "limit", reverse=True))[0] == (0, "b")


def test_keys_of_the_live_view():
    from memcgctl.render.live import View

    view = View(version=1)
    assert (view.sort, view.reverse) == ("usage", False)
    view.press("c")
    assert (view.sort, view.reverse) == ("change", False)
    view.press("c")
    assert (view.sort, view.reverse) == ("change", True)
    view.press("n")
    assert (view.sort, view.reverse) == ("group", False)
    view.press("t")
    view.press(" ")
    assert view.tree and view.paused
    for key in ["/", "w", "e", "x", "\x7f", "b", "\r"]:
        view.press(key)
    assert view.name_filter == "web" and view.typing is None
    for key in ["/", "z", "\x1b"]:
        view.press(key)
    assert view.name_filter == "web"  # Esc cancelled
    assert "n=group" in view.footer() and "P=pids" in view.footer()
    assert view.footer(80).endswith("sort by column: n u l % c a f s p e P") and len(view.footer(80)) <= 80
    assert view.footer(40) == "q quit  h help (keys)"
    view.press("q")
    assert view.quit


def test_escape_sequences_of_the_scroll_keys_become_their_names():
    from memcgctl.render.live import split_keys

    assert split_keys("\x1b[A\x1b[B\x1bOA") == ["up", "down", "up"]
    assert split_keys("\x1b[5~\x1b[6~") == ["page-up", "page-down"]
    assert split_keys("\x1b[1~\x1b[4~\x1b[H\x1b[F\x1bOH\x1bOF") == ["home", "end"] * 3
    assert split_keys("q\x1b[15~x") == ["q", "x"]  # F5: not ours, dropped whole
    assert split_keys("\x1b") == ["\x1b"] and split_keys("ab") == ["a", "b"]


def test_scrolling_moves_the_window_and_stops_at_both_ends():
    from memcgctl.render.live import View

    view = View(version=1)
    assert view.window(11, 5) == slice(0, 5)
    view.press("down")
    assert view.window(11, 5) == slice(1, 6)
    view.press("page-down")
    assert view.window(11, 5) == slice(6, 11)
    view.press("page-down")  # past the end: the last screen
    assert view.window(11, 5) == slice(6, 11)
    view.press("page-up")
    assert view.window(11, 5) == slice(1, 6)
    view.press("end")
    assert view.window(11, 5) == slice(6, 11)
    assert view.window(4, 5) == slice(0, 5)  # rows vanished: back to the top
    view.press("end")
    view.press("home")
    assert view.window(11, 5) == slice(0, 5)
    view.press("up")
    assert view.window(11, 5) == slice(0, 5)


def test_delay_keys_type_or_step_the_delay_within_its_range():
    from memcgctl.render.live import View

    view = View(version=2, interval=1.0, interval_range=(0.1, 86400.0))
    for key in ["d", "2", ".", "5", "\r"]:
        view.press(key)
    assert view.interval == 2.5 and view.typing is None
    view.press("+")
    assert view.interval == 5
    view.press("-")
    view.press("-")
    assert view.interval == 1
    for key in ["d", "0", "\r"]:
        view.press(key)
    assert view.interval == 1 and view.footer() == "delay '0' not changed: give seconds from 0.1 to 86400"
    for key in ["d", "9", "\x1b"]:
        view.press(key)
    assert view.interval == 1 and "q quit" in view.footer()  # Esc: unchanged, the message gone
    view.interval = 0.1
    view.press("-")
    assert view.interval == 0.1  # the shortest
    view.press("h")
    assert view.help
    view.press("q")  # any key returns from the help, q too
    assert not view.help and not view.quit


def test_a_narrow_window_drops_the_least_important_columns_but_keeps_the_sorted_one(fake_v1):
    from memcgctl.render.live import View, render

    make_groups(fake_v1, "web")
    assert run_cli(fake_v1, "limit", "web", "100M").exit_code == 0
    frame = Sampler(open_hierarchy(fake_v1)).next_frame()
    view = View(version=1)

    def header(width):
        return render(frame, view, width, 10).plain.splitlines()[1].split()

    assert header(200) == ["GROUP", "USAGEv", "LIMIT", "%LIM", "CHANGE/s", "ANON", "FILE", "SWAP", "REFLT/s",
                           "FAIL/OOM", "PIDS"]
    # SWAP, pressure and FILE go first; the events (OOM kills) stay longer than PIDS.
    assert header(60) == ["GROUP", "USAGEv", "LIMIT", "%LIM", "CHANGE/s", "ANON", "FAIL/OOM", "PIDS"]
    assert header(40) == ["GROUP", "USAGEv", "LIMIT", "%LIM", "FAIL/OOM"]
    assert header(30) == ["GROUP", "USAGEv", "LIMIT", "%LIM"]
    view.press("s")  # sorted by swap: SWAP stays
    assert header(30) == ["GROUP", "USAGE", "%LIM", "SWAPv"]
    assert all(len(line) <= 30 for line in render(frame, view, 30, 10).plain.splitlines())


def test_events_show_totals_and_what_is_new_since_start(fake_v1):
    from memcgctl.render.frames import batch_text

    make_groups(fake_v1, "web", "db")
    set_file(fake_v1, "web", "memory.failcnt", "12\n")
    set_file(fake_v1, "web", "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    sampler = Sampler(open_hierarchy(fake_v1))
    first = sampler.next_frame()
    assert batch_text(first, order_rows(first.rows, "group"), 1).splitlines()[3].split()[-2:] == ["12/1", "0"]
    set_file(fake_v1, "web", "memory.failcnt", "15\n")
    second = sampler.next_frame()
    lines = batch_text(second, order_rows(second.rows, "events"), 1).splitlines()
    assert lines[2].split()[0] == "web" and lines[2].split()[-2] == "15(+3)/1"
    assert lines[3].split()[0] == "db" and lines[3].split()[-2] == "0/0"
    assert rows_by_name(second)["web"].stands_out and not rows_by_name(second)["db"].stands_out


def test_the_title_says_group_for_one_and_which_rows_show():
    from memcgctl.operations.sampling import Frame
    from memcgctl.render.frames import frame_title

    one = Frame(1, 0.0, None, 1, ["row"], [], [])
    assert " - 1 group - every 1 s" in frame_title(one, 1)
    eleven = Frame(1, 0.0, None, 1, ["row"] * 11, [], [])
    assert " - 11 groups - " in frame_title(eleven, 1, 11)
    assert " - 3 of 11 groups - " in frame_title(eleven, 1, 3)
    assert " - rows 6-10 of 11 groups - " in frame_title(eleven, 1, 11, (6, 10))
    assert " - rows 1-5 of 7 of 11 groups - " in frame_title(eleven, 1, 7, (1, 5))


def test_compact_sizes():
    assert [compact_size(v) for v in (0, 1023, 4096, 1536 * MIB, 210 * MIB, None)] == \
        ["0B", "1023B", "4.0K", "1.5G", "210M", "max"]
    assert compact_size(-3 * MIB) == "-3.0M"


# --- the command -------------------------------------------------------------------


def test_batch_frames_on_a_fake_tree(fake_v1):
    make_groups(fake_v1, "web", "db")
    assert run_cli(fake_v1, "limit", "web", "100M").exit_code == 0
    set_usage(fake_v1, 1, "web", 95 * MIB, anon=5 * MIB, file=90 * MIB)
    result = run_cli(fake_v1, "top", "-b", "-n", "2", "-d", "0.1")
    assert result.exit_code == 0, result.stderr
    frames = result.stdout.split("\n\n")
    assert len(frames) == 3 and frames[2] == ""
    for number, text in enumerate(frames[:2]):
        title, header, first, second = text.splitlines()
        assert title.startswith("memcgctl top - ") and "cgroup v1 - 2 groups - every 0.1 s" in title
        assert header.split() == ["GROUP", "USAGE", "LIMIT", "%LIM", "CHANGE/s", "ANON", "FILE", "SWAP",
                                  "REFLT/s", "FAIL/OOM", "PIDS"]
        change = "-" if number == 0 else "0"
        assert first.split() == ["web", "95M", "100M", "95.0", change, "5.0M", "90M", "0B", change, "0/0", "0"]
        assert second.split()[:3] == ["db", "0B", "max"]


def test_json_lines_on_a_fake_tree(fake_v2):
    make_groups(fake_v2, "web")
    set_usage(fake_v2, 2, "web", 3 * MIB, anon=MIB, file=2 * MIB)
    result = run_cli(fake_v2, "top", "--json", "-n", "2", "-d", "0.1")
    assert result.exit_code == 0, result.stderr
    frames = [json.loads(line) for line in result.stdout.splitlines()]
    assert [frame["frame"] for frame in frames] == [1, 2]
    assert frames[0]["seconds_since_previous"] is None and frames[1]["seconds_since_previous"] >= 0.09
    web = frames[1]["groups"][0]
    assert frames[1]["cgroup_version"] == 2
    assert (web["group"], web["usage"], web["anon"], web["file"], web["limit"]) == ("web", 3 * MIB, MIB, 2 * MIB, None)
    assert web["events_since_start"] == {"high": 0, "max": 0, "oom_kill": 0}
    assert web["change_per_second"] == 0


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf", "0.05", "1e9", ""])
def test_nonsense_interval_is_a_usage_error(fake_v1, value):
    result = run_cli(fake_v1, "top", "-b", "-d", value)
    assert result.exit_code == 2
    assert "-d" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("value", ["0", "-3", "x"])
def test_nonsense_count_is_a_usage_error(fake_v1, value):
    result = run_cli(fake_v1, "top", "-b", "-n", value)
    assert (result.exit_code, result.stdout) == (2, "")


def test_an_unknown_group_is_exit_66_before_any_frame(fake_v1):
    result = run_cli(fake_v1, "top", "-b", "-n", "1", "nope")
    assert result.exit_code == 66
    assert result.stdout == ""
    assert result.stderr.startswith("memcgctl: group nope: no such group (")


@pytest.mark.parametrize("mode", [["-b"], ["--json"]])
def test_a_closed_pipe_ends_top_quietly_with_141_as_every_command(fake_v1, mode):
    make_groups(fake_v1, *(f"g{i}" for i in range(20)))
    # head reads one line and exits; later frames meet a closed pipe.
    completed = subprocess.run(
        f"{sys.executable} -m memcgctl --root {fake_v1} top {' '.join(mode)} -d 0.1 -n 30 | head -1; "
        "echo status=${PIPESTATUS[0]}", shell=True, executable="/bin/bash", capture_output=True, text=True,
        timeout=60)
    lines = completed.stdout.splitlines()
    assert lines[-1] == "status=141"  # the exit status table's code for a reader that went away
    assert len(lines) == 2
    assert completed.stderr == ""


def test_a_full_output_is_one_line_and_74(fake_v1):
    make_groups(fake_v1, "web")
    with open("/dev/full", "w") as full:
        completed = subprocess.run([sys.executable, "-m", "memcgctl", "--root", str(fake_v1), "top", "-b", "-n", "1"],
                                   stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert completed.returncode == 74
    assert completed.stderr == "memcgctl: write output: no space left on device (ENOSPC) (stdout)\n"


def test_without_a_terminal_top_prints_batch_frames(fake_v1):
    make_groups(fake_v1, "web")
    completed = subprocess.run([sys.executable, "-m", "memcgctl", "--root", str(fake_v1), "top", "-n", "1"],
                               capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("memcgctl top - ") and "\nweb " in completed.stdout
    assert "\x1b[" not in completed.stdout


def write_daemon_counters(journal_directory, root, pid: int, rows: list) -> None:
    """The counters file a daemon on ROOT (process PID) writes."""
    import os
    import time

    from memcgctl.daemon.counters import counters_file_name

    row_defaults = {"reclaimed_bytes": 0, "actions": 0, "backoffs": 0, "errors": 0}
    document = {"pid": pid, "started": time.time(), "root": str(root), "root_device": root.stat().st_dev,
                "root_inode": root.stat().st_ino, "rows": [{**row_defaults, **row} for row in rows]}
    (journal_directory / counters_file_name(root)).write_text(json.dumps(document))
    assert os.path.exists(journal_directory / counters_file_name(root))


def test_a_running_daemons_working_set_estimate_shows_with_its_age(fake_v2, journal_directory):
    import os
    import time

    make_groups(fake_v2, "web", "db")
    set_usage(fake_v2, 2, "web", 300 * MIB, anon=200 * MIB, file=100 * MIB)
    write_daemon_counters(journal_directory, fake_v2, os.getpid(), [  # this process stands for the daemon
        {"group": "web", "policy": "pressure", "working_set_bytes": 250 * MIB,
         "working_set_updated": time.time() - 12},
        {"group": "db", "policy": "watermark"}])
    result = run_cli(fake_v2, "top", "-b", "-n", "1")
    assert result.exit_code == 0, result.stderr
    title, header, *lines = result.stdout.splitlines()[:4]
    assert header.split()[-1] == "WSET/AGE"
    cells = {line.split()[0]: line.split() for line in lines}
    assert cells["web"][-1] in ("250M/12s", "250M/13s") and cells["db"][-1] == "-"
    result = run_cli(fake_v2, "top", "--json", "-n", "1")
    groups = {group["group"]: group for group in json.loads(result.stdout)["groups"]}
    assert groups["web"]["working_set"]["bytes"] == 250 * MIB
    assert 12 <= groups["web"]["working_set"]["age_seconds"] < 14 and groups["db"]["working_set"] is None


def test_no_working_set_column_without_a_running_daemon(fake_v2, journal_directory):
    import time

    make_groups(fake_v2, "web")
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    write_daemon_counters(journal_directory, fake_v2, finished.pid, [
        {"group": "web", "policy": "pressure", "working_set_bytes": 250 * MIB, "working_set_updated": time.time()}])
    result = run_cli(fake_v2, "top", "-b", "-n", "1")
    assert result.exit_code == 0 and "WSET" not in result.stdout, result.stderr
    (journal_directory / next(journal_directory.glob("daemon-counters-*")).name).write_text("{broken")
    result = run_cli(fake_v2, "top", "-b", "-n", "1")
    assert result.exit_code == 0 and "WSET" not in result.stdout and result.stderr == "", result.stderr


def test_the_working_set_column_goes_first_in_a_narrow_window(fake_v2):
    from memcgctl.render.live import View, render

    make_groups(fake_v2, "web")
    frame = Sampler(open_hierarchy(fake_v2), working_sets=lambda: {"web": (250 * MIB, 0.0)}).next_frame()
    view = View(version=2)

    def header(width):
        return render(frame, view, width, 10).plain.splitlines()[1].split()

    assert header(200)[-1] == "WSET/AGE"
    narrower = header(len(render(frame, view, 200, 10).plain.splitlines()[1].rstrip()) - 1)
    assert "WSET/AGE" not in narrower and "SWAP" in narrower
