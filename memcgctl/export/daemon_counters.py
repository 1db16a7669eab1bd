"""The counters a running memcgctl daemon leaves in its journal directory.

The daemon replaces its root's counters file (one per root, see
daemon/counters.py) atomically after each change.  It is read through the journal's
checked directory (a directory someone else could write is refused, as the
daemon refuses it), never through a link, and only counts when it names the
root being exported (path, device and inode of its directory) and while the
process that wrote it is alive: the file outlives a daemon that was killed.
A row of a policy that estimates the group's working set (pressure) also has
"working_set_bytes" and "working_set_updated" (unix seconds of its last change).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

from ..daemon.counters import COUNTER_NAMES as COUNTER_KEYS
from ..daemon.counters import counters_file_name
from ..errors import MemcgError

# The file of a daemon watching thousands of groups stays well under this.
MAX_FILE_BYTES = 16 * 1024 * 1024


class DaemonCounters(NamedTuple):
    pid: int
    started: float
    root: str
    root_identity: tuple[int, int]
    rows: list


class UnreadableCounters(Exception):  # noqa: N818 (a state of the file, reported as a metric)
    """The file cannot be read, or is not what the daemon writes for this root."""


def read_daemon_counters(journal, root: Path, root_identity: tuple[int, int]) -> DaemonCounters | None:
    """The counters of the daemon running on ROOT (whose directory has
    ROOT_IDENTITY, device and inode) from JOURNAL (a Journal), or None when
    no daemon runs there (no file, or its writer is gone).  UnreadableCounters
    when the file cannot be read or trusted, is not in the daemon's shape, or
    is about another root."""
    try:
        data = journal.read_file(counters_file_name(root), "read daemon counters", MAX_FILE_BYTES)
    except MemcgError as error:
        raise UnreadableCounters(str(error)) from error
    if data is None:
        return None
    try:
        counters = _parse(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise UnreadableCounters(str(err)) from err
    if (counters.root, counters.root_identity) != (str(root), tuple(root_identity)):
        raise UnreadableCounters(f"written for another root ({counters.root}, device and inode "
                                 f"{counters.root_identity}), not {root}")
    return counters if writer_alive(counters.pid, counters.started) else None


def _parse(text: str) -> DaemonCounters:
    try:
        data = json.loads(text)
        rows = [_parse_row(row) for row in data["rows"]]
        identity = (int(data["root_device"]), int(data["root_inode"]))
        return DaemonCounters(int(data["pid"]), float(data["started"]), str(data["root"]), identity, rows)
    except (ValueError, KeyError, TypeError) as err:
        raise UnreadableCounters(f"not in the daemon's format: {err}") from err


def _parse_row(row: dict) -> dict:
    parsed: dict[str, str | int | float] = {"group": str(row["group"]), "policy": str(row["policy"])}
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


class WorkingSet(NamedTuple):
    group: str
    policy: str
    size: int  # bytes
    updated: float  # unix seconds of the estimate's last change


def working_sets(backend) -> list[WorkingSet]:
    """The working-set estimates of the daemon running on BACKEND's root,
    from its counters file; none without a daemon, without a journal, or when
    the file cannot be read (stat and top show the kernel's figures whatever
    the daemon's file holds)."""
    if backend.journal is None:
        return []
    try:
        counters = read_daemon_counters(backend.journal, backend.fs.root, backend.fs.root_identity())
    except (UnreadableCounters, MemcgError):
        return []
    if counters is None:
        return []
    return [WorkingSet(row["group"], row["policy"], row["working_set_bytes"], row["working_set_updated"])
            for row in counters.rows if "working_set_bytes" in row]


# How much later than its "started" the daemon's process may have begun (its
# clock is read after Python starts); a process that began later holds a
# reused pid.
START_SLACK_SECONDS = 5


def writer_alive(pid: int, started: float) -> bool:
    """Whether the daemon that wrote a counters or status file (its PID, and
    STARTED, unix seconds) still runs: the pid names a process, and that
    process is not a newer one that was given the same pid."""
    if not _process_alive(pid):
        return False
    began = _process_start_time(pid)
    return began is None or began <= started + START_SLACK_SECONDS


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
