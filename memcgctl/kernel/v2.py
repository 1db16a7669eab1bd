"""cgroup v2 memory controller (the unified hierarchy, usually /sys/fs/cgroup)."""

from __future__ import annotations

import errno
from pathlib import Path

from ..errors import Busy, DeadlinePassed, InvalidValue, NoProgress
from ..safety.deadline import ATTEMPT_FLOOR_SECONDS, NEVER, Deadline
from .actions import Action, MakeDir, Write
from .backend import Backend, Reclaim, counters, number
from .fs import Group
from .psi import GROUP_PRESSURE, parse_pressure

CURRENT = "memory.current"
MAX = "memory.max"
HIGH = "memory.high"
LOW = "memory.low"
MIN = "memory.min"
SWAP_MAX = "memory.swap.max"
PEAK = "memory.peak"  # since 5.19
SWAP_CURRENT = "memory.swap.current"
ZSWAP_CURRENT = "memory.zswap.current"  # with CONFIG_ZSWAP
ZSWAP_WRITEBACK = "memory.zswap.writeback"  # since 6.8
EVENTS = "memory.events"
RECLAIM = "memory.reclaim"  # since 5.19
RECLAIM_SWAPPINESS = "swappiness"  # memory.reclaim's "<bytes> swappiness=<0-200>", since 6.11
STAT = "memory.stat"
PROCS = "cgroup.procs"
THREADS = "cgroup.threads"
CONTROLLERS = "cgroup.controllers"
SUBTREE_CONTROL = "cgroup.subtree_control"

UNLIMITED_TEXT = "max"
FILE_BY_LIMIT = {"limit": MAX, "high": HIGH, "low": LOW, "min": MIN, "swap_limit": SWAP_MAX}

SUBTREE_CONTROL_REASONS = {
    errno.EBUSY: "the parent group has processes, and cgroup v2 gives controllers to the "
    "children only of groups without processes (the no-internal-processes rule)",
    errno.ENOENT: "the memory controller is not available in the parent group",
}
PROCS_REASONS = {
    errno.EBUSY: "the group has controllers enabled for its children; cgroup v2 allows "
    "processes only in groups without them (the no-internal-processes rule)",
}

# systemd's units own their groups on v2 hosts, unless delegated (systemd 251+
# marks a delegated group with one of these extended attributes).
SYSTEMD_UNIT_SUFFIXES = (".slice", ".service", ".scope")
DELEGATE_ATTRIBUTES = ("trusted.delegate", "user.delegate")

# memory.reclaim rounds it makes no progress before a shrink gives up.
NO_PROGRESS_ROUNDS = 2
# The most one memory.reclaim write asks for.  The kernel checks for signals
# only between its reclaim rounds, and 6.1 makes one round of the whole amount
# (try_to_free_mem_cgroup_pages): under a slow swap device one write of 55 MiB
# took over 80 s, while the step's deadline, SIGTERM and Ctrl-C waited.  In
# pieces, the deadline and signals are looked at between writes.
RECLAIM_CHUNK = 8 << 20


def _to_kernel(value: int | None) -> str:
    return UNLIMITED_TEXT if value is None else str(value)


class V2Backend(Backend):
    version = 2
    marker = CURRENT
    limit_names = ("limit", "high", "low", "min", "swap_limit")
    # Below usage, memory.max reclaims and then OOM-kills in the group.
    limit_below_usage_kills = True
    usage_file = CURRENT
    part_files = {
        "usage": (CURRENT,), **{name: (file,) for name, file in FILE_BY_LIMIT.items()}, "peak": (PEAK,),
        "swap": (SWAP_CURRENT,), "pids": (PROCS,), "stat": (STAT,), "events": (EVENTS,),
        "pressure": (GROUP_PRESSURE,),  # PSI, per group since 5.2
        "zswap": (ZSWAP_CURRENT,), "zswap_writeback": (ZSWAP_WRITEBACK,),
    }
    # Whether memory.reclaim takes swappiness= (6.11+): None until the first
    # reclaim that asks for it tells (before 6.11 the kernel answers EINVAL).
    reclaim_takes_swappiness: bool | None = None

    def plan_create(self, group: Group) -> list[Action]:
        # A child gets the memory controller only if its parent lists +memory
        # in cgroup.subtree_control.
        actions: list[Action] = []
        parent = group.path.parent
        enabled = self.fs.read_optional_text(parent / SUBTREE_CONTROL) or ""
        # The kernel lists "memory"; a fake tree keeps the "+memory" written to it.
        if "memory" not in enabled.replace("+", " ").split():
            actions.append(Write(parent / SUBTREE_CONTROL, "+memory", SUBTREE_CONTROL_REASONS))
        actions.append(MakeDir(group.path, self.fake_group_files()))
        return actions

    def attach_action(self, group: Group, pid: int, threads: bool = False) -> Write:
        return Write(group.path / (THREADS if threads else PROCS), str(pid), PROCS_REASONS)

    # --- limits ---------------------------------------------------------------

    def plan_limits(self, group: Group, changes: dict, current: dict | None = None) -> list[Write]:
        return [Write(group.path / FILE_BY_LIMIT[name], _to_kernel(value)) for name, value in changes.items()]

    def owner_warning(self, group: Group) -> str | None:
        name = group.path.name
        if not name.endswith(SYSTEMD_UNIT_SUFFIXES):
            return None
        if any(self.fs.read_extended_attribute(group.path, attribute) == b"1" for attribute in DELEGATE_ATTRIBUTES):
            return None
        return (f"{name} is a systemd unit that is not delegated: systemd may overwrite this change "
                f"(use systemctl set-property {name} MemoryMax=..., or Delegate=yes)")

    # --- reclaim --------------------------------------------------------------

    def reclaim(self, step: Reclaim, deadline: Deadline = NEVER) -> int:
        # memory.reclaim is stateless and may overshoot or answer EAGAIN when it
        # reclaimed less than asked; whether to go on is memory.current, read
        # after each write, against the target.  The first write is the plan's,
        # made from the usage the plan was made from; memory.max is never
        # touched, so nothing can be OOM-killed.
        group, target = step.group, step.target
        usage = self.read_usage(group) if step.usage is None else step.usage
        writes = list(step.writes)
        # A deadline already passed (--timeout 0) still gets one attempt: the
        # pieces of the first ATTEMPT_FLOOR_SECONDS, as a whole write had.
        attempt = Deadline(ATTEMPT_FLOOR_SECONDS)
        rounds_without_progress = 0
        while usage > target:
            try:
                self._reclaim(group, min(usage - target, RECLAIM_CHUNK), step.swappiness,
                              writes.pop(0) if writes else None)
                # The kernel answers a write without EAGAIN only when it
                # reclaimed the whole piece (cgroup-v2.rst, 5.19+): progress
                # even if a writer in the group grew it back meanwhile (a
                # page-cache fill made two pieces look like no progress, and
                # the step stopped at "reclaims nothing more").  A fake
                # tree's plain file accepts any write: there memory.current tells.
                reclaimed_in_full = self.fs.is_kernel
            except Busy:
                reclaimed_in_full = False  # EAGAIN: reclaimed less than asked
            reached = self.read_usage(group)
            progressed = reclaimed_in_full or reached < usage
            rounds_without_progress = 0 if progressed else rounds_without_progress + 1
            usage = reached
            if rounds_without_progress >= NO_PROGRESS_ROUNDS:
                raise NoProgress("reclaim", "the kernel reclaims nothing more (memory in use, no swap?)",
                                 str(group.path / RECLAIM))
            if usage > target and deadline.expired and attempt.expired:
                raise DeadlinePassed()
        return usage

    def _reclaim(self, group: Group, amount: int, swappiness: int | None, planned: Write | None = None) -> None:
        """One memory.reclaim write (PLANNED, the plan's first, or one for
        AMOUNT bytes).  The first one that asks for SWAPPINESS is the probe: a
        kernel before 6.11 rejects the option (EINVAL), and from then on it is
        left out (the kernel's own vm.swappiness rules)."""
        try:
            self.fs.apply(planned or self._reclaim_write(group, amount, swappiness))
        except InvalidValue:
            if swappiness is None or self.reclaim_takes_swappiness is not None:
                raise
            self.reclaim_takes_swappiness = False
            self.fs.apply(self._reclaim_write(group, amount, None))
            return
        if swappiness is not None and self.reclaim_takes_swappiness is None:
            self.reclaim_takes_swappiness = True

    def _reclaim_write(self, group: Group, amount: int, swappiness: int | None = None) -> Write:
        if swappiness is None or self.reclaim_takes_swappiness is False:
            return Write(group.path / RECLAIM, str(amount))
        return Write(group.path / RECLAIM, f"{amount} {RECLAIM_SWAPPINESS}={swappiness}")

    def plan_shrink(self, group: Group, target: int, usage: int | None = None,
                    swappiness: int | None = None) -> list[Write]:
        if usage is None:
            usage = self.read_usage(group)
        return [self._reclaim_write(group, min(usage - target, RECLAIM_CHUNK), swappiness)] if usage > target else []

    def shrink_step(self, group: Group, target: int, best_effort: bool = False,
                    usage: int | None = None, swappiness: int | None = None) -> Reclaim:
        if usage is None:
            usage = self.read_usage(group)
        return Reclaim(group, target, tuple(self.plan_shrink(group, target, usage, swappiness)), {0: (
            f"repeated, {RECLAIM_CHUNK} bytes at most a write, while memory.current is above {target} bytes, until "
            f"{NO_PROGRESS_ROUNDS} writes in a row free nothing; memory.max is not touched")}, best_effort, usage,
            swappiness)

    def plan_empty(self, group: Group) -> list:
        usage = self.read_usage(group)
        return [self.shrink_step(group, 0, best_effort=True, usage=usage)] if usage > 0 else []

    # --- figures --------------------------------------------------------------

    def decode(self, texts: dict, directory: Path, parts: frozenset, stat_keys: frozenset | None = None) -> dict:
        figures: dict = {}
        for part in parts & {"usage", "peak", "swap", "zswap"}:
            figures[part] = number(texts, directory, self.part_files[part][0])
        if "zswap_writeback" in parts:
            writeback = number(texts, directory, ZSWAP_WRITEBACK)
            figures["zswap_writeback"] = None if writeback is None else writeback != 0
        for name in parts & FILE_BY_LIMIT.keys():
            figures[name] = self._limit(texts, directory, FILE_BY_LIMIT[name])
        if "stat" in parts:
            figures["stat"] = counters(texts, directory, STAT, stat_keys)
        if "events" in parts:
            figures["events"] = counters(texts, directory, EVENTS)
        if "pids" in parts and texts[PROCS] is not None:
            figures["pids"] = len(texts[PROCS].split())
        if "pressure" in parts and texts[GROUP_PRESSURE] is not None:
            figures["pressure"] = parse_pressure(texts[GROUP_PRESSURE], "group", str(directory / GROUP_PRESSURE))
        return figures

    @staticmethod
    def _limit(texts: dict, directory: Path, name: str) -> int | None:
        text = texts[name]
        return None if text is None or text.strip() == UNLIMITED_TEXT else number(texts, directory, name)

    # --- fake roots -----------------------------------------------------------

    def fake_root_files(self) -> dict:
        # The v2 root has no memory.current or memory.max of its own.
        return {CONTROLLERS: "memory\n", SUBTREE_CONTROL: "memory\n", PROCS: ""}

    def fake_group_files(self) -> dict:
        return {
            CONTROLLERS: "memory\n",
            SUBTREE_CONTROL: "",
            PROCS: "",
            THREADS: "",
            CURRENT: "0\n",
            MAX: "max\n",
            HIGH: "max\n",
            LOW: "0\n",
            MIN: "0\n",
            SWAP_MAX: "max\n",
            PEAK: "0\n",
            ZSWAP_CURRENT: "0\n",
            ZSWAP_WRITEBACK: "1\n",
            EVENTS: "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
            STAT: "anon 0\nfile 0\nkernel 0\nshmem 0\nfile_mapped 0\nsock 0\n",
            RECLAIM: "",
        }
