"""Output for a person: tables, trees and one-line reports.

rich and humanfriendly are imported here (and by sizes.format_size) only when
something is rendered; commands that only talk to the kernel never load them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from ..escape import printable
from ..kernel.figures import GroupFigures
from ..operations.shrink import ShrinkResult, StopReason
from ..operations.stats import usage_breakdown
from ..sizes import format_size
from .columns import aligned_lines

# (column, part of usage as stats.usage_breakdown names it).  Hierarchical on
# both versions, like USAGE: USAGE = ANON + FILE + KERNEL; SHMEM is the part of
# FILE that only swap can reclaim.
USAGE_COLUMNS = (("ANON", "anon"), ("FILE", "file"), ("SHMEM", "shmem"), ("KERNEL", "kernel"))


def _size_cell(value: int | None, unlimited: str = "max") -> str:
    return unlimited if value is None else format_size(value)


def stat_rows(stats: Iterable[GroupFigures], version: int) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of the `stat` table, as text."""
    trouble_column = "FAILCNT" if version == 1 else "OOM_KILL"
    header = ["GROUP", "USAGE", "LIMIT", "PEAK", *(name for name, _ in USAGE_COLUMNS), "PIDS", trouble_column]
    rows = []
    for stat in stats:
        trouble = stat.failcnt if version == 1 else (stat.events or {}).get("oom_kill", 0)
        parts = usage_breakdown(stat)
        rows.append([
            printable(stat.group),
            format_size(stat.usage),
            _size_cell(stat.limit),
            _size_cell(stat.peak, "-"),
            *(format_size(parts[part]) for _, part in USAGE_COLUMNS),
            str(stat.pids),
            str(trouble),
        ])
    return header, rows


def print_table(header: list[str], rows: list[list[str]]) -> None:
    """Aligned columns (the first to the left, the others to the right): plain
    text when piped (for grep, awk); on a terminal the same text through rich,
    with the header in bold.  (rich's Table costs about 1 ms a row.)"""
    lines = aligned_lines(header, rows)
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.text import Text

        console = Console()
        console.print(Text(lines[0], style="bold"), soft_wrap=True)
        if len(lines) > 1:
            console.print(Text("\n".join(lines[1:])), soft_wrap=True)
        return
    for line in lines:
        print(line)


def print_limits(limits: dict) -> None:
    width = max(len(name) for name in limits)
    for name, value in limits.items():
        shown = _size_cell(value)
        # The exact bytes, unless the size already says them ("0 bytes", "512 bytes").
        exact = "" if value is None or shown == f"{value} bytes" else f" ({value} bytes)"
        print(f"{name.ljust(width)}  {shown}{exact}")


def shrink_progress(result: ShrinkResult) -> str:
    """'210.1 MiB -> 48.9 MiB (target 50 MiB) in 0.02 s'"""
    return (f"{format_size(result.before)} -> {format_size(result.after)} "
            f"(target {format_size(result.target)}) in {result.seconds:.2f} s")


ROOT_LABEL = "/"  # how a GroupFigures names the root (Group.label)


def _depth(group: str) -> int:
    """Levels below the root: the root 0, `a` 1, `a/b` 2."""
    return 0 if group == ROOT_LABEL else group.count("/") + 1


def tree_lines(stats: list[GroupFigures]) -> list[str]:
    """One line per group, indented under its parent: name, usage / limit.
    A group whose parent is not shown (left out, unreadable) goes under its
    nearest shown ancestor, named by its path from there (`x/y`)."""
    lines = []
    # Indented relative to the first group: `tree b/j` starts at the left.
    top = min((_depth(stat.group) for stat in stats), default=0)
    depths: dict[str, int] = {}
    for stat in stats:
        ancestor = _nearest_shown_ancestor(stat.group, depths)
        if ancestor is None:
            depth = _depth(stat.group) - top
            name = stat.group if stat.group == ROOT_LABEL else stat.group.rsplit("/", 1)[-1]
        else:
            depth = depths[ancestor] + 1
            name = stat.group if ancestor == ROOT_LABEL else stat.group[len(ancestor) + 1:]
        depths[stat.group] = depth
        pids = f"{stat.pids} pid" if stat.pids == 1 else f"{stat.pids} pids"
        lines.append(f"{'    ' * depth}{printable(name)}  {format_size(stat.usage)} / {_size_cell(stat.limit)}"
                     f"  ({pids})")
    return lines


def _nearest_shown_ancestor(group: str, shown: dict) -> str | None:
    """The closest of GROUP's ancestors in SHOWN (the root included), or None."""
    if group == ROOT_LABEL:
        return None
    parts = group.split("/")
    for end in range(len(parts) - 1, 0, -1):
        if "/".join(parts[:end]) in shown:
            return "/".join(parts[:end])
    return ROOT_LABEL if ROOT_LABEL in shown else None


def stop_reason_text(result: ShrinkResult, timeout: float | None) -> str:
    """Why a shrink stopped short, in words ('timed out after 10 s')."""
    waited = "" if timeout is None else f"{timeout:g} s"
    if result.stopped_because is StopReason.DEADLINE:
        return f"timed out after {waited}"
    if result.stopped_because is StopReason.LOCKED:
        return f"{result.detail} (waited {waited})"
    reason = result.detail or "the kernel reclaimed too little"
    if result.left is None:
        return reason
    return f"{reason}; memory.stat shows what is left: {left_text(result.left)}"


# What each part of usage is, for a person, in the order it is listed when
# equal; `file` is said without its shmem, which is listed on its own.
LEFT_WORDS = {"anon": "anonymous memory", "shmem": "shared memory (tmpfs, shm)", "kernel": "kernel memory",
              "file": "page cache"}


def left_text(left: dict) -> str:
    """'100.2 MiB anonymous memory, 3 MiB kernel memory, ...', largest first,
    parts of 0 bytes left out, from what ShrinkResult.left holds."""
    amounts = {**left, "file": max(0, left["file"] - left["shmem"])}
    listed = sorted((kind for kind in LEFT_WORDS if amounts.get(kind)), key=lambda kind: -amounts[kind])
    if not listed:
        return "nothing memory.stat accounts for"
    return ", ".join(f"{format_size(amounts[kind])} {LEFT_WORDS[kind]}" for kind in listed)
