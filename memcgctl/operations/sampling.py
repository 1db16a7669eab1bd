"""Sampling groups for `memcgctl top`: one Frame per refresh, as data.

A Sampler reads, for every group it watches, only the files top's columns
need, each once per frame, and keeps what rates need from the previous
frame: change of usage per second, v1 refaults per second, and the events
counted since the group was first seen.  Groups appear and vanish between
frames as they are made and removed; a group removed while it is read is
left out of that frame, never an error.  Never prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

from ..errors import MemcgError, NotFound
from ..kernel.backend import Backend
from ..kernel.figures import GroupFigures
from ..kernel.fs import Group
from .stats import USAGE_PARTS

# What a row needs whatever it shows: usage and limits (its percent of the
# limit), events (what is new since start, whether it stands out).
ROW_PARTS = frozenset({"usage", "limit", "high", "events", "failcnt"})
# What a frame reads of each group by default: what top's columns show
# (render.frames.frame_parts says it for the columns of a cgroup version).
TOP_PARTS = ROW_PARTS | {"swap", "pids", "stat", "pressure"}
# v1 memory.stat: the hierarchical twins (total_*), like usage_in_bytes;
# workingset_refault_anon/_file since 5.9 (workingset_refault before).
V1_REFAULTS = ("total_workingset_refault_anon", "total_workingset_refault_file", "total_workingset_refault")
# The memory.stat keys a frame shows, of either version (the rest is not parsed).
TOP_STAT_KEYS = frozenset({key for version in USAGE_PARTS.values() for part in ("anon", "file")
                           for key in version[part]} | set(V1_REFAULTS))
V2_EVENTS = ("high", "max", "oom_kill")
V1_EVENTS = ("failcnt", "oom_kill")
# A row stands out from this share of its limit on.
ALERT_PERCENT = 90.0


class GroupSample(NamedTuple):
    """What one frame read of one group; bytes, None where not applicable
    (unlimited, no swap accounting, not on this cgroup version)."""

    group: str
    usage: int
    limit: int | None  # v1 memory.limit_in_bytes, v2 memory.max
    high: int | None  # v2 memory.high
    anon: int | None
    file: int | None
    swap: int | None
    pressure: float | None  # v2: memory.pressure some avg10, in percent
    refaults: int | None  # v1: workingset refaults so far (a count of pages)
    events: dict  # v2 memory.events high/max/oom_kill, v1 failcnt/oom_kill
    pids: int


class GroupRow(NamedTuple):
    """A sample with what needs the previous frame and the first sighting."""

    sample: GroupSample
    percent_of_limit: float | None
    change_per_second: float | None  # bytes/s; None in a group's first frame
    refaults_per_second: float | None  # v1 only
    events_since_start: dict
    figures: GroupFigures  # the group's record, as read for this frame (a column may show any part of it)
    # A running daemon's working-set estimate of the group: (bytes, seconds
    # since it last changed), from the daemon's counters; None without one.
    working_set: tuple[int, float] | None = None

    @property
    def group(self) -> str:
        return self.sample.group

    @property
    def stands_out(self) -> bool:
        """Over ALERT_PERCENT of its limit, or any OOM kill (before top started too)."""
        over = self.percent_of_limit is not None and self.percent_of_limit >= ALERT_PERCENT
        return over or self.sample.events.get("oom_kill", 0) > 0

    def to_json(self) -> dict:
        figures = self.sample._asdict()
        figures["events"] = dict(self.sample.events)
        figures.update(percent_of_limit=self.percent_of_limit, change_per_second=self.change_per_second,
                       refaults_per_second=self.refaults_per_second,
                       events_since_start=dict(self.events_since_start), stands_out=self.stands_out,
                       working_set=None if self.working_set is None else
                       {"bytes": self.working_set[0], "age_seconds": round(self.working_set[1], 1)})
        return figures


class Frame(NamedTuple):
    """One refresh: every group watched, in the order they were found."""

    number: int  # 1 for the first frame
    time: float  # seconds since the epoch
    seconds_since_previous: float | None
    cgroup_version: int
    rows: list
    appeared: list  # group names new since the previous frame
    vanished: list  # group names gone since the previous frame

    def to_json(self) -> dict:
        return {"frame": self.number, "time": round(self.time, 3),
                "seconds_since_previous": self.seconds_since_previous,
                "cgroup_version": self.cgroup_version, "groups": [row.to_json() for row in self.rows],
                "appeared": list(self.appeared), "vanished": list(self.vanished)}


def effective_limit(sample: GroupSample) -> int | None:
    """The lower of the hard limit and (v2) memory.high: where trouble starts."""
    limits = [value for value in (sample.limit, sample.high) if value is not None]
    return min(limits) if limits else None


class Sampler:
    """Takes frames of the groups NAMES (and all below them) under BACKEND's
    root; no names: every group under the root.  PARTS: the parts of the
    record the frame's columns show (ROW_PARTS are read in any case).
    WORKING_SETS, if given, is called once a frame for a running daemon's
    working-set estimates: {group: (bytes, unix time of the estimate's last
    change)}."""

    def __init__(self, backend: Backend, names: tuple | list = (),
                 clock: Callable[[], float] = time.monotonic, parts: frozenset = TOP_PARTS,
                 working_sets: Callable[[], dict] | None = None):
        self.backend = backend
        self.names = list(names)
        self.clock = clock
        self.parts = ROW_PARTS | parts
        self.working_sets = working_sets
        self._previous: dict[str, tuple[float, GroupSample]] = {}
        self._baselines: dict[str, dict] = {}
        self._frames = 0
        self._frame_time = 0.0  # monotonic time of the previous frame
        # Each group a frame could not read, by label: the first error (the
        # command line names each once); the frame shows the others.
        self.unreadable: dict[str, MemcgError] = {}
        # A GROUP named on the command line must exist at the start (exit 66).
        for name in self.names:
            backend.group(name)
        # Every frame walks the groups and reads them all again.
        backend.fs.keep_files_open()

    def watched_groups(self) -> list[Group]:
        """The groups to read now (each named group and all below it); a named
        group removed since is left out."""
        fs = self.backend.fs
        if not self.names:
            return fs.descendants_quickly(self.backend.group("", must_exist=False))
        groups = []
        for name in self.names:
            try:
                group = self.backend.group(name)
                groups += [group, *fs.descendants_quickly(group)]
            except NotFound:
                fs.let_go_of(self.backend.group(name, must_exist=False))
        return groups

    def next_frame(self) -> Frame:
        """Read every watched group once and compare with the previous frame."""
        started = self.clock()
        rows, current = [], {}
        for group in self.watched_groups():
            try:
                figures = read_group(self.backend, group, self.parts)
            except MemcgError as error:
                self.unreadable.setdefault(group.label, error)
                continue
            if figures is None or figures.group in current:
                continue  # removed while we read it, or named twice
            sample = sample_of(figures)
            current[sample.group] = (started, sample)
            rows.append(self._row(started, sample, figures))
        if self.working_sets is not None:  # after the groups: their reads stay close to STARTED
            estimates, wall = self.working_sets(), time.time()
            rows = [row._replace(working_set=(estimates[row.group][0], max(0.0, wall - estimates[row.group][1])))
                    if row.group in estimates else row for row in rows]
        previous_time = self._frame_time if self._frames else None
        appeared = [name for name in current if name not in self._previous] if self._frames else []
        vanished = [name for name in self._previous if name not in current]
        for name in vanished:
            self._baselines.pop(name, None)
        self._previous, self._frame_time = current, started
        self._frames += 1
        since = None if previous_time is None else round(started - previous_time, 6)
        return Frame(self._frames, time.time(), since, self.backend.version, rows, appeared, vanished)

    def _row(self, now: float, sample: GroupSample, figures: GroupFigures) -> GroupRow:
        baseline = self._baselines.setdefault(sample.group, dict(sample.events))
        for name, value in sample.events.items():
            if value < baseline.get(name, 0):
                baseline[name] = 0  # the counter was reset (v1: a write to memory.failcnt)
        since_start = {name: value - baseline.get(name, 0) for name, value in sample.events.items()}
        limit = effective_limit(sample)
        percent = None if not limit else round(100.0 * sample.usage / limit, 1)
        change = refaults = None
        if sample.group in self._previous:
            then, before = self._previous[sample.group]
            seconds = now - then
            if seconds > 0:
                change = (sample.usage - before.usage) / seconds
                if sample.refaults is not None and before.refaults is not None:
                    refaults = (sample.refaults - before.refaults) / seconds
        return GroupRow(sample, percent, change, refaults, since_start, figures)


# --- reading one group (the kernel layer's record, each file once) -------------------


def read_group(backend: Backend, group: Group, parts: frozenset = TOP_PARTS) -> GroupFigures | None:
    """The PARTS of GROUP a frame shows; None if it is gone (removed while read)."""
    try:
        return backend.read_figures(group, parts, TOP_STAT_KEYS)
    except NotFound:
        return None


def read_sample(backend: Backend, group: Group) -> GroupSample | None:
    """What a frame shows of GROUP; None if it is gone (removed while read)."""
    figures = read_group(backend, group)
    return None if figures is None else sample_of(figures)


def sample_of(figures: GroupFigures) -> GroupSample:
    """The figures of a frame's row, from the group's record."""
    if figures.usage is None:  # not met: ROW_PARTS reads usage, and a group without it is gone
        raise ValueError("a frame's row needs the figures' usage part")
    stat = figures.stat or {}
    events = figures.events or {}
    if figures.cgroup_version == 1:
        refault_counts = [stat[key] for key in V1_REFAULTS if key in stat]
        refaults = sum(refault_counts) if refault_counts else None
        shown_events = {"failcnt": figures.failcnt or 0, "oom_kill": events.get("oom_kill", 0)}
    else:
        refaults = None
        shown_events = {name: events.get(name, 0) for name in V2_EVENTS}
    return GroupSample(
        group=figures.group, usage=figures.usage, limit=figures.limit, high=figures.high,
        anon=_hierarchical(stat, figures.cgroup_version, "anon"),
        file=_hierarchical(stat, figures.cgroup_version, "file"), swap=figures.swap,
        pressure=None if figures.pressure is None else figures.pressure.some.avg10,
        refaults=refaults, events=shown_events, pids=figures.pids or 0,
    )


def _hierarchical(stat: dict, version: int, part: str) -> int | None:
    """The memory.stat figure PART counted with the descendants, like usage
    (stats.USAGE_PARTS); None if memory.stat lacks it."""
    return next((stat[key] for key in USAGE_PARTS[version][part] if key in stat), None)


# --- ordering rows for a view ------------------------------------------------------------


# sort name -> (what to sort by, largest first by default)
SORT_KEYS = {
    "group": (lambda row: row.group, False),
    "usage": (lambda row: row.sample.usage, True),
    "limit": (lambda row: effective_limit(row.sample), True),
    "percent": (lambda row: row.percent_of_limit, True),
    "change": (lambda row: row.change_per_second, True),
    "anon": (lambda row: row.sample.anon, True),
    "file": (lambda row: row.sample.file, True),
    "swap": (lambda row: row.sample.swap, True),
    "pressure": (lambda row: _pressure_figure(row), True),
    "events": (lambda row: (sum(row.events_since_start.values()), sum(row.sample.events.values())), True),
    "pids": (lambda row: row.sample.pids, True),
    "working_set": (lambda row: None if row.working_set is None else row.working_set[0], True),
}


def _pressure_figure(row: GroupRow) -> float | None:
    return row.sample.pressure if row.sample.pressure is not None else row.refaults_per_second


def _sort_rows(rows: list, sort: str, reverse: bool) -> list:
    """Rows by SORT (largest first for figures; REVERSE flips), with None
    (unlimited, not known yet) always last, ties by name."""
    figure, largest_first = SORT_KEYS[sort]
    descending = largest_first != reverse
    known = [row for row in rows if figure(row) is not None]
    unknown = sorted((row for row in rows if figure(row) is None), key=lambda row: row.group)
    known.sort(key=lambda row: row.group)
    known.sort(key=figure, reverse=descending)
    return known + unknown


def order_rows(rows: list, sort: str = "usage", reverse: bool = False, tree: bool = False,
               name_filter: str = "") -> list[tuple[int, GroupRow]]:
    """(depth, row) pairs to show: the rows whose name contains NAME_FILTER
    (any case), sorted by SORT; in TREE order each group follows its parent
    (depth counted from the shallowest shown), siblings sorted by SORT."""
    needle = name_filter.lower()
    shown = [row for row in rows if needle in row.group.lower()]
    if not tree:
        return [(0, row) for row in _sort_rows(shown, sort, reverse)]
    names = {row.group for row in shown}
    children: dict[str, list] = {}
    for row in shown:
        parent = row.group.rpartition("/")[0]
        while parent and parent not in names:
            parent = parent.rpartition("/")[0]  # a filtered-out parent: attach higher up
        children.setdefault(parent, []).append(row)
    ordered: list[tuple[int, GroupRow]] = []
    pending = [(0, row) for row in reversed(_sort_rows(children.get("", []), sort, reverse))]
    while pending:
        depth, row = pending.pop()
        ordered.append((depth, row))
        pending += [(depth + 1, child) for child in reversed(_sort_rows(children.get(row.group, []), sort, reverse))]
    return ordered
