"""A group's figures: the one record stat, top, export and the daemon share.

A backend fills it (Backend.read_figures) with only the PARTS a caller asks
for, from one directory fd of the group; each backend knows which of its
files hold a part and how its kernel spells "unlimited".  What a part that
was not asked for holds is None, as is an unlimited limit, a figure this
cgroup version does not have, and a file this kernel or fake tree lacks.

The kernel's text is parsed here, once, by one parser per format: a bad
value (a fake tree's garbage, a number past Python's int digit limit) is a
MemcgError naming the file, never a ValueError.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ..errors import MemcgError

if TYPE_CHECKING:
    from .psi import MemoryPressure

LIMITS = ("limit", "soft_limit", "high", "low", "min", "swap_limit")


class GroupFigures(NamedTuple):
    """One group read once; sizes in bytes, None for unlimited, not
    applicable, absent or not asked for (PARTS says what was asked).

    The figures `stat --json` shows are its stable keys (to_json)."""

    group: str  # the name under the root, "/" for the root
    path: str
    cgroup_version: int
    parts: frozenset
    usage: int | None = None  # v1 memory.usage_in_bytes, v2 memory.current
    limit: int | None = None  # the hard limit: v1 memory.limit_in_bytes, v2 memory.max
    soft_limit: int | None = None  # v1
    high: int | None = None  # v2
    low: int | None = None  # v2
    min: int | None = None  # v2
    swap_limit: int | None = None  # swap alone (v1: memsw minus limit)
    peak: int | None = None
    failcnt: int | None = None  # v1: times usage hit the limit
    swap: int | None = None  # swap in use: v1 memory.stat total_swap, v2 memory.swap.current
    pids: int | None = None  # processes in the group itself (cgroup.procs)
    stat: dict | None = None  # memory.stat {key: int}, as the kernel names them
    events: dict | None = None  # v2 memory.events; v1 {"oom_kill": n} from memory.oom_control (4.13+)
    pressure: MemoryPressure | None = None  # v2 memory.pressure
    zswap: int | None = None  # v2 memory.zswap.current: compressed memory in zswap
    zswap_writeback: bool | None = None  # v2 memory.zswap.writeback (6.8+): written on to swap when full

    def to_json(self) -> dict:
        """The keys of `memcgctl stat --json` (counters copied, not shared)."""
        return {"group": self.group, "path": self.path, "cgroup_version": self.cgroup_version,
                "usage": self.usage, **{name: getattr(self, name) for name in LIMITS}, "peak": self.peak,
                "failcnt": self.failcnt, "events": None if self.events is None else dict(self.events),
                "stat": {} if self.stat is None else dict(self.stat), "pids": self.pids}


# The parts of a record a caller may ask for: every figure of it (a new
# figure is a new part; a backend says which of its files hold it).
PARTS = frozenset(GroupFigures._fields[GroupFigures._fields.index("parts") + 1:])


def parse_flat_keyed(text: str, directory: Path, name: str, keys: frozenset | None = None) -> dict:
    """A flat-keyed file ("key value" lines: memory.stat, memory.events,
    memory.oom_control) as {key: int}, only KEYS if given (the others are
    not looked at); MemcgError naming the file for a line that is not one.
    Split in one go when every line is one pair (a frame of `top` parses a
    thousand memory.stat files), line by line otherwise."""
    words = text.split()
    names, values = words[::2], words[1::2]
    # The kernel's counters are unsigned: a "-" sends the text to the
    # line-by-line check, which names it.
    if len(names) == len(values) == text.count("\n") + (not text.endswith("\n")) and "-" not in text:
        try:
            if keys is None:
                return dict(zip(names, map(int, values), strict=True))
            return {key: int(value) for key, value in zip(names, values, strict=True) if key in keys}
        except ValueError:
            pass  # the line at fault is named below
    counters = {}
    for line in text.splitlines():
        pair = line.split()
        if not pair:
            continue
        if keys is not None and pair[0] not in keys:
            continue
        try:
            if len(pair) != 2 or int(pair[1]) < 0:
                raise ValueError
            counters[pair[0]] = int(pair[1])
        except ValueError:  # not a number, negative, or past Python's 4,300-digit limit
            raise MemcgError(f"read {name}", f"expected 'key number' lines, found '{line.strip()[:40]}' "
                             "(a number is 0 or more)", str(directory / name)) from None
    return counters
