"""What a scrape exports of each group, from the kernel layer's record.

A scrape of a thousand groups must stay well under Prometheus's timeout, so
it asks the backend only for the parts behind its metrics (collector.py,
EXPORT_PARTS) and exports only a dozen memory.stat keys.
"""

from __future__ import annotations

from ..kernel.figures import GroupFigures

# The main memory.stat keys, by the kernel's names: v1 (cache, rss, ...) and
# v2 (anon, file, ...) each export those their kernel writes.
# A dozen samples per group keep a scrape of a thousand groups fast; the rest
# of memory.stat is one `memcgctl stat --json` away.
STAT_BYTES = ("cache", "rss", "mapped_file", "anon", "file", "kernel", "sock", "shmem", "file_mapped",
              "dirty", "file_dirty", "swap")
STAT_COUNTS = ("pgmajfault", "workingset_refault_anon", "workingset_refault_file")
EXPORTED_STAT_KEYS = STAT_BYTES + STAT_COUNTS
# What is parsed of memory.stat: those keys and (v1) their total_ twins.
READ_STAT_KEYS = frozenset(EXPORTED_STAT_KEYS + tuple(f"total_{key}" for key in EXPORTED_STAT_KEYS))


def exported_stat(figures: GroupFigures) -> dict:
    """The exported memory.stat keys of FIGURES, counted like usage: v1
    memory.stat counts a group alone in `cache`, `rss`, ... and with its
    descendants in `total_cache`, `total_rss`, ...; usage_in_bytes and v2's
    memory.stat count the descendants too, so the total_ figures are the
    ones exported (the plain ones where a fake tree has no total_ lines)."""
    stat = figures.stat or {}
    if figures.cgroup_version == 1:
        return {key: stat.get(f"total_{key}", stat[key]) for key in EXPORTED_STAT_KEYS if key in stat}
    return {key: stat[key] for key in EXPORTED_STAT_KEYS if key in stat}


def pressure_seconds(figures: GroupFigures) -> dict:
    """{'some': seconds, 'full': seconds} stalled on memory since the group
    was made (v2 memory.pressure totals); {} without PSI."""
    pressure = figures.pressure
    if pressure is None:
        return {}
    lines = {"some": pressure.some, "full": pressure.full}
    return {kind: line.total_us / 1e6 for kind, line in lines.items() if line is not None}
