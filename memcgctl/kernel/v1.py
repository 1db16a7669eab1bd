"""cgroup v1 memory controller (its own hierarchy, often /sys/fs/cgroup/memory)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ..errors import Busy, MemcgError, NoProgress, NotAvailable, UsageError
from ..safety.deadline import NEVER, Deadline
from ..sizes import MAX_BYTES
from .actions import Action, Write
from .backend import Backend, Reclaim, Restore, RestoreOutcome, counters, number
from .fs import Group

LIMIT = "memory.limit_in_bytes"
MEMSW_LIMIT = "memory.memsw.limit_in_bytes"
SOFT_LIMIT = "memory.soft_limit_in_bytes"
USAGE = "memory.usage_in_bytes"
MAX_USAGE = "memory.max_usage_in_bytes"
FAILCNT = "memory.failcnt"
OOM_CONTROL = "memory.oom_control"
FORCE_EMPTY = "memory.force_empty"
STAT = "memory.stat"
PROCS = "cgroup.procs"
TASKS = "tasks"
# Files in whose write the kernel reclaims before it answers (see apply_within).
RECLAIMING_WRITES = frozenset({LIMIT, MEMSW_LIMIT, FORCE_EMPTY})

# v1 reads back "unlimited" as PAGE_COUNTER_MAX pages: LONG_MAX rounded down
# to a page (9223372036854771712 with 4 KiB pages).  Anything within the
# largest page size (64 KiB on arm64) of LONG_MAX is therefore unlimited.
UNLIMITED_FROM = 2**63 - 2**16
UNLIMITED_TEXT = "-1"
# The kernel keeps a limit in pages, rounded down: 4097 written reads back 4096.
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# memory.stat's swap in use: total_swap (hierarchical, like usage), or the
# group's own where a fake tree has no total_ lines; with swap accounting only.
SWAP_KEYS = ("total_swap", "swap")

LIMIT_REASONS = {
    errno.EBUSY: "the kernel could not reclaim enough memory to get under it; the limit is unchanged",
    errno.EINVAL: "the kernel refused it (above the memory+swap limit, or the root group)",
}
SHRINK_REASONS = {
    # What the rest is made of is in memory.stat (ShrinkResult.left), not guessed here.
    errno.EBUSY: "the kernel could reclaim no more",
}
MEMSW_REASONS = {
    errno.EINVAL: "the memory+swap limit cannot be below the memory limit",
}


def _from_kernel(value: int) -> int | None:
    # A fake tree keeps the "-1" written to it where the kernel would not.
    return None if value >= UNLIMITED_FROM or value == int(UNLIMITED_TEXT) else value


def _to_kernel(value: int | None) -> str:
    return UNLIMITED_TEXT if value is None else str(value)


def _holds(found: str, written: str) -> bool:
    """Whether a limit file that reads FOUND holds what was written to it as
    WRITTEN: the same bytes, rounded down to a page, or both unlimited."""
    try:
        found_bytes, written_bytes = _from_kernel(int(found)), _from_kernel(int(written))
    except ValueError:  # not a number (a fake tree's file edited by hand), or thousands of digits
        return False
    if found_bytes is None or written_bytes is None:
        return found_bytes == written_bytes
    return found_bytes in (written_bytes, written_bytes - written_bytes % PAGE_SIZE)


def _at_least(a: int | None, b: int | None) -> bool:
    """a >= b, where None is unlimited."""
    return a is None or (b is not None and a >= b)


class V1Backend(Backend):
    version = 1
    marker = LIMIT
    limit_names = ("limit", "soft_limit", "swap_limit")
    # Below usage, the kernel reclaims or answers EBUSY: lowering is safe.
    limit_below_usage_kills = False
    restorable_files = (LIMIT, MEMSW_LIMIT)
    usage_file = USAGE
    part_files = {
        "usage": (USAGE,), "limit": (LIMIT,), "soft_limit": (SOFT_LIMIT,),
        # v1 limits memory+swap together; we speak of swap alone, like v2.
        "swap_limit": (LIMIT, MEMSW_LIMIT),
        "peak": (MAX_USAGE,), "failcnt": (FAILCNT,), "swap": (STAT,), "pids": (PROCS,), "stat": (STAT,),
        # memory.oom_control has an oom_kill line since 4.13.
        "events": (OOM_CONTROL,),
    }

    def attach_action(self, group: Group, pid: int, threads: bool = False) -> Write:
        return Write(group.path / (TASKS if threads else PROCS), str(pid))

    # --- limits ---------------------------------------------------------------

    @property
    def has_swap_accounting(self) -> bool:
        # memory.memsw.* exist only with CONFIG_MEMCG_SWAP and swapaccount=1.
        return self.fs.is_file(self.fs.root / MEMSW_LIMIT)

    def plan_limits(self, group: Group, changes: dict, current: dict | None = None) -> list[Write]:
        if current is None:
            current = self.read_limits(group)
        writes = []
        if "soft_limit" in changes:
            writes.append(Write(group.path / SOFT_LIMIT, _to_kernel(changes["soft_limit"])))
        if "limit" in changes or "swap_limit" in changes:
            writes += self._plan_memory_and_swap(group, changes, current)
        return writes

    def _plan_memory_and_swap(self, group: Group, changes: dict, current: dict) -> list[Write]:
        """memory.limit_in_bytes and memory.memsw.limit_in_bytes, in an order the
        kernel accepts: memsw may never be below limit, so when memsw goes up it
        is written first, and when it goes down the limit is written first."""
        old_limit = current["limit"]
        new_limit = changes.get("limit", old_limit)
        limit_write = Write(group.path / LIMIT, _to_kernel(new_limit), LIMIT_REASONS)
        if not self.has_swap_accounting:
            if "swap_limit" in changes:
                raise NotAvailable("set swap limit", "swap accounting is off on this kernel "
                                   "(no memory.memsw.limit_in_bytes; boot with swapaccount=1)")
            return [limit_write]
        # Without --swap the swap allowance stays what it was.
        swap = changes.get("swap_limit", current["swap_limit"])
        old_memsw = None if old_limit is None or current["swap_limit"] is None else old_limit + current["swap_limit"]
        new_memsw = self._memsw_for(new_limit, swap, "swap_limit" in changes)
        if new_memsw == old_memsw:
            return [limit_write]
        memsw_write = Write(group.path / MEMSW_LIMIT, _to_kernel(new_memsw), MEMSW_REASONS)
        if _at_least(new_memsw, old_memsw):
            return [memsw_write, limit_write]
        return [limit_write, memsw_write]

    @staticmethod
    def _memsw_for(limit: int | None, swap: int | None, swap_given: bool) -> int | None:
        if swap is None or limit is None:
            if swap_given and swap is not None:
                error = UsageError("set swap_limit", "on cgroup v1 a swap limit needs a memory limit: "
                                   "the kernel limits memory+swap together")
                error.limit_name = "swap_limit"
                raise error
            return None
        if limit + swap > MAX_BYTES:
            raise UsageError("set swap limit", "memory limit plus swap is larger than 2^63 - 1 bytes")
        return limit + swap

    # --- reclaim --------------------------------------------------------------

    def reclaim(self, step: Reclaim, deadline: Deadline = NEVER) -> int:
        # v1 has no per-reclaim swappiness (memory.swappiness is the group's
        # lasting setting, not ours to change): step.swappiness is left out.
        # Lowering the limit makes the kernel reclaim synchronously; it answers
        # EBUSY (limit unchanged) when it cannot get under it.  The previous
        # limit and the lowered one are journaled first (so that a later
        # memcgctl can restore it if this one dies) and the previous limit is
        # written back whatever happens, with stop signals held so that a
        # second Ctrl-C cannot cut the restore short, but only while the file
        # holds the lowered limit: one written meanwhile by someone else
        # (systemd, a container runtime, an admin) is theirs and stays
        # (self.kept says so).  Only when the kernel refused the lowering write
        # (EBUSY, EINVAL) is there nothing to restore: the limit is as it was.
        #
        # The whole shrink goes through one fd of the group's directory: in a
        # delegated subtree its user may rename the group away and another
        # into its place while the limit is low; the restore still reaches
        # the group that was lowered, and the journal record names that
        # directory's inode.
        with self.fs.pinned(step.group):
            return self._shrink_pinned(step, deadline)

    def _shrink_pinned(self, step: Reclaim, deadline: Deadline) -> int:
        from ..safety.signals import alarm_at, run_despite_signals

        group = step.group
        lower, restore = step.writes
        if self.journal is not None:
            self.journal.record(group.path, restore.path, restore.value, (lower.value,),
                                identity=self.fs.identity(group))
        limit_may_be_lowered = True
        try:
            try:
                with alarm_at(deadline):  # only a signal cuts a v1 limit write short
                    self.fs.apply(lower)
            except Busy as error:  # EBUSY: the kernel kept the old limit
                limit_may_be_lowered = False
                raise NoProgress(error.what, error.why, error.path) from None
            except MemcgError:
                limit_may_be_lowered = False
                raise
            return self.read_usage(group)
        finally:
            run_despite_signals(lambda: self._finish_shrink(group, restore if limit_may_be_lowered else None,
                                                            lower))

    def apply_within(self, actions: list[Action], deadline: Deadline = NEVER) -> None:
        # A write to memory.limit_in_bytes (or memsw) below usage, or to
        # memory.force_empty, reclaims synchronously inside the write for as
        # long as the kernel makes progress (a writer dirtying page cache keeps
        # it going for minutes); only a signal ends it (EINTR, the file left as
        # it was).  So those writes run under an alarm at DEADLINE.
        if not any(isinstance(action, Write) and action.path.name in RECLAIMING_WRITES for action in actions):
            super().apply_within(actions, deadline)
            return
        from ..safety.signals import alarm_at

        with alarm_at(deadline):
            for action in actions:
                self.fs.apply(action)

    def _finish_shrink(self, group: Group, restore: Write | None, lower: Write) -> None:
        if restore is not None:
            restored = self.restore_unless_changed(restore, (lower.value,))
            if restored.outcome is RestoreOutcome.CHANGED_SINCE:
                self.kept.append(restored)
        if self.journal is not None:
            self.journal.clear(group.path)

    def compare_restore(self, restore: Write, lowered: tuple) -> Restore:
        found = self.fs.read_text(restore.path).strip()
        if any(_holds(found, value) for value in lowered):
            outcome = RestoreOutcome.RESTORE
        elif _holds(found, restore.value):
            outcome = RestoreOutcome.ALREADY_BACK
        else:
            outcome = RestoreOutcome.CHANGED_SINCE
        return Restore(outcome, restore.path, restore.value, tuple(lowered), found)

    def plan_shrink(self, group: Group, target: int, usage: int | None = None,
                    swappiness: int | None = None) -> list[Write]:
        # The limit is read now, never taken from an earlier snapshot: it is
        # the one restored, and someone may have changed it since.
        previous = self.read_hard_limit(group)
        return [Write(group.path / LIMIT, str(target), SHRINK_REASONS),
                Write(group.path / LIMIT, _to_kernel(previous), LIMIT_REASONS)]

    def shrink_step(self, group: Group, target: int, best_effort: bool = False,
                    usage: int | None = None, swappiness: int | None = None) -> Reclaim:
        return Reclaim(group, target, tuple(self.plan_shrink(group, target)), {0: (
            f"the kernel reclaims inside that write; if it cannot get under {target} bytes it refuses it "
            "(EBUSY) and there is nothing to restore; otherwise (done, interrupted, timed out) restore:")},
            best_effort, usage)

    def plan_empty(self, group: Group) -> list[Write]:
        # Since 3.16 force_empty works with tasks attached; it returns 0 even
        # when usage did not reach 0.  Like a lowered limit, it reclaims inside
        # the write, which only a signal cuts short (apply_within).
        return [Write(group.path / FORCE_EMPTY, "0", {errno.EINVAL: "the root group cannot be emptied"})]

    # --- figures --------------------------------------------------------------

    def decode(self, texts: dict, directory: Path, parts: frozenset, stat_keys: frozenset | None = None) -> dict:
        figures: dict = {}
        for part in parts & {"usage", "peak", "failcnt"}:
            figures[part] = number(texts, directory, self.part_files[part][0])
        limit = self._limit(texts, directory, LIMIT) if parts & {"limit", "swap_limit"} else None
        if "limit" in parts:
            figures["limit"] = limit
        if "soft_limit" in parts:
            figures["soft_limit"] = self._limit(texts, directory, SOFT_LIMIT)
        if "swap_limit" in parts:
            memsw = self._limit(texts, directory, MEMSW_LIMIT)
            figures["swap_limit"] = None if memsw is None or limit is None else memsw - limit
        if parts & {"stat", "swap"}:
            keys = stat_keys if stat_keys is None or "swap" not in parts else stat_keys.union(SWAP_KEYS)
            stat = counters(texts, directory, STAT, keys)
            if "stat" in parts:
                figures["stat"] = stat if stat_keys is None or stat is None else {
                    key: value for key, value in stat.items() if key in stat_keys}
            if "swap" in parts and stat is not None:
                figures["swap"] = stat.get(SWAP_KEYS[0], stat.get(SWAP_KEYS[1]))
        if "pids" in parts and texts[PROCS] is not None:
            figures["pids"] = len(texts[PROCS].split())
        if "events" in parts:
            oom_control = counters(texts, directory, OOM_CONTROL)
            if oom_control is not None and "oom_kill" in oom_control:
                figures["events"] = {"oom_kill": oom_control["oom_kill"]}
        return figures

    @staticmethod
    def _limit(texts: dict, directory: Path, name: str) -> int | None:
        text = texts[name]
        if text is not None and text.strip() == UNLIMITED_TEXT:
            return None  # a fake tree keeps the "-1" written to it where the kernel would not
        value = number(texts, directory, name)
        return None if value is None else _from_kernel(value)

    # --- fake roots -----------------------------------------------------------

    def fake_root_files(self) -> dict:
        return self.fake_group_files()

    def fake_group_files(self) -> dict:
        unlimited = f"{2**63 - 4096}\n"
        return {
            LIMIT: unlimited,
            MEMSW_LIMIT: unlimited,
            SOFT_LIMIT: unlimited,
            USAGE: "0\n",
            MAX_USAGE: "0\n",
            FAILCNT: "0\n",
            OOM_CONTROL: "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
            FORCE_EMPTY: "",
            STAT: "cache 0\nrss 0\nrss_huge 0\nshmem 0\nmapped_file 0\nswap 0\n"
                  "total_cache 0\ntotal_rss 0\ntotal_rss_huge 0\ntotal_shmem 0\ntotal_mapped_file 0\ntotal_swap 0\n",
            PROCS: "",
            TASKS: "",
        }
