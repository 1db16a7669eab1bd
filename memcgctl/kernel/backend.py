"""What every cgroup version offers, in bytes, with None for unlimited.

v1.py and v2.py implement this interface over a CgroupFS; everything above
them (operations, commands) is written once for both versions.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ..safety.deadline import NEVER, Deadline
from .fs import Action, CgroupFS, Group, MakeDir, Write

# The limits a user can set, by the names `stat --json` uses.  Which of them a
# version has is Backend.limit_names.
LIMIT_NAMES = ("limit", "soft_limit", "high", "low", "min", "swap_limit")


class GroupStat(NamedTuple):
    """One group's figures; sizes in bytes, None for unlimited or not applicable.

    The field names are the stable keys of `memcgctl stat --json`.
    """

    group: str
    path: str
    cgroup_version: int
    usage: int
    limit: int | None
    soft_limit: int | None
    high: int | None
    low: int | None
    min: int | None
    swap_limit: int | None
    peak: int | None
    failcnt: int | None
    events: dict | None
    stat: dict
    pids: int

    def to_json(self) -> dict:
        figures = self._asdict()  # the counters copied, not shared, as asdict() did
        figures["stat"] = dict(self.stat)
        if self.events is not None:
            figures["events"] = dict(self.events)
        return figures


class Backend:
    """The interface of one cgroup version over one cgroup root."""

    version: int
    # A directory is a group when it holds this file.
    marker: str
    limit_names: tuple
    # Whether setting the hard limit below usage makes the kernel OOM-kill.
    limit_below_usage_kills: bool

    def __init__(self, fs: CgroupFS, journal=None):
        self.fs = fs
        # The Journal that makes temporary changes crash-safe; None: none.
        self.journal = journal
        # Restores of changes a dead memcgctl left behind, done by this one.
        self.recovered = []

    # --- groups ---------------------------------------------------------------

    def group(self, name: str, must_exist: bool = True) -> Group:
        """The validated group NAME; NotFound (66) if MUST_EXIST and it does not."""
        group = self.fs.group(name)
        if must_exist:
            self.fs.require_group(group, self.marker)
        return group

    def is_group(self, group: Group) -> bool:
        return (group.path / self.marker).is_file()

    def plan_create(self, group: Group) -> list[Action]:
        return [MakeDir(group.path, self.fake_group_files())]

    def process_ids(self, group: Group) -> list[int]:
        text = self.fs.read_text(group.path / "cgroup.procs")
        return [int(line) for line in text.split()]

    def attach_action(self, group: Group, pid: int, threads: bool = False) -> Write:
        raise NotImplementedError

    # --- limits ---------------------------------------------------------------

    def read_usage(self, group: Group) -> int:
        raise NotImplementedError

    def read_limits(self, group: Group) -> dict:
        """{name: bytes or None} for each of self.limit_names."""
        raise NotImplementedError

    def read_hard_limit(self, group: Group) -> int | None:
        """The hard limit in bytes (v1 memory.limit_in_bytes, v2 memory.max),
        None for unlimited: one file, for readers that need nothing else."""
        return self.read_limits(group)["limit"]

    def read_protection(self, group: Group) -> int:
        """Bytes the kernel protects from reclaim: v2 max(memory.min,
        memory.low); v1 has no protection (0)."""
        return 0

    def plan_limits(self, group: Group, changes: dict, current: dict | None = None) -> list[Write]:
        """The writes that set CHANGES ({name: bytes or None}).

        CURRENT is the group's limits as read_limits() gives them; None reads
        them (pass unlimited ones for a group that does not exist yet).
        """
        raise NotImplementedError

    def read_oom_kills(self, group: Group) -> int:
        """How many processes the kernel OOM-killed in GROUP so far."""
        raise NotImplementedError

    def owner_warning(self, group: Group) -> str | None:
        """Why a change to GROUP may not last (someone else manages it), or None."""
        return None

    def unlimited_limits(self) -> dict:
        return dict.fromkeys(self.limit_names)

    # --- reclaim --------------------------------------------------------------

    def shrink_to(self, group: Group, target: int, deadline: Deadline = NEVER) -> int:
        """Reclaim until usage is at most TARGET bytes; return the usage reached.

        Raises NoProgress when the kernel cannot get there, DeadlinePassed
        when DEADLINE passes first.  Leaves the group's limits as they were,
        also when interrupted.
        """
        raise NotImplementedError

    def plan_shrink(self, group: Group, target: int) -> list[Write]:
        """The writes a shrink to TARGET bytes starts with (for a dry run)."""
        raise NotImplementedError

    def empty(self, group: Group) -> int:
        """Reclaim all the group can give up, never killing; return usage left."""
        raise NotImplementedError

    def plan_empty(self, group: Group) -> list[Write]:
        raise NotImplementedError

    # --- figures --------------------------------------------------------------

    def read_stat(self, group: Group) -> GroupStat:
        raise NotImplementedError

    def read_counters(self, path: Path) -> dict:
        """A flat-keyed file such as memory.stat as {key: int}."""
        counters = {}
        for line in self.fs.read_text(path).splitlines():
            key, _, value = line.partition(" ")
            if value.strip().lstrip("-").isdigit():
                counters[key] = int(value)
        return counters

    # --- fake roots -----------------------------------------------------------

    def fake_root_files(self) -> dict:
        raise NotImplementedError

    def fake_group_files(self) -> dict:
        raise NotImplementedError
