"""Shrinking a group to a target size: the memory.shrink_in_bytes the kernel
never merged, done from user space.

shrink() is one attempt and returns a ShrinkResult whatever happened, so that
a background-reclaim loop can call it again and again; the command line turns
a result that missed its target into exit 75.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from .backend import Backend
from .errors import Busy
from .fs import Group
from .journal import exclusive
from .sizes import ShrinkTarget


class ShrinkResult(NamedTuple):
    """Usage before and after, in bytes; SECONDS of wall time; why it stopped short."""

    group: str
    before: int
    after: int
    target: int
    seconds: float
    stopped_because: str | None = None

    @property
    def reached(self) -> bool:
        return self.after <= self.target


def shrink(backend: Backend, group: Group, target: ShrinkTarget, timeout: float | None = None) -> ShrinkResult:
    """Bring GROUP's usage to TARGET or below, within TIMEOUT seconds.

    v1 lowers memory.limit_in_bytes and always restores it; v2 writes
    memory.reclaim and never touches memory.max.  Already under target is
    success without a write.  Holds the group's lock (waiting up to TIMEOUT
    for another memcgctl, then Busy).
    """
    with exclusive(backend, group.path, timeout):
        return shrink_locked(backend, group, target, timeout)


def shrink_locked(backend: Backend, group: Group, target: ShrinkTarget,
                  timeout: float | None = None) -> ShrinkResult:
    """shrink(), for a caller that already holds the group's lock."""
    from .signals import TimedOut, timeout_alarm  # signal: only commands that change something

    started = time.monotonic()
    before = backend.read_usage(group)
    target_bytes = target.resolve(before)
    stopped_because = None
    after = before
    if before > target_bytes:
        try:
            with timeout_alarm(timeout):
                after = backend.shrink_to(group, target_bytes)
        except Busy as error:
            stopped_because = error.why
        except TimedOut:
            stopped_because = f"timed out after {timeout:g} s"
        if stopped_because:
            after = backend.read_usage(group)
    return ShrinkResult(
        group=group.label,
        before=before,
        after=after,
        target=target_bytes,
        seconds=time.monotonic() - started,
        stopped_because=stopped_because,
    )



def empty(backend: Backend, group: Group, timeout: float | None = None) -> int:
    """Reclaim all GROUP can give up, never killing; the bytes left.  Holds the
    group's lock (waiting up to TIMEOUT seconds, then Busy)."""
    with exclusive(backend, group.path, timeout):
        return backend.empty(group)
