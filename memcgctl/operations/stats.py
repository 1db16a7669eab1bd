"""Reading the figures of many groups, each group's files read once."""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import MemcgError, NotFound
from ..kernel.backend import Backend
from ..kernel.figures import GroupFigures
from ..kernel.fs import Group

# What `stat` shows of each group (GroupFigures.to_json: its JSON keys).
STAT_PARTS = frozenset(("usage", "limit", "soft_limit", "high", "low", "min", "swap_limit", "peak", "failcnt",
                        "pids", "stat", "events"))


def select_groups(backend: Backend, names: tuple | list, recursive: bool = False) -> list[Group]:
    """The groups NAMES (with RECURSIVE, and all below them); no names: every
    group under the root."""
    if not names:
        return backend.fs.descendants_quickly(backend.group("", must_exist=False))
    selected: dict[str, Group] = {}  # by name, in order: a group named twice, or also below another, is listed once
    for name in names:
        group = backend.group(name)
        selected.setdefault(group.name, group)
        if recursive:
            for each in backend.fs.descendants_quickly(group):
                selected.setdefault(each.name, each)
    return list(selected.values())


# memory.stat keys of what usage is made of, hierarchical like usage: v1's own
# keys (rss, cache) count the group alone, its total_* twins the group and
# everything below it; v2's keys are all hierarchical.  A v1 tree without the
# total_* keys (an old fake tree) falls back to the group's own.
USAGE_PARTS: dict[int, dict[str, tuple[str, ...]]] = {
    1: {"anon": ("total_rss", "rss"), "file": ("total_cache", "cache"), "shmem": ("total_shmem", "shmem")},
    2: {"anon": ("anon",), "file": ("file",), "shmem": ("shmem",)},
}


def usage_breakdown(stat: GroupFigures) -> dict:
    """What STAT's usage is made of, in bytes, as memory.stat shows it:
    anon (anonymous memory), file (page cache, shmem included), shmem (tmpfs
    and shared memory, which only swap can reclaim) and kernel: the rest of
    usage (slab, stacks, page tables, sockets), so that usage = anon + file +
    kernel.  Usage and memory.stat are updated at different moments, so kernel
    is approximate (to a few hundred KiB) and never negative."""
    if stat.usage is None:
        raise ValueError("a usage breakdown needs the figures' usage part")
    parts = {}
    counters = stat.stat or {}
    for part, keys in USAGE_PARTS[stat.cgroup_version].items():
        parts[part] = next((counters[key] for key in keys if key in counters), 0)
    parts["kernel"] = max(0, stat.usage - parts["anon"] - parts["file"])
    return parts


def read_stats(backend: Backend, groups: list[Group], skip_vanished: bool = False,
               unreadable: list[tuple[str, MemcgError]] | None = None) -> list[GroupFigures]:
    """The figures `stat` shows (STAT_PARTS) of each of GROUPS.  With SKIP_VANISHED, a group removed while
    we read (containers come and go) is left out instead of failing.  Given UNREADABLE, a group that
    cannot be read (a file it may not read, bad text) is left out too, and (its label, the error)
    appended there: one such group does not hide the others."""
    return list(iter_stats(backend, groups, skip_vanished, unreadable))


def iter_stats(backend: Backend, groups: list[Group], skip_vanished: bool = False,
               unreadable: list[tuple[str, MemcgError]] | None = None) -> Iterator[GroupFigures]:
    """read_stats(), one group at a time (for many groups: memory stays flat)."""
    for group in groups:
        try:
            yield backend.read_figures(group, STAT_PARTS)
        except NotFound as error:
            if not skip_vanished:
                if unreadable is None:
                    raise
                unreadable.append((group.label, error))
        except MemcgError as error:
            if unreadable is None:
                raise
            unreadable.append((group.label, error))
