"""Reading the figures of many groups, each group's files read once."""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import NotFound
from ..kernel.backend import Backend, GroupStat
from ..kernel.fs import Group


def select_groups(backend: Backend, names: tuple | list, recursive: bool = False) -> list[Group]:
    """The groups NAMES (with RECURSIVE, and all below them); no names: every
    group under the root."""
    if not names:
        return backend.fs.descendants(backend.group("", must_exist=False))
    selected = {}  # by name, in order: a group named twice, or also below another, is listed once
    for name in names:
        group = backend.group(name)
        selected.setdefault(group.name, group)
        if recursive:
            for each in backend.fs.descendants(group):
                selected.setdefault(each.name, each)
    return list(selected.values())


def read_stats(backend: Backend, groups: list[Group], skip_vanished: bool = False) -> list[GroupStat]:
    """GroupStat of each of GROUPS.  With SKIP_VANISHED, a group removed while
    we read (containers come and go) is left out instead of failing."""
    return list(iter_stats(backend, groups, skip_vanished))


def iter_stats(backend: Backend, groups: list[Group], skip_vanished: bool = False) -> Iterator[GroupStat]:
    """read_stats(), one group at a time (for many groups: memory stays flat)."""
    for group in groups:
        try:
            yield backend.read_stat(group)
        except NotFound:
            if not skip_vanished:
                raise
