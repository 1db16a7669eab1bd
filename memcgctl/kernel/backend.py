"""What every cgroup version offers, in bytes, with None for unlimited.

v1.py and v2.py implement this interface over a CgroupFS; everything above
them (operations, commands) is written once for both versions.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import NamedTuple, Protocol

from ..errors import MemcgError, NoProgress, NotAvailable, NotFound, UsageError
from ..safety.deadline import NEVER, Deadline
from .actions import Action, MakeDir, Write
from .figures import LIMITS, PARTS, GroupFigures, parse_flat_keyed
from .fs import CgroupFS, Group, to_int

# The limits a user can set, by the names `stat --json` uses.  Which of them a
# version has is Backend.limit_names.
LIMIT_NAMES = LIMITS

USAGE = frozenset({"usage"})
HARD_LIMIT = frozenset({"limit"})
PROTECTION = frozenset({"low", "min"})
EVENTS = frozenset({"events"})


def number(texts: dict, directory: Path, name: str) -> int | None:
    """The number the file NAME of TEXTS holds; None if it is absent."""
    text = texts[name]
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:  # bad text (a fake tree's "-5" too): the MemcgError that names the file
        return to_int(text, directory / name)
    return value


def counters(texts: dict, directory: Path, name: str, keys: frozenset | None = None) -> dict | None:
    """The flat-keyed file NAME of TEXTS as {key: int} (only KEYS if given);
    None if it is absent."""
    text = texts[name]
    return None if text is None else parse_flat_keyed(text, directory, name, keys)


class Reclaim(NamedTuple):
    """A step of a plan whose outcome the kernel decides: bring GROUP's usage to
    TARGET bytes or as near as the kernel can (Backend.reclaim carries it out).

    WRITES are the writes it makes, as the backend's plan_shrink() computes them
    and Backend.reclaim() carries them out, never computed again (on v1 the
    limit it restores is the one read for the plan, under the group's lock);
    COMMENTS ({index: text}) say, after the write of that index, what depends
    on the kernel's answer.  A dry run prints both; BEST_EFFORT: the kernel
    reclaiming less is not a failure (empty).  USAGE: the bytes the plan was
    made from (None: not known), where a reclaim loop starts.  SWAPPINESS
    (0-200, v2 6.11+): how the kernel weighs anonymous against file pages in
    this reclaim, None for its own setting.
    """

    group: Group
    target: int
    writes: tuple
    comments: dict
    best_effort: bool = False
    usage: int | None = None
    swappiness: int | None = None

    def shell(self) -> str:
        lines = []
        for index, write in enumerate(self.writes):
            lines.append(write.shell())
            if index in self.comments:
                lines.append(f"# {self.comments[index]}")
        return "\n".join(lines)


class RestoreOutcome(enum.Enum):
    """What a restore of a lowered limit found in the file (Backend.compare_restore)."""

    RESTORE = "restore"  # it holds what memcgctl wrote: the value goes back
    ALREADY_BACK = "already-back"  # it holds the value to restore (the lowering never took): nothing to write
    CHANGED_SINCE = "changed-since"  # someone else wrote it since: left as they set it


class Restore(NamedTuple):
    """The undo of a lowered limit, compared before it is written: VALUE goes
    back into PATH only while the file holds one of LOWERED (the values
    memcgctl wrote there); FOUND is what it held, as the kernel reads it."""

    outcome: RestoreOutcome
    path: Path
    value: str
    lowered: tuple
    found: str


class RestoreJournal(Protocol):
    """What a backend asks of safety.journal.Journal (a layer above, so
    named here by what it does): note a restore durably, then forget it."""

    def record(self, group_path: Path, restore_path: Path, value: str, lowered: tuple,
               identity: dict | None = None) -> None: ...

    def clear(self, group_path: Path) -> None: ...


class Backend:
    """The interface of one cgroup version over one cgroup root."""

    version: int
    # A directory is a group when it holds this file.
    marker: str
    limit_names: tuple
    # Whether setting the hard limit below usage makes the kernel OOM-kill.
    limit_below_usage_kills: bool
    # The files a shrink lowers and a journal record may restore (v1's limits).
    restorable_files: tuple = ()
    # The file this version reads usage from (a group without it is gone).
    usage_file: str
    # part of a GroupFigures -> the files of this version it is decoded from;
    # a part this version does not have is left out (its figure is None).
    part_files: dict

    def __init__(self, fs: CgroupFS, journal: RestoreJournal | None = None):
        self.fs = fs
        # The Journal that makes temporary changes crash-safe; None: none.
        self.journal = journal
        # What became of the records a dead memcgctl left behind, as
        # operations.recovery.Recovered values (restored, or dropped and why).
        self.recovered: list[tuple] = []
        # Restores this memcgctl left undone because someone else wrote the
        # limit while it was lowered (Restore values, CHANGED_SINCE).
        self.kept: list[Restore] = []
        # parts -> the files to read for them: the same few sets, asked for
        # at every frame of `top` and every scrape.
        self._file_lists: dict = {}

    # --- groups ---------------------------------------------------------------

    def group(self, name: str, must_exist: bool = True) -> Group:
        """The validated group NAME; NotFound (66) if MUST_EXIST and it does not.
        An existing group may also be named as tables spell it (escape.printable):
        batch/a\\nb for a name holding a newline, which no command line can hold."""
        listed = self._group_listed_as(name) if must_exist and "\\" in name else None
        try:
            group = self.fs.group(name)
            if must_exist:
                self.fs.require_group(group, self.marker)
        except (NotFound, UsageError):
            if listed is None:
                raise
            return listed
        if listed is not None:  # a\nb: a name with a backslash, and the one tables list so for its newline
            raise UsageError(f"group {name}", "names two groups: one whose name holds a backslash, and one "
                             "that tables list this way for a control character in its name; type the first "
                             "as tables list it, each backslash doubled")
        return group

    def _group_listed_as(self, shown: str) -> Group | None:
        """The existing group whose name escape.printable() spells SHOWN, if
        that is another name than SHOWN itself."""
        from ..escape import unescape

        name = unescape(shown)
        if name is None or name == shown:
            return None
        try:
            group = self.fs.group(name, existing=True)
            self.fs.require_group(group, self.marker)
        except MemcgError:
            return None
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

    # --- figures --------------------------------------------------------------

    def read_figures(self, group: Group, parts: frozenset = PARTS, stat_keys: frozenset | None = None
                     ) -> GroupFigures:
        """The PARTS (names of GroupFigures fields: "usage", "limit", "stat",
        ...) of GROUP, its files read once each through one fd of its
        directory; of memory.stat only STAT_KEYS if given (a frame of `top`
        shows five of its 40 to 90 keys).  NotFound if the group is gone
        (also while it is read); a MemcgError naming the file for text that
        is not what the kernel writes."""
        if not isinstance(parts, frozenset):
            parts = frozenset(parts)
        names = self._file_lists.get(parts)
        if names is None:
            names = self._files_of(parts)
        texts = self.fs.read_group_files(group.path, names)
        for name in (self.marker, self.usage_file):
            if name in texts and texts[name] is None:  # never read as "unlimited" or 0
                self.fs.require_group(group, self.marker)  # NotFound: removed meanwhile, or not a group
                raise NotAvailable(f"read {name}", "not available on this root", str(group.path / name))
        return GroupFigures(group.label, str(group.path), self.version, parts,
                            **self.decode(texts, group.path, parts, stat_keys))

    def _files_of(self, parts: frozenset) -> tuple:
        unknown = set(parts) - PARTS
        if unknown:
            raise ValueError(f"not parts of GroupFigures: {sorted(unknown)}")
        names = tuple(dict.fromkeys(name for part in sorted(parts) for name in self.part_files.get(part, ())))
        self._file_lists[parts] = names
        return names

    def decode(self, texts: dict, directory: Path, parts: frozenset, stat_keys: frozenset | None = None) -> dict:
        """{part: value} of PARTS from TEXTS ({file name: text or None}) of
        the group at DIRECTORY: this version's files, in bytes, None for
        unlimited or absent; memory.stat's STAT_KEYS only, if given."""
        raise NotImplementedError

    # --- limits ---------------------------------------------------------------

    def read_usage(self, group: Group) -> int:
        usage = self.read_figures(group, USAGE).usage
        if usage is None:  # not met: read_figures raises when the usage file is absent
            raise NotAvailable(f"read {self.usage_file}", "not available on this root", str(group.path))
        return usage

    def read_limits(self, group: Group) -> dict:
        """{name: bytes or None} for each of self.limit_names."""
        figures = self.read_figures(group, frozenset(self.limit_names))
        return {name: getattr(figures, name) for name in self.limit_names}

    def read_hard_limit(self, group: Group) -> int | None:
        """The hard limit in bytes (v1 memory.limit_in_bytes, v2 memory.max),
        None for unlimited: one file, for readers that need nothing else."""
        return self.read_figures(group, HARD_LIMIT).limit

    def read_protection(self, group: Group) -> int:
        """Bytes the kernel protects from reclaim: v2 max(memory.min,
        memory.low); v1 has no protection (0)."""
        figures = self.read_figures(group, PROTECTION)
        return max(figures.low or 0, figures.min or 0)

    def plan_limits(self, group: Group, changes: dict, current: dict | None = None) -> list[Write]:
        """The writes that set CHANGES ({name: bytes or None}).

        CURRENT is the group's limits as read_limits() gives them; None reads
        them (pass unlimited ones for a group that does not exist yet).
        """
        raise NotImplementedError

    def read_oom_kills(self, group: Group) -> int:
        """How many processes the kernel OOM-killed in GROUP so far."""
        return (self.read_figures(group, EVENTS).events or {}).get("oom_kill", 0)

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
        return self.reclaim(self.shrink_step(group, target, swappiness=swappiness), deadline)

    def reclaim(self, step: Reclaim, deadline: Deadline = NEVER) -> int:
        """Carry out STEP's writes as planned (shrink_to() says what comes of
        them); return the usage reached, in bytes."""
        raise NotImplementedError

    def plan_shrink(self, group: Group, target: int, usage: int | None = None,
                    swappiness: int | None = None) -> list[Write]:
        """The writes of a shrink to TARGET bytes, as reclaim() makes them;
        USAGE: the group's usage in bytes if the caller has just read it;
        SWAPPINESS: see Reclaim."""
        raise NotImplementedError

    def compare_restore(self, restore: Write, lowered: tuple) -> Restore:
        """What RESTORE would find: whether its file still holds one of
        LOWERED (what memcgctl wrote), already holds the value to restore,
        or was changed by someone else since.  Reads; writes nothing."""
        raise NotImplementedError

    def restore_unless_changed(self, restore: Write, lowered: tuple) -> Restore:
        """Make RESTORE only while its file holds one of LOWERED; what was found.
        The kernel has no compare-and-swap for a limit: a write that lands
        between the read and this one is overwritten (a window of microseconds,
        under the group's lock, so never another memcgctl's)."""
        found = self.compare_restore(restore, lowered)
        if found.outcome is RestoreOutcome.RESTORE:
            self.fs.apply(restore)
        return found

    def shrink_step(self, group: Group, target: int, best_effort: bool = False,
                    usage: int | None = None, swappiness: int | None = None) -> Reclaim:
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
        through reclaim (NoProgress raised unless the step is best effort),
        both bounded by DEADLINE (DeadlinePassed)."""
        for step in steps:
            if isinstance(step, Reclaim):
                try:
                    self.reclaim(step, deadline)
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

    # --- fake roots -----------------------------------------------------------

    def fake_root_files(self) -> dict:
        raise NotImplementedError

    def fake_group_files(self) -> dict:
        raise NotImplementedError
