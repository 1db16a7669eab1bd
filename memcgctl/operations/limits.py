"""Setting and showing limits, with the v2 safety rule: memory.max is only
lowered below usage once a shrink got the group under it (or with force).

Errors name a limit as `stat --json` does (limit, soft_limit, high, ...), in
their LIMIT_NAME attribute too: how the command line spells it is its own affair.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NamedTuple

from ..errors import Busy, MemcgError, NotAvailable, UsageError
from ..kernel.backend import Backend, Reclaim
from ..kernel.fs import Group
from ..safety.deadline import NEVER, Deadline
from ..sizes import ShrinkTarget
from .recovery import exclusive

if TYPE_CHECKING:
    from .shrink import ShrinkResult


class UnsupportedLimit(NotAvailable):
    """A limit this cgroup version does not have (69)."""

    limit_name: str

    def __init__(self, limit_name: str, version: int, available: tuple):
        super().__init__(f"set {limit_name}", f"not available on cgroup v{version} "
                         f"(cgroup v{version} has {', '.join(available)})")
        self.limit_name = limit_name
        self.version = version


class ForceRequired(MemcgError):
    """A change refused because it would harm the group's processes; the
    caller may insist (force=True).  LIMIT_NAME: the limit concerned."""

    limit_name = "limit"


class LimitBelowOnePage(ForceRequired, UsageError):
    """A hard limit the kernel would round down to 0 pages (2)."""


class LimitWouldKill(ForceRequired, Busy):
    """A v2 hard limit below a usage that shrinking could not bring under it (75).
    SHRINK: the shrink that fell short, for the command line to word."""

    def __init__(self, what: str, why: str, path: str, shrink: ShrinkResult):
        super().__init__(what, why, path)
        self.shrink = shrink


def page_size() -> int:
    return os.sysconf("SC_PAGESIZE")


def check_hard_limit(value: int | None, force: bool) -> None:
    """LimitBelowOnePage unless VALUE (bytes, None unlimited) holds at least one
    page, or FORCE.  The kernel stores limits in pages, rounded down: a smaller
    limit is 0, and the next process to touch memory in the group is OOM-killed."""
    if value is None or force or value >= page_size():
        return
    raise LimitBelowOnePage("set limit", f"{value} bytes is less than one page (page size {page_size()} bytes): "
                            "the kernel would round it down to 0 and OOM-kill the group's next process")


def holds(current: int | None, wanted: int | None) -> bool:
    """A limit CURRENT (bytes, None unlimited) is already WANTED as the kernel
    would store it: in whole pages, rounded down (a write would change nothing)."""
    if current is None or wanted is None:
        return current is wanted
    return current // page_size() == wanted // page_size()


def changes_needed(backend: Backend, group: Group, changes: dict) -> dict:
    """CHANGES without those GROUP already holds: `limit web 500M` twice
    writes once, and a dry run of the second says there is nothing to do."""
    current = backend.read_limits(group)
    return {name: value for name, value in changes.items() if name not in current or not holds(current[name], value)}


class LimitOutcome(NamedTuple):
    """The limits the kernel holds afterwards (bytes, None unlimited), the shrink
    that came first if any, and processes OOM-killed by a forced write."""

    limits: dict
    shrink: ShrinkResult | None = None
    oom_kills: int = 0


def check_supported(backend: Backend, changes: dict) -> None:
    """UnsupportedLimit (69) for a limit this cgroup version does not have."""
    for name in changes:
        if name not in backend.limit_names:
            raise UnsupportedLimit(name, backend.version, backend.limit_names)


def _shrink_target_first(backend: Backend, group: Group, changes: dict) -> int | None:
    """The bytes to shrink to before the hard limit may be written, or None."""
    new_limit = changes.get("limit")
    if not backend.limit_below_usage_kills or new_limit is None:
        return None
    return new_limit if backend.read_usage(group) > new_limit else None


def plan_set_limits(backend: Backend, group: Group, changes: dict, force: bool = False) -> list:
    """The plan of set_limits(): on v2, a hard limit below usage is preceded by
    a shrink to it (a Reclaim step); then the writes, in the order the kernel
    accepts.  Checks everything that can be checked without writing."""
    check_supported(backend, changes)
    check_hard_limit(changes.get("limit"), force)
    changes = changes_needed(backend, group, changes)
    target = _shrink_target_first(backend, group, changes)
    shrink_steps = [backend.shrink_step(group, target)] if target is not None else []
    return shrink_steps + backend.plan_limits(group, changes)


def limits_above_the_hard_limit(backend: Backend, group: Group, changes: dict) -> list[tuple]:
    """(name, bytes, hard limit) for each of the soft limit and high that will
    be above the group's hard limit once CHANGES are made (a new value or the
    one it has, when CHANGES set one of the three): the kernel accepts them,
    but they mean nothing there."""
    names = [name for name in ("soft_limit", "high") if name in backend.limit_names]
    if not any(name in changes for name in ("limit", *names)):
        return []
    after = {**backend.read_limits(group), **changes}
    hard = after["limit"]
    return [(name, after[name], hard) for name in names
            if hard is not None and after[name] is not None and after[name] > hard]


def set_limits(backend: Backend, group: Group, changes: dict, force: bool = False,
               deadline: Deadline = NEVER) -> LimitOutcome:
    """Set CHANGES ({name: bytes or None}) on GROUP and read back what the kernel holds.

    LimitWouldKill (75), nothing written, when a v2 hard limit below usage
    could not be reached by shrinking first, unless FORCE (then the kernel
    OOM-kills); LimitBelowOnePage (2) for a hard limit under one page, unless FORCE.
    """
    check_supported(backend, changes)
    check_hard_limit(changes.get("limit"), force)
    with exclusive(backend, group.path, deadline):
        plan = plan_set_limits(backend, group, changes, force)
        return _carry_out_locked(backend, group, plan, force, deadline)


def _carry_out_locked(backend: Backend, group: Group, plan: list, force: bool, deadline: Deadline) -> LimitOutcome:
    shrink_result = None
    writes = []
    for step in plan:  # plan_set_limits puts the shrink (a Reclaim step) before the writes
        if isinstance(step, Reclaim):
            shrink_result = _shrink_first(backend, group, step, force, deadline)
            oom_kills_before = backend.read_oom_kills(group)
        else:
            writes.append(step)
    _write_within(backend, group, writes, deadline)
    oom_kills = backend.read_oom_kills(group) - oom_kills_before if shrink_result else 0
    return LimitOutcome(backend.read_limits(group), shrink_result, oom_kills)


def _write_within(backend: Backend, group: Group, writes: list, deadline: Deadline) -> None:
    """Apply WRITES; on v1 stop them at DEADLINE.  A v1 limit below usage makes
    the kernel reclaim inside the write for as long as it makes progress (a
    writer dirtying page cache keeps it going for minutes), and only a signal
    ends it: then the kernel leaves the limit as it was (EINTR), and Busy (75)
    says so.  A v2 memory.max write is only made once usage is under it."""
    from ..errors import DeadlinePassed

    try:
        backend.apply_within(writes, deadline)  # v1: under an alarm at DEADLINE
    except DeadlinePassed:
        raise Busy(f"set limit of {group.label}", "the time ran out while the kernel was reclaiming to get "
                   "under it; the limit was left as it was", str(group.path)) from None


def _shrink_first(backend: Backend, group: Group, step: Reclaim, force: bool, deadline: Deadline) -> ShrinkResult:
    from .shrink import shrink_locked  # only v2 shrinks first: v1 limit commands never load it

    # From the usage the plan was made from: the same writes as the plan's.
    target = step.target
    result = shrink_locked(backend, group, ShrinkTarget(bytes=target), deadline, step.usage)
    if not result.reached and not force:
        raise LimitWouldKill(f"set limit of {group.label}",
                             f"usage {result.after} bytes could not be brought under {target} bytes; the limit "
                             "was left as it was, as writing it would make the kernel OOM-kill processes",
                             str(group.path), result)
    return result
