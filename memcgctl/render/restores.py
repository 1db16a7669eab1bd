"""The words for what became of a limit memcgctl owed back: a restore left
undone because someone else wrote the limit meanwhile, a record of a dead
memcgctl replayed or dropped.  Shared by the command line and the daemon's
log; standard library only (the daemon imports it)."""

from __future__ import annotations

from ..escape import printable


def kept_text(restore) -> str:
    """One line for a restore this memcgctl left undone (kernel.backend.Restore,
    CHANGED_SINCE): someone else wrote the limit while a shrink had it lowered."""
    return (f"left {printable(str(restore.path))} at {printable(restore.found)}, written by someone else while "
            f"this shrink had it lowered to {printable(' or '.join(restore.lowered))}; {restore.value} was not "
            "restored")


def recovered_text(recovered) -> str:
    """One line for what became of a journal record a dead memcgctl left
    (operations.recovery.Recovered): restored, or dropped and why."""
    from ..kernel.backend import RestoreOutcome
    from ..operations.recovery import Verdict

    pending, restore = recovered.pending, recovered.restore
    path = printable(str(pending.path))
    by = f"a memcgctl (pid {pending.pid}) that died in the middle of a change"
    if recovered.restored:
        return f"restored {pending.value} to {path}, left behind by {by}"
    found = printable(restore.found) if restore is not None else None
    if recovered.verdict is Verdict.REPLAY and restore.outcome is RestoreOutcome.CHANGED_SINCE:
        return (f"left {path} at {found}, written by someone else since {by} lowered it to "
                f"{printable(' or '.join(restore.lowered))}; dropped its journal record, which would restore "
                f"{pending.value}")
    holds = f", which holds {found}" if found is not None else ""
    text = (f"dropped a journal record that would restore {pending.value} to {path}{holds} (pid {pending.pid}): "
            f"{recovered.why}; nothing was written")
    if recovered.verdict is Verdict.OLD_RECORD:
        from ..kernel.actions import Write

        text += f" (if {found} is the limit it lowered: {Write(pending.path, pending.value).shell()})"
    return text
