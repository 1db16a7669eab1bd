"""A prometheus_client Collector over memory groups, read afresh at each scrape.

Naming follows Prometheus conventions: base units (bytes, seconds), `_total`
on counters, one `group` label (the group's name under the root, spelled as in every
table: escape.printable, valid UTF-8 and free of control characters), and one
metric per memory.stat key exported rather than a label per key.  A figure a
group does not have (an unlimited limit, a v2 file on v1) is left out, not
written as +Inf or 0.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..errors import MemcgError, NotFound
from ..escape import printable
from ..kernel.backend import Backend
from ..kernel.figures import GroupFigures
from ..operations.stats import select_groups
from .daemon_counters import COUNTER_KEYS, UnreadableCounters, read_daemon_counters
from .figures import READ_STAT_KEYS, STAT_BYTES, STAT_COUNTS, exported_stat, pressure_seconds

PREFIX = "memcgctl_"

# figure -> (metric name, help).  Sizes in bytes; absent = unlimited.
GROUP_GAUGES = {
    "usage": ("memory_usage_bytes", "Memory charged to the group (v1 memory.usage_in_bytes, v2 memory.current)."),
    "limit": ("memory_limit_bytes", "Hard limit (v1 memory.limit_in_bytes, v2 memory.max); absent if unlimited."),
    "soft_limit": ("memory_soft_limit_bytes", "v1 soft limit (memory.soft_limit_in_bytes); absent if unlimited."),
    "high": ("memory_high_bytes", "v2 throttle point (memory.high); absent if unlimited."),
    "low": ("memory_low_bytes", "v2 best-effort protection (memory.low)."),
    "min": ("memory_min_bytes", "v2 hard protection (memory.min)."),
    "swap_limit": ("memory_swap_limit_bytes", "Swap allowed, alone (v1 memsw minus limit, v2 memory.swap.max); "
                   "absent if unlimited."),
    "peak": ("memory_peak_bytes", "High-water mark of usage (v1 memory.max_usage_in_bytes, v2 memory.peak)."),
    "zswap": ("memory_zswap_bytes", "Compressed memory in zswap charged to the group (v2 memory.zswap.current)."),
    "zswap_writeback": ("memory_zswap_writeback", "1 if zswap writes the group's pages on to swap when full, "
                        "0 if not (v2 memory.zswap.writeback, 6.8+)."),
}

# v2 memory.events keys (cgroup-v2.rst); v1 has memory.failcnt and the
# oom_kill line of memory.oom_control (4.13+).
EVENT_HELP = {
    "low": "Times the group was reclaimed below memory.low (v2 memory.events low).",
    "high": "Times the group was throttled above memory.high (v2 memory.events high).",
    "max": "Times usage was about to go over memory.max (v2 memory.events max).",
    "oom": "Times the group hit its limit and allocations failed (v2 memory.events oom).",
    "oom_kill": "Processes OOM-killed in the group (v2 memory.events oom_kill, with the groups below; "
                "v1 memory.oom_control oom_kill, the group alone).",
    "oom_group_kill": "Group OOM kills (v2 memory.events oom_group_kill).",
}
PRESSURE_HELP = {
    "some": "Time some tasks of the group were stalled on memory (v2 memory.pressure some total).",
    "full": "Time all tasks of the group were stalled on memory (v2 memory.pressure full total).",
}

DAEMON_HELP = {
    "reclaimed_bytes": "Bytes the memcgctl daemon reclaimed from the group under the policy.",
    "actions": "Changes the memcgctl daemon made to the group under the policy.",
    "backoffs": "Times the memcgctl daemon backed off from the group under the policy.",
    "errors": "Errors the memcgctl daemon met on the group under the policy.",
}
WORKING_SET_HELP = ("The memcgctl daemon's estimate of the memory the group's workload needs: the usage at which "
                    "it refaults or stalls (pressure policy).")


# memory.stat's exported keys as metrics: (key, metric name, help, kind).
STAT_METRICS = (
    [(key, f"memory_stat_{key}_bytes", f"memory.stat {key}, in bytes.", GaugeMetricFamily) for key in STAT_BYTES]
    + [(key, f"memory_stat_{key}", f"memory.stat {key}, a count of events.", CounterMetricFamily)
       for key in STAT_COUNTS])
# What a scrape reads of each group: the parts behind the metrics above.
EXPORT_PARTS = frozenset((*GROUP_GAUGES, "pids", "failcnt", "events", "pressure", "stat"))


class GroupFamilies:
    """The metric families of one scrape, filled one group at a time."""

    def __init__(self):
        self.families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}

    def _family(self, kind: type[GaugeMetricFamily] | type[CounterMetricFamily], name: str, documentation: str,
                labels: tuple = ("group",)) -> GaugeMetricFamily | CounterMetricFamily:
        family = self.families.get(name)
        if family is None:
            family = self.families[name] = kind(PREFIX + name, documentation, labels=list(labels))
        return family

    def gauge(self, name: str, documentation: str, labels: list, value: float, label_names=("group",)) -> None:
        self._family(GaugeMetricFamily, name, documentation, label_names).add_metric(labels, value)

    def counter(self, name: str, documentation: str, labels: list, value: float, label_names=("group",)) -> None:
        # prometheus_client appends _total to a counter's name.
        self._family(CounterMetricFamily, name, documentation, label_names).add_metric(labels, value)

    def add_group(self, group: str, figures: GroupFigures) -> None:
        labels = [group]
        for figure, (name, documentation) in GROUP_GAUGES.items():
            value = getattr(figures, figure)
            if value is not None:
                self.gauge(name, documentation, labels, value)
        if figures.pids is not None:
            self.gauge("processes", "Processes in the group itself (cgroup.procs), not in the groups below.",
                       labels, figures.pids)
        if figures.failcnt is not None:
            self.counter("memory_failcnt", "Times usage hit the v1 limit (memory.failcnt; reset when written).",
                         labels, figures.failcnt)
        for key, value in (figures.events or {}).items():
            if key in EVENT_HELP:
                self.counter(f"memory_events_{key}", EVENT_HELP[key], labels, value)
        for kind, seconds in pressure_seconds(figures).items():
            if kind in PRESSURE_HELP:
                self.counter(f"memory_pressure_{kind}_seconds", PRESSURE_HELP[kind], labels, seconds)
        stat = exported_stat(figures)
        for key, name, documentation, family_kind in STAT_METRICS:
            value = stat.get(key)
            if value is not None:
                self._family(family_kind, name, documentation).add_metric(labels, value)


@dataclass(frozen=True)
class Selection:
    """Which of the groups walked a scrape exports, for hosts with thousands:
    those at most DEPTH levels below where the walk starts (the root, or each
    group named; None: every level), whose name (under the root) matches one
    of the INCLUDE globs if any are given, and none of the EXCLUDE globs.  A
    glob's `*` matches `/` too: `user.slice*` is user.slice and all below it."""

    depth: int | None = None
    include: tuple = ()
    exclude: tuple = ()

    @property
    def walks(self) -> bool:
        """True when a depth is given: the groups below a named group are walked."""
        return self.depth is not None

    def keeps(self, name: str, starts: list[str]) -> bool:
        """NAME is exported, the walk having started at the groups STARTS ('' the root)."""
        if self.depth is not None and _levels_below(name, starts) > self.depth:
            return False
        if self.include and not any(fnmatch.fnmatchcase(name, glob) for glob in self.include):
            return False
        return not any(fnmatch.fnmatchcase(name, glob) for glob in self.exclude)


def _levels_below(name: str, starts: list[str]) -> int:
    """How far NAME is below the nearest of STARTS (the root's children: 1)."""
    def depth(group: str) -> int:
        return group.count("/") + 1 if group else 0

    return min(depth(name) - depth(start) for start in starts
               if not start or name == start or name.startswith(start + "/"))


class GroupCollector:
    """Collects the figures of the groups NAMES (with RECURSIVE, and those
    below), or of every group under the backend's root, as far as SELECTION
    keeps them; and the counters of a memcgctl daemon on that root, from
    JOURNAL (a Journal)."""

    def __init__(self, backend: Backend, names: tuple = (), recursive: bool = False, journal=None,
                 selection: Selection = Selection()):
        self.backend = backend
        self.names = tuple(names)
        self.recursive = recursive or selection.walks
        self.journal = journal
        self.selection = selection
        # Every scrape walks the groups and reads them all again.
        backend.fs.keep_files_open()

    def describe(self) -> list:
        return []  # the metrics depend on the groups present at each scrape

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        families = GroupFamilies()
        groups, errors = self._collect_groups(families)
        errors += self._collect_daemon(families)
        yield from families.families.values()
        yield GaugeMetricFamily(PREFIX + "scrape_groups", "Groups read by this scrape.", value=groups)
        yield GaugeMetricFamily(PREFIX + "scrape_errors",
                                "Groups (or the daemon's counters) that could not be read in this scrape.",
                                value=errors)
        yield GaugeMetricFamily(PREFIX + "scrape_duration_seconds",
                                "Time this scrape took, from reading the first group to this sample (the "
                                "exposition of the groups' metrics included).", value=time.perf_counter() - started)

    def _collect_groups(self, families: GroupFamilies) -> tuple[int, int]:
        """Add each group's figures; (groups read, groups that failed).  A
        group removed meanwhile is left out; one that fails otherwise (a
        file it may not read) is counted, and the scrape goes on."""
        try:
            groups = self._selected_groups()
        except NotFound:  # a group named is gone: so are the files held of its children
            for name in self.names:
                self.backend.fs.let_go_of(self.backend.group(name, must_exist=False))
            return 0, 1
        except MemcgError:
            return 0, 1
        read = errors = 0
        for group in groups:
            try:
                families.add_group(printable(group.label),
                                    self.backend.read_figures(group, EXPORT_PARTS, READ_STAT_KEYS))
                read += 1
            except NotFound:
                continue  # removed meanwhile (containers come and go)
            except MemcgError:
                errors += 1
        return read, errors

    def _selected_groups(self) -> list:
        groups = select_groups(self.backend, self.names, self.recursive)
        starts = [self.backend.group(name).name for name in self.names] or [""]
        return [group for group in groups if self.selection.keeps(group.name, starts)]

    def _collect_daemon(self, families: GroupFamilies) -> int:
        """Add the daemon's counters, if a daemon runs; 1 if its file cannot
        be read or trusted.  Then memcgctl_daemon_up is left out rather than
        0: whether a daemon runs is not known (an exporter that is not root
        cannot read root's journal directory; see the man page)."""
        if self.journal is None:
            return 0
        try:
            counters = read_daemon_counters(self.journal, self.backend.fs.root, self.backend.fs.root_identity())
        except (UnreadableCounters, MemcgError):
            return 1
        families.gauge("daemon_up", "1 if a memcgctl daemon runs on this root and its counters were read.", [],
                       0 if counters is None else 1, ())
        if counters is None:
            return 0
        families.gauge("daemon_start_time_seconds", "When the memcgctl daemon started (unix time).", [],
                       counters.started, ())
        now = time.time()
        for row in counters.rows:
            for key in COUNTER_KEYS:
                families.counter(f"daemon_{key}", DAEMON_HELP[key], [printable(row["group"]), row["policy"]], row[key],
                                 ("group", "policy"))
            if "working_set_bytes" in row:
                labels = [printable(row["group"]), row["policy"]]
                families.gauge("daemon_working_set_bytes", WORKING_SET_HELP, labels, row["working_set_bytes"],
                               ("group", "policy"))
                families.gauge("daemon_working_set_age_seconds", "Seconds since the daemon last changed its "
                               "working-set estimate of the group.", labels,
                               max(0.0, now - row["working_set_updated"]), ("group", "policy"))
        return 0
