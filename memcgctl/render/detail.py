"""`stat GROUP --detail`: every counter of one group, grouped, humanised, and
said in a few words.  The meanings follow the kernel's cgroup-v1/memory.rst
and cgroup-v2.rst; a counter this table does not know is still shown, under
"other"."""

from __future__ import annotations

from collections.abc import Callable

from ..escape import printable
from ..kernel.figures import GroupFigures
from ..sizes import format_size

MEMORY, CACHE, RECLAIM, FAULTS, EVENTS, LIMITS, OTHER, DAEMON = (
    "memory", "page cache", "reclaim", "faults and huge pages", "events", "limits", "other", "daemon")
SECTIONS = (LIMITS, MEMORY, CACHE, RECLAIM, FAULTS, EVENTS, DAEMON, OTHER)
BYTES, COUNT = "bytes", "count"

# counter -> (section, unit, meaning).  v1 names and v2 names side by side.
COUNTERS = {
    # memory
    "anon": (MEMORY, BYTES, "anonymous memory (heap, stacks), incl. anonymous huge pages"),
    "rss": (MEMORY, BYTES, "anonymous memory and swap cache (not shmem)"),
    "rss_huge": (MEMORY, BYTES, "anonymous transparent huge pages"),
    "anon_thp": (MEMORY, BYTES, "anonymous transparent huge pages"),
    "kernel": (MEMORY, BYTES, "kernel memory in total (stacks, page tables, slab, ...)"),
    "kernel_stack": (MEMORY, BYTES, "kernel stacks of its tasks"),
    "pagetables": (MEMORY, BYTES, "page tables"),
    "sec_pagetables": (MEMORY, BYTES, "secondary page tables (KVM, IOMMU)"),
    "percpu": (MEMORY, BYTES, "per-CPU kernel data"),
    "sock": (MEMORY, BYTES, "network socket buffers"),
    "vmalloc": (MEMORY, BYTES, "vmalloc'd kernel memory"),
    "slab": (MEMORY, BYTES, "kernel slab objects (inodes, dentries, ...)"),
    "slab_reclaimable": (MEMORY, BYTES, "slab the kernel can free under pressure"),
    "slab_unreclaimable": (MEMORY, BYTES, "slab that cannot be freed under pressure"),
    "shmem": (MEMORY, BYTES, "shared memory and tmpfs (swap-backed)"),
    "zswap": (MEMORY, BYTES, "memory used by the zswap compressed cache"),
    "zswapped": (MEMORY, BYTES, "memory compressed into zswap"),
    "swap": (MEMORY, BYTES, "swap in use"),
    "swapcached": (MEMORY, BYTES, "swapped memory also kept in memory"),
    "unevictable": (MEMORY, BYTES, "memory that cannot be reclaimed (mlocked, ...)"),
    "active_anon": (MEMORY, BYTES, "anonymous memory used recently"),
    "inactive_anon": (MEMORY, BYTES, "anonymous memory to reclaim first"),
    "hugetlb": (MEMORY, BYTES, "hugetlbfs pages"),
    # page cache
    "cache": (CACHE, BYTES, "page cache, incl. tmpfs/shmem"),
    "file": (CACHE, BYTES, "page cache, incl. tmpfs/shmem"),
    "mapped_file": (CACHE, BYTES, "page cache mapped into processes"),
    "file_mapped": (CACHE, BYTES, "page cache mapped into processes"),
    "dirty": (CACHE, BYTES, "page cache waiting to be written back"),
    "file_dirty": (CACHE, BYTES, "page cache waiting to be written back"),
    "writeback": (CACHE, BYTES, "page cache being written back now"),
    "file_writeback": (CACHE, BYTES, "page cache being written back now"),
    "file_thp": (CACHE, BYTES, "page cache in transparent huge pages"),
    "shmem_thp": (CACHE, BYTES, "shmem/tmpfs in transparent huge pages"),
    "active_file": (CACHE, BYTES, "page cache used recently"),
    "inactive_file": (CACHE, BYTES, "page cache to reclaim first"),
    # reclaim
    "workingset_refault": (RECLAIM, COUNT, "reclaimed pages needed again (thrashing)"),
    "workingset_refault_anon": (RECLAIM, COUNT, "reclaimed anonymous pages needed again (thrashing)"),
    "workingset_refault_file": (RECLAIM, COUNT, "reclaimed file pages needed again (thrashing)"),
    "workingset_activate": (RECLAIM, COUNT, "refaulted pages activated at once"),
    "workingset_activate_anon": (RECLAIM, COUNT, "refaulted anonymous pages activated at once"),
    "workingset_activate_file": (RECLAIM, COUNT, "refaulted file pages activated at once"),
    "workingset_restore_anon": (RECLAIM, COUNT, "refaulted anonymous pages that were active"),
    "workingset_restore_file": (RECLAIM, COUNT, "refaulted file pages that were active"),
    "workingset_nodereclaim": (RECLAIM, COUNT, "shadow entries reclaimed"),
    "pgscan": (RECLAIM, COUNT, "pages scanned by reclaim"),
    "pgsteal": (RECLAIM, COUNT, "pages reclaimed"),
    "pgscan_kswapd": (RECLAIM, COUNT, "pages scanned by background reclaim (kswapd)"),
    "pgscan_direct": (RECLAIM, COUNT, "pages scanned by direct reclaim (allocations waited)"),
    "pgscan_khugepaged": (RECLAIM, COUNT, "pages scanned by khugepaged"),
    "pgscan_proactive": (RECLAIM, COUNT, "pages scanned by proactive reclaim (memory.reclaim)"),
    "pgsteal_kswapd": (RECLAIM, COUNT, "pages reclaimed in the background (kswapd)"),
    "pgsteal_direct": (RECLAIM, COUNT, "pages reclaimed by direct reclaim"),
    "pgsteal_khugepaged": (RECLAIM, COUNT, "pages reclaimed by khugepaged"),
    "pgsteal_proactive": (RECLAIM, COUNT, "pages reclaimed by proactive reclaim"),
    "pgrefill": (RECLAIM, COUNT, "pages scanned on the active list"),
    "pgactivate": (RECLAIM, COUNT, "pages moved to the active list"),
    "pgdeactivate": (RECLAIM, COUNT, "pages moved to the inactive list"),
    "pglazyfree": (RECLAIM, COUNT, "pages postponed to be freed (MADV_FREE)"),
    "pglazyfreed": (RECLAIM, COUNT, "lazy-free pages reclaimed"),
    "pgdemote_kswapd": (RECLAIM, COUNT, "pages demoted to a slower memory tier by kswapd"),
    "pgdemote_direct": (RECLAIM, COUNT, "pages demoted by direct reclaim"),
    "pgdemote_khugepaged": (RECLAIM, COUNT, "pages demoted by khugepaged"),
    "pgdemote_proactive": (RECLAIM, COUNT, "pages demoted by proactive reclaim"),
    "pgpromote_success": (RECLAIM, COUNT, "pages promoted to a faster memory tier"),
    "pgpgin": (RECLAIM, COUNT, "pages charged to the group (v1)"),
    "pgpgout": (RECLAIM, COUNT, "pages uncharged from the group (v1)"),
    "zswpin": (RECLAIM, COUNT, "pages brought back from zswap"),
    "zswpout": (RECLAIM, COUNT, "pages compressed into zswap"),
    "zswpwb": (RECLAIM, COUNT, "pages written back from zswap to swap"),
    "swpin_zero": (RECLAIM, COUNT, "zero-filled pages swapped in without I/O"),
    "swpout_zero": (RECLAIM, COUNT, "zero-filled pages swapped out without I/O"),
    # faults and huge pages
    "pgfault": (FAULTS, COUNT, "page faults"),
    "pgmajfault": (FAULTS, COUNT, "major page faults (read from disk or swap)"),
    "thp_fault_alloc": (FAULTS, COUNT, "huge pages allocated at a fault"),
    "thp_collapse_alloc": (FAULTS, COUNT, "huge pages made by khugepaged"),
    "thp_swpout": (FAULTS, COUNT, "huge pages swapped out whole"),
    "thp_swpout_fallback": (FAULTS, COUNT, "huge pages split to be swapped out"),
    # events (v2 memory.events, v1 failcnt and memory.oom_control)
    "low": (EVENTS, COUNT, "reclaimed though under memory.low"),
    "high": (EVENTS, COUNT, "throttled or reclaimed over memory.high"),
    "max": (EVENTS, COUNT, "usage about to pass memory.max"),
    "oom": (EVENTS, COUNT, "reached memory.max and allocations failed"),
    "oom_kill": (EVENTS, COUNT, "processes killed by the OOM killer"),
    "oom_group_kill": (EVENTS, COUNT, "whole groups killed by the OOM killer"),
    "failcnt": (EVENTS, COUNT, "times usage hit memory.limit_in_bytes"),
    # limits
    "hierarchical_memory_limit": (LIMITS, BYTES, "the lowest memory limit above and here"),
    "hierarchical_memsw_limit": (LIMITS, BYTES, "the lowest memory+swap limit above and here"),
}

# v1 memory.stat repeats each counter as total_<name>: this group and all below it.
HIERARCHICAL_PREFIX = "total_"
V1_UNLIMITED_FROM = 2**63 - 2**16


def describe(key: str) -> tuple[str, str, str]:
    """(section, unit, meaning) of the counter KEY; unknown ones under 'other'."""
    base = key.removeprefix(HIERARCHICAL_PREFIX)
    if base in COUNTERS:
        section, unit, meaning = COUNTERS[base]
        return section, unit, (f"{meaning}; this group and below" if base != key else meaning)
    unit = BYTES if key.endswith(("_bytes", "_limit")) else COUNT
    return OTHER, unit, ""


def humanise(value: int, unit: str) -> str:
    if unit == BYTES:
        return "max" if value >= V1_UNLIMITED_FROM else format_size(value)
    return f"{value:,}"


LIMIT_MEANINGS = {
    "limit": "hard limit (v1 memory.limit_in_bytes, v2 memory.max)",
    "soft_limit": "soft limit, reclaimed toward under contention (v1)",
    "high": "throttle point: reclaim and slow down above it",
    "low": "best-effort protection from reclaim",
    "min": "hard protection from reclaim",
    "swap_limit": "swap it may use (swap alone)",
}


# Figures of the record with a row of their own: figure -> (section, name,
# how the value is shown, meaning).  A figure that is None (not on this
# cgroup version or kernel) has no row.
FIGURE_ROWS: dict[str, tuple[str, str, Callable[[int], str], str]] = {
    "usage": (MEMORY, "usage", format_size, "memory charged to this group and below"),
    "peak": (MEMORY, "peak", format_size, "highest usage seen"),
    "pids": (MEMORY, "processes", str, "processes in this group itself"),
    "zswap": (MEMORY, "zswap_current", format_size, "compressed memory in zswap, charged to this group (v2)"),
    "zswap_writeback": (MEMORY, "zswap_writeback", lambda on: "on" if on else "off",
                        "whether zswap writes pages on to swap when full (v2, 6.8+)"),
}
# What `stat --detail` reads of the group: the parts behind its rows.
DETAIL_PARTS = frozenset((*LIMIT_MEANINGS, *FIGURE_ROWS, "stat", "events", "failcnt"))


def detail_lines(stat: GroupFigures, limit_names: tuple, events: dict, working_sets: tuple = (),
                 generations=None) -> list[str]:
    """The report of one group: a title, then each section's counters as
    'name  value  meaning'.  LIMIT_NAMES: the limits of this cgroup version;
    EVENTS: v2 memory.events, or v1's failcnt and oom_kill; WORKING_SETS: a
    running daemon's estimates of the group, (policy, bytes, age in seconds);
    GENERATIONS: the multi-gen LRU's estimate (kernel.lru_gen), or None."""
    rows: dict[str, list[tuple[str, str, str]]] = {section: [] for section in SECTIONS}
    for policy, size, age in working_sets:
        rows[DAEMON].append(("working_set", format_size(size),
                             f"what the workload needs, as the daemon's {policy} policy estimates it "
                             f"(the usage where it refaults or stalls), {age:.0f} s ago"))
    for name in limit_names:
        value = getattr(stat, name)
        rows[LIMITS].append((name, "max" if value is None else format_size(value), LIMIT_MEANINGS[name]))
    for figure, (section, name, shown, meaning) in FIGURE_ROWS.items():
        value = getattr(stat, figure)
        if value is not None:
            rows[section].append((name, shown(value), meaning))
    if generations is not None:
        rows[MEMORY].append(("lru_gen_working_set", format_size(generations.size),
                             f"pages the kernel's multi-gen LRU found used, in generations born in the last "
                             f"{generations.window:.0f} s ({format_size(generations.anon_bytes)} anon, "
                             f"{format_size(generations.file_bytes)} file; the youngest "
                             f"{generations.youngest_age:.0f} s old)"))
    for source in (stat.stat or {}, events):
        for key, value in source.items():
            section, unit, meaning = describe(key)
            rows[section].append((printable(key), humanise(value, unit), meaning))  # a fake tree's keys
    return _layout(f"{printable(stat.group)}  (cgroup v{stat.cgroup_version}, {printable(str(stat.path))})", rows)


def _layout(title: str, rows: dict) -> list[str]:
    every = [row for section in rows.values() for row in section]
    name_width = max(len(name) for name, _, _ in every)
    value_width = max(len(value) for _, value, _ in every)
    lines = [title]
    for section in SECTIONS:
        if not rows[section]:
            continue
        lines += ["", section]
        lines += [f"  {name.ljust(name_width)}  {value.rjust(value_width)}  {meaning}".rstrip()
                  for name, value, meaning in rows[section]]
    return lines
