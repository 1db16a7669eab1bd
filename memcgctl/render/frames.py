"""`memcgctl top` frames as text: the cells of each column, the plain frames
of batch mode (-b), and the keys that sort.  No rich here: batch mode and
the live display (live.py) share these cells, and batch mode stays light.

Sizes are compact ("1.5G", "210M") as in top and htop: a frame of a
thousand groups formats thousands of them, and columns must stay narrow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

from ..escape import printable
from ..operations.sampling import Frame, GroupRow
from .columns import aligned_lines

_UNITS = "KMGTPE"


def compact_size(value: int | float | None, unlimited: str = "max") -> str:
    """'512B', '4.0K', '1.5G', '210M' (powers of 1024); UNLIMITED for None."""
    if value is None:
        return unlimited
    if abs(value) < 1024:
        return f"{value:.0f}B"
    for power, unit in enumerate(_UNITS, start=1):
        scaled = value / 1024**power
        if abs(scaled) < 1024 or unit == _UNITS[-1]:
            return f"{scaled:.1f}{unit}" if abs(scaled) < 10 else f"{scaled:.0f}{unit}"
    raise AssertionError("unreachable")


def _change_cell(row: GroupRow) -> str:
    change = row.change_per_second
    if change is None:
        return "-"
    if abs(change) < 1:
        return "0"
    return ("+" if change > 0 else "") + compact_size(change)


def _pressure_cell(row: GroupRow) -> str:
    if row.sample.pressure is not None:
        return f"{row.sample.pressure:.2f}"
    if row.refaults_per_second is not None:
        return f"{row.refaults_per_second:.0f}"
    return "-"


def _events_cell(row: GroupRow) -> str:
    """Each counter's total, and what is new since top started: '12(+3)/1'."""
    return "/".join(f"{total}(+{row.events_since_start[name]})" if row.events_since_start.get(name) else str(total)
                    for name, total in row.sample.events.items())


def compact_age(seconds: float) -> str:
    """'12s', '5m', '3h', '2d': how old a figure is, in one short unit."""
    if seconds < 100:
        return f"{seconds:.0f}s"
    if seconds < 100 * 60:
        return f"{seconds / 60:.0f}m"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def _working_set_cell(row: GroupRow) -> str:
    """A running daemon's estimate and its age: '250M/12s'; '-' without one."""
    if row.working_set is None:
        return "-"
    size, age = row.working_set
    return f"{compact_size(size)}/{compact_age(age)}"


def _percent_cell(row: GroupRow) -> str:
    return "-" if row.percent_of_limit is None else f"{row.percent_of_limit:.1f}"


class Column(NamedTuple):
    header: str
    sort: str | None  # a key of sampling.SORT_KEYS; None: nothing sorts by it
    key: str  # the key that sorts by it in the live view ("" with no sort)
    cell: Callable[[GroupRow], str]
    importance: int  # a narrow window hides the least important columns first
    parts: tuple = ()  # the parts of the group's record the cell shows (sampling.ROW_PARTS aside)


def columns(version: int, working_set: bool = False) -> list[Column]:
    """The columns of top on cgroup VERSION, group name first; WORKING_SET:
    with the daemon's working-set estimate (shown while a daemon has one)."""
    found = [
        Column("GROUP", "group", "n", lambda row: printable(row.group), 99),
        Column("USAGE", "usage", "u", lambda row: compact_size(row.sample.usage), 10),
        Column("LIMIT", "limit", "l", lambda row: compact_size(row.sample.limit), 8),
    ]
    if version == 2:
        found.append(Column("HIGH", "limit", "l", lambda row: compact_size(row.sample.high), 5))
    found += [
        Column("%LIM", "percent", "%", _percent_cell, 9),
        Column("CHANGE/s", "change", "c", _change_cell, 6),
        Column("ANON", "anon", "a", lambda row: compact_size(row.sample.anon, "-"), 3, ("stat",)),
        Column("FILE", "file", "f", lambda row: compact_size(row.sample.file, "-"), 2, ("stat",)),
        Column("SWAP", "swap", "s", lambda row: compact_size(row.sample.swap, "-"), 0, ("swap",)),
    ]
    if version == 2:  # v1 has no zswap files; a narrow window hides it first
        found.append(Column("ZSWAP", None, "", lambda row: compact_size(row.figures.zswap, "-"), -1, ("zswap",)))
    found += [
        # v2: PSI some avg10 (% of time stalled); v1 has no per-group PSI: refaults/s.
        Column("PSI10" if version == 2 else "REFLT/s", "pressure", "p", _pressure_cell, 1,
               ("pressure",) if version == 2 else ("stat",)),
        # Totals, and what is new since start (a kill before top started still counts).
        Column("HIGH/MAX/OOM" if version == 2 else "FAIL/OOM", "events", "e", _events_cell, 7),
        Column("PIDS", "pids", "P", lambda row: str(row.sample.pids), 4, ("pids",)),
    ]
    if working_set:
        # The estimate and how long ago it last changed; the first to go in a
        # narrow window.  No key sorts by it: the footer has no room left.
        found.append(Column("WSET/AGE", "working_set", "", _working_set_cell, -2))
    return found


def frame_parts(version: int) -> frozenset:
    """The parts of a group's record the columns of VERSION show (for the Sampler)."""
    return frozenset(part for column in columns(version) for part in column.parts)


def frame_columns(frame: Frame) -> list[Column]:
    """The columns of FRAME: the working-set column while any row has an estimate."""
    return columns(frame.cgroup_version, any(row.working_set is not None for row in frame.rows))


def sort_by_key(version: int) -> dict[str, str]:
    """{key pressed: sort name} of the live view."""
    return {column.key: column.sort for column in columns(version) if column.sort is not None}



def frame_title(frame: Frame, interval: float, shown: int | None = None,
                rows: tuple[int, int] | None = None) -> str:
    """The title line: the time, how many groups (SHOWN of them after a
    filter) and, when they do not all fit, which ROWS (first, last; from 1)."""
    clock = time.strftime("%H:%M:%S", time.localtime(frame.time))
    total = len(frame.rows)
    groups = f"{total} group" + ("" if total == 1 else "s")
    if shown is not None and shown != total:
        groups = f"{shown} of {groups}"
    if rows is not None:
        groups = f"rows {rows[0]}-{rows[1]} of {groups}"
    return f"memcgctl top - {clock} - cgroup v{frame.cgroup_version} - {groups} - every {interval:g} s"


def table_cells(frame: Frame, ordered: list) -> tuple[list[str], list[list[str]]]:
    """The header and the cells of (depth, row) pairs, a tree indented."""
    shown = frame_columns(frame)
    header = [column.header for column in shown]
    cells = []
    for depth, row in ordered:
        line = [column.cell(row) for column in shown]
        if depth:
            line[0] = "  " * depth + printable(row.group.rsplit("/", 1)[-1])
        cells.append(line)
    return header, cells


def batch_text(frame: Frame, ordered: list, interval: float) -> str:
    """One frame of `top -b`: a title line, the table, an empty line."""
    lines = [frame_title(frame, interval), *aligned_lines(*table_cells(frame, ordered))]
    return "\n".join(lines) + "\n\n"
