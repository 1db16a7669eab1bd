"""Shrinking a group to a target size: the memory.shrink_in_bytes the kernel
never merged, done from user space.

shrink() is one attempt and returns a ShrinkResult whatever happened, so that
a background-reclaim loop can call it again and again and count why it
stopped short; the command line turns a result that missed its target into
exit 75 and words the reason.
"""

from __future__ import annotations

import enum
import time
from typing import NamedTuple

from ..errors import DeadlinePassed, LockHeld, NoProgress
from ..kernel.backend import Backend
from ..kernel.fs import Group
from ..safety.deadline import NEVER, Deadline
from ..sizes import ShrinkTarget
from .recovery import exclusive

# What what_is_left() reads.
BREAKDOWN_PARTS = frozenset({"usage", "stat"})


class StopReason(enum.Enum):
    """Why a shrink ended above its target."""

    LOCKED = "locked"  # another memcgctl holds the group: nothing was tried
    NO_PROGRESS = "no-progress"  # the kernel reclaims nothing more (in use, no swap)
    DEADLINE = "deadline"  # the time given ran out


class ShrinkResult(NamedTuple):
    """Usage before and after, in bytes; SECONDS of wall time; why it stopped
    short (None when it reached the target) and the kernel's words for it;
    with NO_PROGRESS, LEFT: what the usage left is made of, in bytes by kind
    (stats.usage_breakdown: anon, file, shmem, kernel)."""

    group: str
    before: int
    after: int
    target: int
    seconds: float
    stopped_because: StopReason | None = None
    detail: str = ""
    left: dict | None = None

    @property
    def reached(self) -> bool:
        return self.after <= self.target


def shrink(backend: Backend, group: Group, target: ShrinkTarget, deadline: Deadline = NEVER) -> ShrinkResult:
    """Bring GROUP's usage to TARGET or below by DEADLINE.

    v1 lowers memory.limit_in_bytes and always restores it; v2 writes
    memory.reclaim and never touches memory.max.  Already under target is
    success without a write.  Waiting for another memcgctl's lock counts
    against DEADLINE; if it is still held then, the result says LOCKED.
    """
    started = time.monotonic()
    try:
        with exclusive(backend, group.path, deadline):
            return shrink_locked(backend, group, target, deadline)
    except LockHeld as error:
        usage = backend.read_usage(group)
        return ShrinkResult(group.label, usage, usage, target.resolve(usage), time.monotonic() - started,
                            StopReason.LOCKED, error.why)


class ShrinkPlan(NamedTuple):
    """What a shrink will do: usage BEFORE and the TARGET it resolves to (bytes),
    and the STEPS: one Reclaim step, or none when usage is at or under target."""

    before: int
    target: int
    steps: list


def plan_shrink(backend: Backend, group: Group, target: ShrinkTarget, usage: int | None = None,
                swappiness: int | None = None) -> ShrinkPlan:
    """The plan of a shrink of GROUP to TARGET, which shrink() carries out and a
    dry run prints.  Reads usage unless USAGE (bytes) is given (the daemon's
    snapshot holds it), and on v1 the limit to restore; writes nothing.
    SWAPPINESS: see kernel.backend.Reclaim (the daemon's pressure policy steers it)."""
    before = backend.read_usage(group) if usage is None else usage
    target_bytes = target.resolve(before)
    steps = ([backend.shrink_step(group, target_bytes, usage=before, swappiness=swappiness)]
             if before > target_bytes else [])
    return ShrinkPlan(before, target_bytes, steps)


def shrink_locked(backend: Backend, group: Group, target: ShrinkTarget,
                  deadline: Deadline = NEVER, usage: int | None = None,
                  swappiness: int | None = None) -> ShrinkResult:
    """shrink(), for a caller that already holds the group's lock; USAGE:
    the group's usage in bytes if the caller has just read it; SWAPPINESS:
    see kernel.backend.Reclaim."""
    started = time.monotonic()
    plan = plan_shrink(backend, group, target, usage, swappiness)
    stopped_because, detail, left = None, "", None
    after: int | None = plan.before
    try:
        for step in plan.steps:  # one Reclaim step, or none; it says the usage it reached
            after = backend.reclaim(step, deadline)
    except NoProgress as error:
        stopped_because, detail, after = StopReason.NO_PROGRESS, error.why, None
        left = what_is_left(backend, group)
    except DeadlinePassed:
        stopped_because, after = StopReason.DEADLINE, None
    if after is None:
        after = backend.read_usage(group)
    return ShrinkResult(group.label, plan.before, after, plan.target, time.monotonic() - started,
                        stopped_because, detail, left)


def what_is_left(backend: Backend, group: Group) -> dict:
    """What GROUP's usage is made of now, in bytes by kind (see ShrinkResult.left)."""
    from .stats import usage_breakdown

    return usage_breakdown(backend.read_figures(group, BREAKDOWN_PARTS))


def empty(backend: Backend, group: Group, deadline: Deadline = NEVER) -> int:
    """Reclaim all GROUP can give up, never killing; the bytes left.  Holds the
    group's lock (waiting until DEADLINE, then LockHeld)."""
    with exclusive(backend, group.path, deadline):
        return backend.empty(group, deadline)


def empty_within(backend: Backend, group: Group, deadline: Deadline = NEVER) -> ShrinkResult:
    """empty(), as a result: usage BEFORE and AFTER (bytes), target 0, and
    stopped_because DEADLINE when DEADLINE passed in the middle, LOCKED when
    another memcgctl held the group until then, None otherwise (the kernel
    reclaiming no more is how an empty ends, not a failure)."""
    started = time.monotonic()
    before = backend.read_usage(group)
    stopped_because = detail = None
    try:
        empty(backend, group, deadline)
    except DeadlinePassed:
        stopped_because = StopReason.DEADLINE
    except LockHeld as error:
        stopped_because, detail = StopReason.LOCKED, error.why
    return ShrinkResult(group.label, before, backend.read_usage(group), 0, time.monotonic() - started,
                        stopped_because, detail or "")
