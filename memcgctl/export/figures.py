"""The figures a scrape exports, read from each group's files in one pass.

`stat` reads more than a scrape needs (cgroup.procs, every memory.stat key);
a scrape of a thousand groups must stay well under Prometheus's timeout, so it
reads only these files, each once, relative to the group's directory
(CgroupFS.read_group_files), and keeps only the memory.stat keys it exports.
"""

from __future__ import annotations

from ..kernel import v1, v2
from ..kernel.backend import Backend
from ..kernel.fs import Group, to_int

PRESSURE = "memory.pressure"  # v2, per group since 5.2 (PSI)

# figure -> kernel file, per cgroup version.  Sizes: bytes; None: unlimited.
V1_SIZES = {"usage": v1.USAGE, "limit": v1.LIMIT, "soft_limit": v1.SOFT_LIMIT, "peak": v1.MAX_USAGE}
V2_SIZES = {"usage": v2.CURRENT, "limit": v2.MAX, "high": v2.HIGH, "low": v2.LOW, "min": v2.MIN,
            "swap_limit": v2.SWAP_MAX, "peak": v2.PEAK}
V1_FILES = (*V1_SIZES.values(), v1.MEMSW_LIMIT, v1.FAILCNT, v1.STAT, v1.OOM_CONTROL, v1.PROCS)
V2_FILES = (*V2_SIZES.values(), v2.EVENTS, v2.STAT, PRESSURE, v2.PROCS)

# The main memory.stat keys, by the kernel's names: v1 (cache, rss, ...) and
# v2 (anon, file, ...) each export those their kernel writes.
# A dozen samples per group keep a scrape of a thousand groups fast; the rest
# of memory.stat is one `memcgctl stat --json` away.
STAT_BYTES = ("cache", "rss", "mapped_file", "anon", "file", "kernel", "sock", "shmem", "file_mapped",
              "dirty", "file_dirty", "swap")
STAT_COUNTS = ("pgmajfault", "workingset_refault_anon", "workingset_refault_file")
EXPORTED_STAT_KEYS = frozenset(STAT_BYTES + STAT_COUNTS)
V1_STAT_KEYS = EXPORTED_STAT_KEYS | {f"total_{key}" for key in EXPORTED_STAT_KEYS}


def read_figures(backend: Backend, group: Group) -> dict:
    """{figure: value} of GROUP: sizes in bytes (None: unlimited or absent),
    failcnt (v1), events (v2 memory.events; v1 the oom_kill of
    memory.oom_control), stat (the exported memory.stat keys), pressure (v2:
    {'some'|'full': seconds stalled}), processes (in the group itself)."""
    if backend.version == 1:
        return _v1_figures(backend, group)
    return _v2_figures(backend, group)


def _v1_figures(backend: Backend, group: Group) -> dict:
    texts = backend.fs.read_group_files(group.path, V1_FILES)
    figures = {name: _v1_size(texts[file], group, file) for name, file in V1_SIZES.items()}
    if figures["usage"] is None and texts[v1.USAGE] is None:
        backend.fs.require_group(group, backend.marker)  # gone, or not a group
    memsw = _v1_size(texts[v1.MEMSW_LIMIT], group, v1.MEMSW_LIMIT)
    # v1 limits memory+swap together; memcgctl speaks of swap alone, like v2.
    figures["swap_limit"] = None if memsw is None or figures["limit"] is None else memsw - figures["limit"]
    figures["failcnt"] = _number(texts[v1.FAILCNT], group, v1.FAILCNT)
    figures["stat"] = hierarchical_v1_stat(parse_counters(texts[v1.STAT], V1_STAT_KEYS))
    # memory.oom_control has an oom_kill line since 4.13 (counted in the group alone on v1).
    figures["events"] = parse_counters(texts[v1.OOM_CONTROL], frozenset({"oom_kill"}))
    figures["processes"] = count_processes(texts[v1.PROCS])
    return figures


def hierarchical_v1_stat(counters: dict) -> dict:
    """v1 memory.stat counts a group alone in `cache`, `rss`, ... and with its
    descendants in `total_cache`, `total_rss`, ...; usage_in_bytes and v2's
    memory.stat count the descendants too, so the total_ figures are the
    ones exported (the plain ones where a fake tree has no total_ lines)."""
    return {key: counters.get(f"total_{key}", counters[key]) for key in EXPORTED_STAT_KEYS if key in counters}


def _v2_figures(backend: Backend, group: Group) -> dict:
    texts = backend.fs.read_group_files(group.path, V2_FILES)
    if texts[v2.CURRENT] is None:
        backend.fs.require_group(group, backend.marker)
    figures = {name: _v2_size(texts[file], group, file) for name, file in V2_SIZES.items()}
    figures["events"] = parse_counters(texts[v2.EVENTS])
    figures["stat"] = parse_counters(texts[v2.STAT], EXPORTED_STAT_KEYS)
    figures["pressure"] = parse_pressure_totals(texts[PRESSURE])
    figures["processes"] = count_processes(texts[v2.PROCS])
    return figures


def count_processes(text: str | None) -> int | None:
    """The PIDs listed in cgroup.procs (the group itself, not the groups below)."""
    return None if text is None else len(text.split())


def _number(text: str | None, group: Group, name: str) -> int | None:
    if text is None:
        return None
    if text.strip().isdigit():
        return int(text)
    return to_int(text, group.path / name)  # the error that names the file (a fake tree's -1 passes)


def _v1_size(text: str | None, group: Group, name: str) -> int | None:
    value = _number(text, group, name)
    # v1 reads back unlimited as PAGE_COUNTER_MAX pages (a fake tree keeps -1).
    return None if value is None or value >= v1.UNLIMITED_FROM or value < 0 else value


def _v2_size(text: str | None, group: Group, name: str) -> int | None:
    return None if text is None or text.strip() == v2.UNLIMITED_TEXT else _number(text, group, name)


def parse_counters(text: str | None, keys: frozenset | None = None) -> dict:
    """A flat-keyed file ('key value' lines) as {key: int}, only KEYS if given."""
    counters = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if (keys is None or key in keys) and value.isdigit():
            counters[key] = int(value)
    return counters


def parse_pressure_totals(text: str | None) -> dict:
    """{'some': seconds, 'full': seconds} from memory.pressure, whose lines end
    in total=<microseconds>; {} without the file."""
    totals = {}
    for line in (text or "").splitlines():
        kind, _, fields = line.partition(" ")
        for field in fields.split():
            name, _, value = field.partition("=")
            if name == "total" and value.isdigit():
                totals[kind] = int(value) / 1e6
    return totals
