"""Undoing what a memcgctl that died left behind: the journal's records
(safety/journal.py) replayed, each only into its own group and only while
the limit still holds what that memcgctl wrote.

Every change takes its group's lock through exclusive(), which first
replays the group's record; every command calls recover() for its whole
root, and the daemon does at start and at every rescan.  A record is judged
first (judge(): its root, its group's directory and the boot it was made
in, a limit file, a number); one that may be replayed is then compared and
restored (Backend.restore_unless_changed): a limit someone set since the
shrink is theirs, and the record is dropped with a line that names both
values.  What became of each record is a Recovered value in
backend.recovered, which the command line and the daemon word.
"""

from __future__ import annotations

import contextlib
import enum
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from ..errors import LockHeld, MemcgError, UsageError
from ..kernel.actions import Write
from ..kernel.backend import Backend, Restore, RestoreOutcome
from ..kernel.names import clean_group_name
from ..safety.deadline import NEVER, Deadline
from ..safety.journal import Journal, PendingRestore, current_boot

# The only values a restore writes: a v1 limit in decimal bytes, or -1.
RESTORABLE_VALUE = re.compile(r"(-1|[0-9]{1,19})\Z")


class Verdict(enum.Enum):
    """What may be done with a journal record (judge())."""

    REPLAY = "replay"  # made for this group as it is: compare, then restore
    GONE = "gone"  # its group was deleted since: nothing to restore
    STALE = "stale"  # made for a group, root or boot replaced since: dropped
    # Made by an older memcgctl, which did not note what it wrote: a limit
    # set since cannot be told from its own, so it is dropped, never replayed.
    OLD_RECORD = "old-record"
    REFUSED = "refused"  # planted or foreign: not applied, kept, the command fails


class Judgement(NamedTuple):
    verdict: Verdict
    why: str = ""


class Recovered(NamedTuple):
    """What became of one record: PENDING, its VERDICT (and WHY), and for a
    record that was compared (REPLAY, OLD_RECORD) what its file held."""

    pending: PendingRestore
    verdict: Verdict
    why: str = ""
    restore: Restore | None = None

    @property
    def restored(self) -> bool:
        return self.restore is not None and self.restore.outcome is RestoreOutcome.RESTORE


def journal_of(backend: Backend) -> Journal | None:
    """BACKEND's journal, as recovery reads it: the kernel layer knows it
    only as a RestoreJournal, and open_hierarchy is given a Journal."""
    journal = backend.journal
    if journal is None or isinstance(journal, Journal):
        return journal
    raise TypeError(f"recovery reads a safety.journal.Journal, not a {type(journal).__name__}")


@contextlib.contextmanager
def exclusive(backend: Backend, group_path: Path, deadline: Deadline = NEVER) -> Iterator[None]:
    """Hold the group's lock for a change, after undoing what a dead memcgctl
    left behind in it.  Without a journal (library default), no locking."""
    journal = journal_of(backend)
    if journal is None:
        yield
        return
    with journal.locked(group_path, deadline):
        _restore_pending(backend, journal, group_path, journal.pending(group_path))
        yield


def recover(backend: Backend, strict: bool = True) -> None:
    """Undo every change left behind under BACKEND's root by a memcgctl that
    died, skipping groups a live memcgctl holds; see backend.recovered.
    STRICT: a record that cannot be read or restored raises (after the
    others were done); otherwise it is left for a later memcgctl."""
    journal = journal_of(backend)
    if journal is None:
        return
    failures = []
    for group_path, _ in journal.all_pending(strict):
        if not _is_under(group_path, backend.fs.root):
            continue
        try:
            with journal.locked(group_path, Deadline(0)):
                _restore_pending(backend, journal, group_path, journal.pending(group_path))
        except LockHeld:
            continue  # a live memcgctl holds it and will restore it itself
        except MemcgError as error:
            failures.append(error)
    if strict and journal.unreadable:
        path, why = journal.unreadable[0]
        more = f" (and {len(journal.unreadable) - 1} more)" if len(journal.unreadable) > 1 else ""
        raise MemcgError("recover", f"{why}{more}", str(path))
    if strict and failures:
        raise failures[0]


def plan_recover(backend: Backend) -> list[Write]:
    """The writes recover() would make (for a dry run): a record's restore,
    while its limit holds what the dead memcgctl wrote."""
    journal = journal_of(backend)
    if journal is None:
        return []
    writes = []
    for group_path, pending in journal.all_pending():
        if not _is_under(group_path, backend.fs.root):
            continue
        # A REPLAY verdict means the record notes what it wrote (LOWERED).
        if judge(backend, group_path, pending).verdict is not Verdict.REPLAY or pending.lowered is None:
            continue
        restore = Write(pending.path, pending.value)
        if backend.compare_restore(restore, pending.lowered).outcome is RestoreOutcome.RESTORE:
            writes.append(restore)
    return writes


def _restore_pending(backend: Backend, journal: Journal, group_path: Path, pending: PendingRestore | None) -> None:
    if pending is None:
        return
    judgement = judge(backend, group_path, pending)
    if judgement.verdict is Verdict.REFUSED:
        raise MemcgError("recover", f"the journal record does not match its group ({judgement.why}); it was not "
                         f"applied: remove it once the group is checked (rm {journal._record_path(group_path)})",
                         str(journal.directory))
    restore = None
    if judgement.verdict in (Verdict.REPLAY, Verdict.OLD_RECORD):
        judgement, restore = _compare_and_restore(backend, pending, judgement)
    quiet = judgement.verdict is Verdict.GONE or (restore is not None
                                                    and restore.outcome is RestoreOutcome.ALREADY_BACK)
    if not quiet:
        backend.recovered.append(Recovered(pending, judgement.verdict, judgement.why, restore))
    journal.clear(group_path)


def _compare_and_restore(backend: Backend, pending: PendingRestore,
                         judgement: Judgement) -> tuple[Judgement, Restore | None]:
    """Restore PENDING's limit while it holds what the dead memcgctl wrote
    (an OLD_RECORD, which does not say, is only compared)."""
    fs = backend.fs
    identity = pending.identity
    if identity is None:  # not met: judge() refuses a record without one first
        raise ValueError("a journal record without its group's identity cannot be compared")
    group = fs.group(identity["group"])
    with fs.pinned(group):
        # Checked again through the fd the write goes through: the group
        # may have been swapped since judge() looked.
        if fs.directory_identity(group) != (identity["device"], identity["inode"]):
            return Judgement(Verdict.STALE, "the group was removed and made again"), None
        # Only a REPLAY (a record that notes what it wrote) may be restored.
        lowered = pending.lowered if judgement.verdict is Verdict.REPLAY and pending.lowered is not None else ()
        return judgement, backend.restore_unless_changed(Write(pending.path, pending.value), lowered)


def judge(backend: Backend, group_path: Path, pending: PendingRestore) -> Judgement:
    """May PENDING be replayed, as it is, into GROUP_PATH under BACKEND's root?"""
    identity = pending.identity
    fs = backend.fs
    if identity is None:
        return Judgement(Verdict.REFUSED, "it does not name its root and group directory")
    try:
        clean_group_name(str(identity["group"]))
    except UsageError:
        return Judgement(Verdict.REFUSED, f"'{str(identity['group'])[:40]}' is not a group name")
    if identity["root"] != str(fs.root) or group_path != fs.root.joinpath(*Path(identity["group"]).parts):
        return Judgement(Verdict.REFUSED, f"made for {identity['root']} / '{identity['group']}'")
    if pending.path.parent != group_path or identity.get("file") != pending.path.name \
            or pending.path.name not in backend.restorable_files:
        return Judgement(Verdict.REFUSED, f"it names {pending.path}, not a limit of its group")
    if not RESTORABLE_VALUE.match(pending.value):
        return Judgement(Verdict.REFUSED, f"{pending.value[:40]!r} is not a limit")
    if identity["boot"] != current_boot():
        return Judgement(Verdict.STALE, "it was made before the last reboot")
    if (identity["root_device"], identity["root_inode"]) != fs.root_identity():
        return Judgement(Verdict.STALE, "the cgroup root was replaced since")
    found = fs.directory_identity(fs.group(identity["group"]))
    if found is None:
        return Judgement(Verdict.GONE)
    if found != (identity["device"], identity["inode"]):
        return Judgement(Verdict.STALE, "the group was removed and made again")
    if pending.lowered is None:
        return Judgement(Verdict.OLD_RECORD, "it is from an older memcgctl, which did not note what it wrote")
    return Judgement(Verdict.REPLAY)


def _is_under(path: Path, root: Path) -> bool:
    return path == root or str(path).startswith(str(root) + os.sep)
