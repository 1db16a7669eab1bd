"""Setting and showing limits, with the v2 safety rule: memory.max is only
lowered below usage once a shrink got the group under it (or with force)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from ..errors import Busy, NotAvailable
from ..kernel.backend import Backend
from ..kernel.fs import Action, Group
from ..safety.deadline import NEVER, Deadline
from ..safety.journal import exclusive
from ..sizes import ShrinkTarget, format_size

if TYPE_CHECKING:
    from .shrink import ShrinkResult

# How each limit is named on the command line.
OPTION_BY_LIMIT = {
    "limit": "SIZE",
    "soft_limit": "--soft",
    "high": "--high",
    "low": "--low",
    "min": "--min",
    "swap_limit": "--swap",
}
HINT_BY_VERSION = {1: "cgroup v1 has SIZE, --soft and --swap", 2: "cgroup v2 has SIZE, --high, --low, --min and --swap"}


class LimitOutcome(NamedTuple):
    """The limits the kernel holds afterwards (bytes, None unlimited), the shrink
    that came first if any, and processes OOM-killed by a forced write."""

    limits: dict
    shrink: ShrinkResult | None = None
    oom_kills: int = 0


def check_supported(backend: Backend, changes: dict) -> None:
    """NotAvailable (69) for a limit this cgroup version does not have."""
    for name in changes:
        if name not in backend.limit_names:
            raise NotAvailable(f"set {OPTION_BY_LIMIT[name]}",
                               f"not available on cgroup v{backend.version} ({HINT_BY_VERSION[backend.version]})")


def _shrink_target_first(backend: Backend, group: Group, changes: dict) -> int | None:
    """The bytes to shrink to before the hard limit may be written, or None."""
    new_limit = changes.get("limit")
    if not backend.limit_below_usage_kills or new_limit is None:
        return None
    return new_limit if backend.read_usage(group) > new_limit else None


def plan_set_limits(backend: Backend, group: Group, changes: dict) -> list[Action]:
    """The writes set_limits() would make, the first shrink step included."""
    check_supported(backend, changes)
    target = _shrink_target_first(backend, group, changes)
    shrink_steps = backend.plan_shrink(group, target) if target is not None else []
    return shrink_steps + backend.plan_limits(group, changes)


def set_limits(backend: Backend, group: Group, changes: dict, force: bool = False,
               deadline: Deadline = NEVER) -> LimitOutcome:
    """Set CHANGES ({name: bytes or None}) on GROUP and read back what the kernel holds.

    Busy (75), nothing written, when a v2 hard limit below usage could not be
    reached by shrinking first, unless FORCE (then the kernel OOM-kills).
    """
    check_supported(backend, changes)
    with exclusive(backend, group.path, deadline):
        return _set_limits_locked(backend, group, changes, force, deadline)


def _set_limits_locked(backend: Backend, group: Group, changes: dict, force: bool,
                       deadline: Deadline) -> LimitOutcome:
    writes = backend.plan_limits(group, changes)
    target = _shrink_target_first(backend, group, changes)
    shrink_result = None
    if target is not None:
        from .shrink import shrink_locked  # only v2 shrinks first: v1 limit commands never load it

        shrink_result = shrink_locked(backend, group, ShrinkTarget(bytes=target), deadline)
        if not shrink_result.reached and not force:
            raise Busy(f"set limit of {group.label}",
                       f"usage {format_size(shrink_result.after)} could not be brought under "
                       f"{format_size(target)}; the limit was left as it was, as writing it would make "
                       "the kernel OOM-kill processes (--force to do it anyway)", str(group.path))
    oom_kills_before = backend.read_oom_kills(group) if shrink_result else 0
    _write_within(backend, group, writes, deadline)
    oom_kills = backend.read_oom_kills(group) - oom_kills_before if shrink_result else 0
    return LimitOutcome(backend.read_limits(group), shrink_result, oom_kills)


def _write_within(backend: Backend, group: Group, writes: list, deadline: Deadline) -> None:
    """Apply WRITES; on v1 stop them at DEADLINE.  A v1 limit below usage makes
    the kernel reclaim inside the write for as long as it makes progress (a
    writer dirtying page cache keeps it going for minutes), and only a signal
    ends it: then the kernel leaves the limit as it was (EINTR), and Busy (75)
    says so.  A v2 memory.max write is only made once usage is under it."""
    if backend.version != 1:
        for write in writes:
            backend.fs.apply(write)
        return
    from ..errors import DeadlinePassed
    from ..safety.signals import alarm_at

    try:
        with alarm_at(deadline):
            for write in writes:
                backend.fs.apply(write)
    except DeadlinePassed:
        raise Busy(f"set limit of {group.label}", "the time ran out while the kernel was reclaiming to get "
                   "under it; the limit was left as it was", str(group.path)) from None
