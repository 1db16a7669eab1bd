"""memcgctl top -b and --json as plain processes on the real kernel: v1 on
this host, v2 in the VM (.ci/run runs this file there too).  A group gets
page cache through a low limit (v1 memory.limit_in_bytes, v2 memory.high)
while top watches: its events since start and pressure come from the
kernel, and its figures match the kernel's files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

from conftest import run_process

MIB = 1024**2
LOW_LIMIT = 16 * MIB


def start_top(kernel_root, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "memcgctl", "--root", str(kernel_root.path), "top", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def fill_between_frames(kernel_root, top: subprocess.Popen, file) -> None:
    """64 MiB of page cache through the 16 MiB limit of busy, with TOP
    stopped meanwhile, so that its next frame comes after the fill however
    slow the machine (the VM): a stopped top wakes up past its due time."""
    os.kill(top.pid, signal.SIGSTOP)
    try:
        kernel_root.fill_page_cache("busy", file, 64)
    finally:
        os.kill(top.pid, signal.SIGCONT)


def finish(top: subprocess.Popen) -> tuple[str, str]:
    """The rest of TOP's stdout and its stderr once it ended (not communicate():
    it reads the pipe past what readline() already buffered)."""
    rest, errors = top.stdout.read(), top.stderr.read()
    top.wait(timeout=60)
    return rest, errors


def busy_and_idle(kernel_root) -> None:
    for group in ("busy", "idle"):
        assert run_process(kernel_root.path, "create", group).returncode == 0
    limit = ["--high", "16M"] if kernel_root.version == 2 else ["16M"]
    assert run_process(kernel_root.path, "limit", "busy", *limit).returncode == 0


def usage_file(kernel_root) -> str:
    return "memory.current" if kernel_root.version == 2 else "memory.usage_in_bytes"


def test_json_frames_show_page_cache_events_and_pressure_from_the_kernel(kernel_root, tmp_path):
    busy_and_idle(kernel_root)
    top = start_top(kernel_root, "--json", "-n", "3", "-d", "1")
    first = json.loads(top.stdout.readline())
    fill_between_frames(kernel_root, top, tmp_path / "cache")
    rest, errors = finish(top)
    assert (top.returncode, errors) == (0, "")
    frames = [first] + [json.loads(line) for line in rest.splitlines()]
    assert [frame["frame"] for frame in frames] == [1, 2, 3]
    assert all(frame["cgroup_version"] == kernel_root.version for frame in frames)
    last = {row["group"]: row for row in frames[-1]["groups"]}
    busy, idle = last["busy"], last["idle"]
    assert sorted(last) == ["busy", "idle"]

    # usage and page cache are the kernel's (page cache stays until reclaimed)
    usage_now = int(kernel_root.read("busy", usage_file(kernel_root)))
    assert abs(busy["usage"] - usage_now) < MIB
    assert busy["file"] > 4 * MIB and busy["usage"] <= LOW_LIMIT + MIB
    assert idle["usage"] < MIB and idle["events_since_start"] == dict.fromkeys(idle["events"], 0)

    if kernel_root.version == 1:
        assert busy["limit"] == LOW_LIMIT == int(kernel_root.read("busy", "memory.limit_in_bytes"))
        failcnt = int(kernel_root.read("busy", "memory.failcnt"))
        assert 0 < busy["events_since_start"]["failcnt"] == failcnt
        assert busy["pressure"] is None and busy["refaults_per_second"] is not None
    else:
        assert (busy["high"], busy["limit"]) == (LOW_LIMIT, None)
        events = dict(line.split() for line in kernel_root.read("busy", "memory.events").splitlines())
        assert 0 < busy["events_since_start"]["high"] == int(events["high"])
        pressure = kernel_root.read("busy", "memory.pressure").splitlines()[0]
        assert pressure.startswith("some avg10=") and isinstance(busy["pressure"], float)
    assert busy["percent_of_limit"] == round(100 * busy["usage"] / LOW_LIMIT, 1)
    assert [frame["seconds_since_previous"] is None for frame in frames] == [True, False, False]


def test_batch_frames_on_the_kernel(kernel_root, tmp_path):
    busy_and_idle(kernel_root)
    top = start_top(kernel_root, "-b", "-n", "3", "-d", "1", "busy", "idle")
    first_line = top.stdout.readline()
    fill_between_frames(kernel_root, top, tmp_path / "cache")
    rest, errors = finish(top)
    assert (top.returncode, errors) == (0, "")
    frames = (first_line + rest).split("\n\n")
    assert len(frames) == 4 and frames[3] == ""
    for text in frames[:3]:
        title, header, *rows = text.splitlines()
        assert f"cgroup v{kernel_root.version} - 2 groups - every 1 s" in title
        assert [row.split()[0] for row in rows] == ["busy", "idle"]  # by usage, largest first
    header, busy = frames[2].splitlines()[1].split(), frames[2].splitlines()[2].split()
    cells = dict(zip(header, busy, strict=True))
    assert cells["LIMIT" if kernel_root.version == 1 else "HIGH"] == "16M"
    if kernel_root.version == 1:
        fails, kills = cells["FAIL/OOM"].split("/")
        # The total, then what is new since start: all of it, the group was made just before.
        total, new = re.fullmatch(r"(\d+)\(\+(\d+)\)", fails).groups()
        assert int(total) >= int(new) > 0 and kills == "0"
        assert cells["REFLT/s"].isdigit()
    else:
        high, maximum, kills = cells["HIGH/MAX/OOM"].split("/")
        total, new = re.fullmatch(r"(\d+)\(\+(\d+)\)", high).groups()
        assert int(total) >= int(new) > 0 and kills == "0"
        assert float(cells["PSI10"]) >= 0


def test_the_quick_walk_finds_what_the_plain_walk_finds(kernel_root):
    """top lists only groups whose link count says they have child groups."""
    from memcgctl.kernel.discovery import open_hierarchy

    for group in ("a", "a/b", "a/b/c", "a/d", "e", "e/f"):
        assert run_process(kernel_root.path, "create", group).returncode == 0
    backend = open_hierarchy(kernel_root.path)
    root, fs = backend.group("", must_exist=False), backend.fs
    assert fs.is_kernel
    quick = [group.name for group in fs.descendants_quickly(root)]
    assert quick == [group.name for group in fs.descendants(root)] == ["a", "a/b", "a/b/c", "a/d", "e", "e/f"]
    (kernel_root.path / "e" / "f").rmdir()
    assert [group.name for group in fs.descendants_quickly(backend.group("e"))] == []
    assert [group.name for group in fs.descendants_quickly(backend.group("a"))] == ["a/b", "a/b/c", "a/d"]


def _fds_into(directory) -> list[str]:
    """What this process holds open under DIRECTORY (the links of /proc/self/fd)."""
    prefix = str(directory) + "/"
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(prefix) or target == str(directory):
            held.append(target)
    return held


def test_frames_read_held_files_afresh_and_let_go_of_removed_groups(kernel_root):
    """Between frames top keeps each group's files open and reads them again:
    a changed limit shows at the next frame, a group removed vanishes (and
    its files are closed, not kept open on a dead group), a group made again
    under the same name, or renamed into its place, is read as the new one."""
    from memcgctl.kernel.discovery import open_hierarchy
    from memcgctl.operations.sampling import Sampler

    limit_file = "memory.limit_in_bytes" if kernel_root.version == 1 else "memory.max"
    for group in ("a", "b", "c"):
        assert run_process(kernel_root.path, "create", group).returncode == 0
    sampler = Sampler(open_hierarchy(kernel_root.path))

    def limits() -> dict:
        return {row.group: row.sample.limit for row in sampler.next_frame().rows}

    assert limits() == {"a": None, "b": None, "c": None}
    assert _fds_into(kernel_root.path / "b"), "the files of b are kept open between frames"
    kernel_root.write("a", limit_file, str(64 * MIB))
    assert limits() == {"a": 64 * MIB, "b": None, "c": None}

    (kernel_root.path / "b").rmdir()
    frame = sampler.next_frame()
    assert [row.group for row in frame.rows] == ["a", "c"] and frame.vanished == ["b"]
    assert _fds_into(kernel_root.path / "b") == []

    (kernel_root.path / "b").mkdir()
    kernel_root.write("b", limit_file, str(32 * MIB))
    if kernel_root.version == 1:  # cgroup v2 refuses to rename a group (EPERM)
        (kernel_root.path / "a").rename(kernel_root.path / "d")
        (kernel_root.path / "c").rename(kernel_root.path / "a")
    else:  # a group removed and another made under its name
        (kernel_root.path / "a").rmdir()
        (kernel_root.path / "c").rmdir()
        for group in ("a", "d"):
            (kernel_root.path / group).mkdir()
    kernel_root.write("d", limit_file, str(16 * MIB))
    assert limits() == {"a": None, "b": 32 * MIB, "d": 16 * MIB}
    # Removed between two frames' walk and read: left out, not an error.
    (kernel_root.path / "b").rmdir()
    assert {row.group for row in sampler.next_frame().rows} == {"a", "d"}
    sampler.backend.fs.close()
    assert _fds_into(kernel_root.path) == []


def test_a_named_group_removed_with_its_children_leaves_no_file_held(kernel_root):
    """`top batch` (and export of batch): batch and the groups below it are
    removed; their files are let go, not held on dead groups for the rest of
    the session (no walk under batch comes again to find them gone)."""
    from memcgctl.export.collector import GroupCollector
    from memcgctl.export.serve import exposition
    from memcgctl.kernel.discovery import open_hierarchy
    from memcgctl.operations.sampling import Sampler

    for reader in ("top", "export"):
        assert run_process(kernel_root.path, "create", "-p", "batch/a", "batch/b").returncode == 0
        backend = open_hierarchy(kernel_root.path)
        if reader == "top":
            sampler = Sampler(backend, ["batch"])
            assert {row.group for row in sampler.next_frame().rows} == {"batch", "batch/a", "batch/b"}
        else:
            collector = GroupCollector(backend, ["batch"], recursive=True)
            assert 'group="batch/a"' in exposition(collector).decode()
        assert _fds_into(kernel_root.path / "batch" / "a"), f"{reader}: the files of batch/a are held"
        for group in ("batch/a", "batch/b", "batch"):
            (kernel_root.path / group).rmdir()
        if reader == "top":
            assert sampler.next_frame().rows == []
        else:
            assert 'group="batch' not in exposition(collector).decode()
        assert _fds_into(kernel_root.path / "batch") == [], reader  # (the root's own fd stays till close)
        backend.fs.close()


def test_scrapes_read_held_files_afresh_and_leave_out_removed_groups(kernel_root):
    """export --listen keeps the files open between scrapes as top does: the
    next scrape shows a new limit, and a removed group is left out without
    an error."""
    from memcgctl.export.collector import GroupCollector
    from memcgctl.export.serve import exposition
    from memcgctl.kernel.discovery import open_hierarchy

    limit_file = "memory.limit_in_bytes" if kernel_root.version == 1 else "memory.max"
    for group in ("a", "b"):
        assert run_process(kernel_root.path, "create", group).returncode == 0
    collector = GroupCollector(open_hierarchy(kernel_root.path))
    assert 'memcgctl_memory_limit_bytes{group="a"}' not in exposition(collector).decode()
    kernel_root.write("a", limit_file, str(64 * MIB))
    (kernel_root.path / "b").rmdir()
    text = exposition(collector).decode()
    assert 'memcgctl_memory_limit_bytes{group="a"} 6.7108864e+07' in text
    assert 'group="b"' not in text
    assert "memcgctl_scrape_groups 1.0" in text and "memcgctl_scrape_errors 0.0" in text
    assert _fds_into(kernel_root.path / "b") == []
