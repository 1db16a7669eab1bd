"""The counters a running memcgctl daemon leaves in its journal directory.

The daemon replaces <journal dir>/daemon-counters.json atomically after each
change; its shape:

    {"pid": int, "started": unix seconds, "root": str,
     "rows": [{"group": str, "policy": str, "reclaimed_bytes": int,
               "actions": int, "backoffs": int, "errors": int,
               "working_set_bytes": int, "working_set_updated": unix seconds}]}

(the working_set_* keys only in rows of a policy that estimates it: pressure).

The file outlives a daemon that was killed, so it only counts while the
process that wrote it is alive.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

FILE_NAME = "daemon-counters.json"
# Each row's counters: the key in the file and what it counts.
COUNTER_KEYS = ("reclaimed_bytes", "actions", "backoffs", "errors")


class DaemonCounters(NamedTuple):
    pid: int
    started: float
    root: str
    rows: list


class UnreadableCounters(Exception):  # noqa: N818 (a state of the file, reported as a metric)
    """The file exists but is not what the daemon writes."""


def read_daemon_counters(journal_directory: Path) -> DaemonCounters | None:
    """The counters of the running daemon, or None when no daemon runs (no
    file, or its writer is gone).  UnreadableCounters when the file is not in
    the daemon's shape."""
    try:
        text = _read_regular_file(Path(journal_directory) / FILE_NAME)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise UnreadableCounters(str(err)) from err
    counters = _parse(text)
    return counters if _writer_alive(counters) else None


# The file of a daemon watching thousands of groups stays well under this.
MAX_FILE_BYTES = 16 * 1024 * 1024


def _read_regular_file(path: Path) -> str:
    """The text of PATH, a regular file: a symbolic link, or a FIFO planted
    where the daemon's file should be, is refused (OSError) rather than
    followed or waited on, and the read is bounded."""
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"not a regular file: {path}")
        chunks, size = [], 0
        while size <= MAX_FILE_BYTES and (chunk := os.read(fd, 65536)):
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_FILE_BYTES:
            raise OSError(f"larger than {MAX_FILE_BYTES} bytes: {path}")
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8")


def _parse(text: str) -> DaemonCounters:
    try:
        data = json.loads(text)
        rows = [_parse_row(row) for row in data["rows"]]
        return DaemonCounters(int(data["pid"]), float(data["started"]), str(data["root"]), rows)
    except (ValueError, KeyError, TypeError) as err:
        raise UnreadableCounters(f"not in the daemon's format: {err}") from err


def _parse_row(row: dict) -> dict:
    parsed = {"group": str(row["group"]), "policy": str(row["policy"])}
    for key in COUNTER_KEYS:
        value = row[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{key} of {parsed['group']} is not a count: {value!r}")
        parsed[key] = value
    if "working_set_bytes" in row:
        size, updated = row["working_set_bytes"], row["working_set_updated"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0 \
                or isinstance(updated, bool) or not isinstance(updated, (int, float)):
            raise ValueError(f"the working set of {parsed['group']} is not a size and a time: {size!r}, {updated!r}")
        parsed["working_set_bytes"], parsed["working_set_updated"] = size, float(updated)
    return parsed


# How much later than its "started" the daemon's process may have begun (its
# clock is read after Python starts); a process that began later holds a
# reused pid.
START_SLACK_SECONDS = 5


def _writer_alive(counters: DaemonCounters) -> bool:
    """Whether the daemon that wrote COUNTERS still runs: its pid names a
    process, and that process is not a newer one that was given the same pid."""
    if not _process_alive(counters.pid):
        return False
    began = _process_start_time(counters.pid)
    return began is None or began <= counters.started + START_SLACK_SECONDS


def _process_start_time(pid: int) -> float | None:
    """When process PID began (unix seconds), from /proc; None if unknown."""
    try:
        stat_fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot_line = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
    except (OSError, StopIteration):
        return None
    # Field 22 of /proc/PID/stat (the 20th after the command name): start time in clock ticks since boot.
    return int(boot_line.split()[1]) + int(stat_fields[19]) / os.sysconf("SC_CLK_TCK")


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True
