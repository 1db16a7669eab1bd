"""What every cgroup version offers, in bytes, with None for unlimited.

v1.py and v2.py implement this interface over a CgroupFS; everything above
them (operations, commands) is written once for both versions.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ..errors import NoProgress
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


class Reclaim(NamedTuple):
    """A step of a plan whose outcome the kernel decides: bring GROUP's usage to
    TARGET bytes or as near as the kernel can (Backend.shrink_to carries it out).

    WRITES are the writes it makes, as the backend's plan_shrink() computes them
    (shrink_to computes them again, from the same files: on v1 under the same
    lock, so that the limit it restores is the one shown here);
    COMMENTS ({index: text}) say, after the write of that index, what depends
    on the kernel's answer.  A dry run prints both; BEST_EFFORT: the kernel
    reclaiming less is not a failure (empty).  SWAPPINESS (0-200, v2 6.11+):
    how the kernel weighs anonymous against file pages in this reclaim, None
    for its own setting.
    """

    group: Group
    target: int
    writes: tuple
    comments: dict
    best_effort: bool = False
    swappiness: int | None = None

    def shell(self) -> str:
        lines = []
        for index, write in enumerate(self.writes):
            lines.append(write.shell())
            if index in self.comments:
                lines.append(f"# {self.comments[index]}")
        return "\n".join(lines)


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
        return self.fs.is_file(group.path / self.marker)

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

    def shrink_to(self, group: Group, target: int, deadline: Deadline = NEVER, swappiness: int | None = None) -> int:
        """Reclaim until usage is at most TARGET bytes; return the usage reached.

        Raises NoProgress when the kernel cannot get there, DeadlinePassed
        when DEADLINE passes first.  Leaves the group's limits as they were,
        also when interrupted.  SWAPPINESS: see Reclaim (only v2 6.11+ has
        a per-reclaim one; elsewhere it is left out).
        """
        raise NotImplementedError

    def plan_shrink(self, group: Group, target: int, swappiness: int | None = None) -> list[Write]:
        """The writes of a shrink to TARGET bytes, as shrink_to() makes them."""
        raise NotImplementedError

    def shrink_step(self, group: Group, target: int, best_effort: bool = False,
                    swappiness: int | None = None) -> Reclaim:
        """The plan step that shrinks GROUP to TARGET bytes (see Reclaim)."""
        raise NotImplementedError

    def plan_empty(self, group: Group) -> list:
        """The steps that reclaim all GROUP can give up, never killing."""
        raise NotImplementedError

    def empty(self, group: Group, deadline: Deadline = NEVER) -> int:
        """Carry out plan_empty(); return the usage left, in bytes.  Raises
        DeadlinePassed when DEADLINE passes first."""
        self.carry_out(self.plan_empty(group), deadline)
        return self.read_usage(group)

    def carry_out(self, steps: list, deadline: Deadline = NEVER) -> None:
        """Carry out a plan: actions through apply_within, Reclaim steps
        through shrink_to (NoProgress raised unless the step is best effort),
        both bounded by DEADLINE (DeadlinePassed)."""
        for step in steps:
            if isinstance(step, Reclaim):
                try:
                    self.shrink_to(step.group, step.target, deadline, step.swappiness)
                except NoProgress:
                    if not step.best_effort:
                        raise
            else:
                self.apply_within([step], deadline)

    def apply_within(self, actions: list[Action], deadline: Deadline = NEVER) -> None:
        """Make ACTIONS in order.  A backend whose kernel works inside a write
        (v1: a lowered limit, force_empty) stops it at DEADLINE (DeadlinePassed,
        the kernel leaving that file as it was); here nothing waits."""
        for action in actions:
            self.fs.apply(action)

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
