"""The daemon's loop: wake, read each group that needs it ONCE, let every
rule plan on that snapshot, carry out the steps, count, log, sleep.

It sleeps in epoll_wait(2) in the main thread (a wake-up costs what it
wakes, not a walk over 1,000 watches as poll(2) would), on:
- kernel watches (kernel/watches.py): v1 usage thresholds registered at a
  watermark's `high` (an idle group then costs nothing), v2 memory.events;
- a self-pipe that signal.set_wakeup_fd writes to (SIGHUP reloads the
  configuration, SIGTERM/SIGINT stop);
- the next moment something is due: the interval of the polling rules, a
  retry after a backoff, the look for new groups, the counters file.

A step is the CLI's own shrink (operations.shrink.shrink_locked) under the
group's lock taken without waiting: a group a `memcgctl shrink/limit` holds
is skipped this pass.  v1 dips the limit (journaled, always restored); v2
writes memory.reclaim; memory.high and memory.max are never left changed.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import time
from collections.abc import Callable
from typing import Literal

from ..errors import ConfigError, Interrupted, LockHeld, MemcgError, NotAvailable, NotFound
from ..kernel.backend import Backend
from ..kernel.fs import Group
from ..kernel.psi import PressureTrigger, read_host_pressure
from ..kernel.watches import DirectoryWatch, EventsFileWatch, UsageThreshold
from ..operations.recovery import exclusive, journal_of, recover
from ..operations.shrink import StopReason, shrink_locked
from ..render.daemon_status import status_line
from ..safety.deadline import Deadline
from ..sizes import ShrinkTarget, format_size
from . import matching, notify
from .checks import group_warnings
from .config import Config, load_config
from .counters import MAX_WRITE_INTERVAL, Counters
from .log import DaemonLog
from .pacing import MIN_STEP_BYTES, Backoff, TokenBucket
from .policies import PoolPolicy, Reading, Step
from .status import write_status

# What a snapshot always holds (usage, the hard limit, v2's protection);
# Policy.reads adds "stat", "events", "pressure".
SNAPSHOT_PARTS = frozenset({"usage", "limit", "low", "min"})
# The start line and a reload's name at most this many groups per rule.
NAMES_PER_RULE = 10
# The shortest time between two writes of the status file (daemon.status).
STATUS_WRITE_INTERVAL = 1.0
# The longest pause the CPU budget imposes after one pass.
MAX_CPU_PAUSE_SECONDS = 10.0
WAKE_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)

# Policy.watch_specs() kind -> how to make the kernel watch.
# Each opens its files through the filesystem layer (CgroupFS.open_for_watch),
# which refuses on a fake root: its groups are read at every interval.
# What a kernel watch is made from: kind -> maker(fs, group, *arguments).
WATCH_KINDS: dict[str, Callable[..., UsageThreshold | EventsFileWatch | PressureTrigger]] = {
    "usage": lambda fs, group, threshold: UsageThreshold(fs, group, threshold),
    "events": lambda fs, group: EventsFileWatch(fs, group),
    "pressure": lambda fs, group, stall_us, window_us: PressureTrigger.for_group(fs, group, stall_us, window_us),
}


# File descriptors kept free of kernel watches: a step (the group's lock,
# its directory, the journal record), reads (a directory and a file at a
# time), epoll, inotify, the wake-up pipe, the counters file and stdio.
WATCH_RESERVE_FDS = 64


def raise_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one (systemd's default soft
    limit is 1,024, its hard one 524,288 since v240); the soft limit now."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass  # a hard limit the kernel refuses (above fs.nr_open): keep the soft one
    return soft


def watch_cap() -> int:
    """The most kernel watches (one fd each) this process may hold: its
    soft RLIMIT_NOFILE less WATCH_RESERVE_FDS."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return 2**31
    return max(0, soft - WATCH_RESERVE_FDS)


def describe_spec(spec: tuple) -> str:
    if spec[0] == "usage":
        from ..sizes import format_size

        return f"usage crossing {format_size(spec[1])} (eventfd)"
    if spec[0] == "events":
        return "memory.events (POLLPRI)"
    return " ".join(str(part) for part in spec)


def _host_pressure():
    """/proc/pressure/memory (4.20+), or None without PSI."""
    try:
        return read_host_pressure()
    except (NotAvailable, NotFound):
        return None


class RuleRun:
    """A rule of the configuration at work: its policy instance and settings."""

    def __init__(self, key: str, label: str, policy, settings: dict):
        self.key = key  # "group 1", "pool 2": unique within a configuration
        self.label = label
        self.policy = policy
        self.settings = settings


class Watched:
    """A group the daemon watches, with what it keeps for it: the rules on it,
    its kernel watches, and per rule its policy state, backoff and rate cap."""

    def __init__(self, group: Group):
        self.group = group
        self.rules: list[RuleRun] = []
        self.in_pools = False
        self.reads: frozenset = frozenset()
        self.watches: dict = {}  # spec -> watch
        self.states: dict = {}  # rule key -> the policy's dict
        self.backoffs: dict = {}  # rule key -> Backoff
        self.buckets: dict = {}  # rule key -> TokenBucket
        self.unwatchable = False  # the kernel or root cannot notify: poll it
        self.capped = False  # not watched while the daemon holds its most watches: poll it
        self.read_error: str | None = None  # the last failure to read it, said once
        self.last_actions: dict = {}  # rule key -> (unix seconds, why, bytes before, bytes after)

    def polled(self, version: int, watching: bool) -> bool:
        return (self.in_pools or self.unwatchable or self.capped or not watching
                or any(rule.policy.polls(version) for rule in self.rules))


class Engine:
    """The daemon over one root.  The caller holds the daemon lock of the root."""

    def __init__(self, backend: Backend, config: Config, log: DaemonLog, dry_run: bool = False):
        self.backend = backend
        self.log = log
        self.dry_run = dry_run
        self.counters = Counters(backend.fs.root, backend.fs.root_identity())
        # The counters for `memcgctl export` go beside the journal's records;
        # a dry run writes nothing, and a library user without a journal has none.
        self.counters_journal = None if dry_run else journal_of(backend)
        self.watched: dict[str, Watched] = {}
        self.by_fd: dict[int, str] = {}
        self.poller = select.epoll()
        self.pending_signals: list[int] = []
        self.step_in_flight = False
        self.stopping = False  # SIGTERM or SIGINT came: end the pass early
        self.pool_state: dict = {}
        self.pool_members: dict = {}
        self._wake_read = -1
        # What the next pass must read, kept as names so that a wake-up costs
        # what it wakes, not a walk over every group.
        self.due: set = set()  # new groups, groups whose watches fired
        self.recheck_at: dict = {}  # name -> monotonic seconds (backoffs, rate cap, registration)
        self._polled_names: list | None = None  # read at every interval (None: work out again)
        self._last_signature: list | None = None  # the names each rule matched at the last discover()
        # inotify on the directories the globs list: new groups are found at
        # once, and idle rescans are not needed to find them.  False: it
        # cannot be made, the directories are looked at every rescan.
        self.directory_watch: DirectoryWatch | Literal[False] | None = None
        self._listed_directories: set = set()
        self._rescan_needed = False
        # Kernel watches are not used in a dry run, which writes nothing (a
        # registration is a write to cgroup.event_control), nor for one pass,
        # nor on a fake tree, whose plain files notify nothing (and epoll
        # refuses them: EPERM).
        self.watching = not dry_run and backend.fs.is_kernel
        # One fd per kernel watch: at most this many, so that steps and reads
        # always have fds (the rest are polled).
        self.watch_cap = watch_cap()
        self.ready = False  # READY=1 sent to systemd (after the first pass)
        self.reload_failed = False  # the last SIGHUP found the file invalid: STATUS= says so until one works
        self._status_sent: str | None = None  # the last STATUS= line, sent again only when it changes
        self._status_written_at = -math.inf  # monotonic
        self._use(config)

    # --- configuration -----------------------------------------------------------

    def _use(self, config: Config) -> None:
        self.config = config
        self._last_signature = None
        self.rules = [RuleRun(f"group {rule.index}", rule.label, rule.policy(rule.settings), rule.settings)
                      for rule in config.rules]
        self.pools = [RuleRun(f"pool {pool.index}", pool.label, PoolPolicy(pool.settings), pool.settings)
                      for pool in config.pools]
        self.pool_state = {pool.key: {} for pool in self.pools}

    def reload(self) -> None:
        """SIGHUP: read the file again; if it is invalid keep the rules in use.
        systemd hears RELOADING=1 first and READY=1 when done, either way."""
        notify.reloading()
        try:
            config = load_config(self.config.path)
        except ConfigError as error:
            self.log.error(f"reload failed, keeping the previous configuration: {error}")
            self.reload_failed = True
            from ..escape import printable  # a newline in the error would end the STATUS= line

            status = printable(f"reload failed, kept the previous configuration: {error}")
            notify.notify("READY=1", f"STATUS={status}"[:1000])
            self._status_sent = None
            return
        self.reload_failed = False
        for name in list(self.watched):
            self._drop(name)
        self._use(config)
        self._rescan(time.monotonic())
        self._say_what_it_watches(f"reloaded {config.path}")
        notify.notify("READY=1")
        self._status_sent = None  # the next pass says how it goes

    # --- the groups --------------------------------------------------------------

    def discover(self, now: float) -> None:
        """Find the groups the rules and pools name now: new ones are read at
        the next pass, vanished ones are dropped."""
        self._listed_directories = set()
        matched = [(rule, self.expand(rule.settings["match"])) for rule in self.rules]
        pooled = [(pool, [group for pattern in pool.settings["groups"] for group in self.expand(pattern)])
                  for pool in self.pools]
        signature = [[group.name for group in found] for _, found in matched + pooled]
        if signature == self._last_signature:
            return  # nothing came or went: the usual rescan of 1,000 idle groups ends here
        self._last_signature = signature
        groups: dict[str, Group] = {}
        rules_of: dict[str, list] = {}
        for rule, found in matched:
            for group in found:
                groups[group.name] = group
                rules_of.setdefault(group.name, []).append(rule)
        self.pool_members = {}
        for pool, found in pooled:
            self.pool_members[pool.key] = {group.name for group in found}
            groups.update((group.name, group) for group in found)
        in_pools = set().union(*self.pool_members.values())
        self._polled_names = None  # worked out again when next asked
        for name in set(self.watched) - set(groups):
            self._gone(name)
        for name, group in groups.items():
            rules = rules_of.get(name, [])
            watched = self.watched.get(name)
            if watched is None:
                watched = self.watched[name] = Watched(group)
                self.due.add(name)
                self.log.detail(f"{name}: watched by {', '.join(rule.label for rule in rules) or 'a pool'}")
                for rule in rules:
                    self.counters.add(name, rule.policy.name)
            watched.rules = rules
            watched.in_pools = name in in_pools
            watched.reads = frozenset().union(*(rule.policy.reads for rule in rules))
        self._watch_directories()

    def _watch_directories(self) -> None:
        if not self.watching or self.directory_watch is False:
            return
        try:
            if self.directory_watch is None:
                self.directory_watch = DirectoryWatch()
                self.poller.register(self.directory_watch.fileno(), DirectoryWatch.poll_events)
            self.directory_watch.watch_only(self._listed_directories)
        except MemcgError as error:
            self.log.warning(f"cannot watch for new groups ({error}); looking every {self.config.rescan_interval:g} s")
            if self.directory_watch:
                self._unwatch(self.directory_watch)
            self.directory_watch = False

    def matches(self) -> list[tuple[str, str, list[str]]]:
        """(rule label, policy, names of the groups it matches now), for --check."""
        return matching.matches(self.rules, self.pools, self.expand)

    def expand(self, pattern: str) -> list[Group]:
        """The groups PATTERN names (see matching.expand)."""
        return matching.expand(self.backend, pattern, self.watched, self._listed_directories)

    def _drop(self, name: str) -> None:
        self._last_signature = None  # a group of that name may come back
        watched = self.watched.pop(name, None)
        self.due.discard(name)
        self.recheck_at.pop(name, None)
        if watched is None:
            return
        self._polled_names = None
        for watch in watched.watches.values():
            self._unwatch(watch)
        watched.watches.clear()

    def _gone(self, name: str) -> None:
        self.log.detail(f"{name}: the group is gone; no longer watched")
        # Its counter rows go after a grace period, its lock file now (unless held).
        self.counters.gone(name, time.monotonic())
        if self.counters_journal is not None:
            self.counters_journal.forget_lock(self.watched[name].group.path)
        self._drop(name)

    # --- kernel watches ----------------------------------------------------------

    def _update_watches(self, watched: Watched, reading: Reading, now: float) -> None:
        wanted = set()
        for rule in watched.rules:
            wanted.update(rule.policy.watch_specs(reading, self.backend.version))
        for spec in set(watched.watches) - wanted:
            self._unwatch(watched.watches.pop(spec))
        if watched.unwatchable:
            return  # said once; read at every interval from now on
        for spec in wanted - set(watched.watches):
            if len(self.by_fd) >= self.watch_cap:
                self._over_watch_cap(watched)
                return
            kind, *arguments = spec
            try:
                watch = WATCH_KINDS[kind](self.backend.fs, watched.group, *arguments)
            except NotFound:
                raise
            except MemcgError as error:
                self._cannot_watch(watched, error)
                return
            try:
                self.poller.register(watch.fileno(), watch.poll_events)
            except OSError as err:  # epoll refuses the fd (EPERM, ENOSPC: max_user_watches)
                watch.close()
                self._cannot_watch(watched, f"epoll: {err.strerror or err}")
                return
            watched.watches[spec] = watch
            self.by_fd[watch.fileno()] = reading.name
            if watched.capped:
                watched.capped, self._polled_names = False, None
            self.log.detail(f"{reading.name}: watching {describe_spec(spec)}")
            # A crossing between our reading and the registration would be
            # missed: read once more, right away.
            self._recheck(reading.name, now)

    def _cannot_watch(self, watched: Watched, error) -> None:
        """Poll WATCHED from now on, and say so once (not at every pass)."""
        self.log.warning(f"{watched.group.name}: cannot watch ({error}); reading it at every interval instead")
        watched.unwatchable = True
        self._polled_names = None

    def _over_watch_cap(self, watched: Watched) -> None:
        """Poll WATCHED while the daemon holds its most watches; it is
        watched again at a pass that finds room.  Said once per group."""
        if watched.capped:
            return
        watched.capped, self._polled_names = True, None
        self.log.note(f"{watched.group.name}: not watched: the daemon holds {len(self.by_fd)} kernel watches, "
                      f"the most its file limit leaves room for ({WATCH_RESERVE_FDS} fds kept for steps and "
                      "reads); reading it at every interval instead")

    def _unwatch(self, watch) -> None:
        fd = watch.fileno()
        if fd >= 0:
            self.by_fd.pop(fd, None)
            with contextlib.suppress(OSError, ValueError):
                self.poller.unregister(fd)
        watch.close()

    # --- one pass ----------------------------------------------------------------

    def read(self, watched: Watched, now: float) -> Reading:
        """One snapshot of the group: only what its rules need, each file once."""
        backend, reads = self.backend, watched.reads
        # A fake tree's files are not the kernel's: no PSI there (and no trigger written to them).
        wants_pressure = "pressure" in reads and backend.fs.is_kernel
        parts = SNAPSHOT_PARTS | (reads & {"stat", "events"}) | ({"pressure"} if wants_pressure else set())
        figures = backend.read_figures(watched.group, parts)
        if figures.usage is None:  # the root of v2 has no memory.current: never a rule's group
            raise NotAvailable(f"read {watched.group.label}", "no usage to read here")
        pressure = figures.pressure
        if wants_pressure and pressure is None:
            pressure = _host_pressure()  # v1 has no per-group PSI
        return Reading(watched.group.name, now, figures.usage, figures.limit, max(figures.low or 0, figures.min or 0),
                       figures.stat or {}, figures.events if backend.version == 2 else None, pressure)

    def run_pass(self, names: set[str], with_pools: bool, now: float) -> None:
        snapshot = {}
        for name in sorted(names):
            watched = self.watched.get(name)
            if watched is None:
                continue
            self.due.discard(name)
            self.recheck_at.pop(name, None)
            try:
                snapshot[name] = self.read(watched, now)
                watched.read_error = None
            except NotFound:
                self._gone(name)
            except MemcgError as error:
                # Say it once per kind of failure, not at every pass.
                if str(error) != watched.read_error:
                    self.log.warning(f"{name}: cannot read the group: {error}")
                watched.read_error = str(error)
        self.log.detail(f"pass: read {len(snapshot)} group(s)" + (" and the pools" if with_pools else ""))
        for name in list(snapshot):
            if self.stopping:
                return  # registering 1,000 thresholds takes seconds: stop now
            self._run_rules(name, snapshot, now)
        if with_pools:
            for pool in self.pools:
                self._run_pool(pool, snapshot, now)

    def _run_rules(self, name: str, snapshot: dict, now: float) -> None:
        watched = self.watched.get(name)
        if watched is None:
            return
        try:
            if self.watching and self.backend.fs.is_kernel:  # a fake root notifies nothing: polled
                self._update_watches(watched, snapshot[name], now)
        except NotFound:
            self._gone(name)
            return
        for rule in watched.rules:
            reading = snapshot.get(name)
            if reading is None or name not in self.watched:
                return
            state = watched.states.setdefault(rule.key, {})
            step = rule.policy.plan(reading, state)
            self._count_working_set(name, rule, state, now)
            if step is not None:
                self._carry_out(watched, rule, reading, step, snapshot, now)
            elif state.get("idle_why"):  # a policy may say why it took nothing (pressure does)
                self.log.detail(f"{name}: {rule.policy.name}: {state['idle_why']}")

    def _count_working_set(self, name: str, rule: RuleRun, state: dict, now: float) -> None:
        """The policy's working-set estimate, if it has one, into the counters
        (its monotonic time turned into unix time, for readers elsewhere)."""
        estimate = rule.policy.working_set(state)
        if estimate is not None:
            size, at = estimate
            self.counters.set_working_set(name, rule.policy.name, size, round(time.time() - (now - at), 3))

    def _run_pool(self, pool: RuleRun, snapshot: dict, now: float) -> None:
        readings = [snapshot[name] for name in sorted(self.pool_members.get(pool.key, ())) if name in snapshot]
        for name, step in pool.policy.plan(readings, self.pool_state[pool.key]):
            watched = self.watched.get(name)
            if watched is not None and name in snapshot:
                self._carry_out(watched, pool, snapshot[name], step, snapshot, now)

    # --- one step ----------------------------------------------------------------

    def _carry_out(self, watched: Watched, rule: RuleRun, reading: Reading, step: Step, snapshot: dict,
                   now: float) -> None:
        name, policy = reading.name, rule.policy.name
        backoff = watched.backoffs.get(rule.key)
        if backoff is not None and now < backoff.until:
            self._recheck(watched.group.name, backoff.until)
            self.log.detail(f"{name}: {policy}: backing off for {backoff.until - now:.1f} s more")
            return
        wanted = max(step.target, rule.settings["min"], reading.protected)  # the floors
        bucket = self._bucket(watched, rule, now)
        target = max(wanted, reading.usage - bucket.available(now))
        if target > wanted:
            # The rate cap holds the step back: come again when the bucket
            # holds the rest, or a full second's worth.
            self._recheck(watched.group.name, now + bucket.seconds_until(min(target - wanted, bucket.rate)))
        if reading.usage - target < MIN_STEP_BYTES:
            self.log.detail(f"{name}: {policy}: {step.why}: nothing to do within the floor and the rate cap")
            return
        if self.dry_run:
            lines = [write.shell() for write in self.backend.plan_shrink(watched.group, target, reading.usage,
                                                                          step.swappiness)]
            self.log.would(name, policy, step.why, lines)
            return
        try:
            result = self._shrink(watched.group, target, rule.settings["step_seconds"], reading.usage,
                                  step.swappiness)
        except LockHeld:
            self.log.detail(f"{name}: {policy}: another memcgctl holds the group; skipped this pass")
            self._recheck(watched.group.name, now + self.config.interval)
            return
        except NotFound:
            self._gone(name)
            return
        except MemcgError as error:
            self.counters.add(name, policy, errors=1)
            self._back_off(watched, rule, name, str(error), now)
            return
        bucket.spend(max(0, result.before - result.after))
        self._count_and_log(watched, rule, step, result, now)
        snapshot[name] = reading._replace(usage=result.after)
        state = self.pool_state[rule.key] if isinstance(rule.policy, PoolPolicy) else watched.states[rule.key]
        rule.policy.stepped(snapshot[name], state)
        if target > wanted:
            self._recheck(watched.group.name, now + bucket.seconds_until(min(result.after - wanted, bucket.rate)))
        elif not result.reached:
            self._recheck(watched.group.name, now + self.config.interval)

    @staticmethod
    def _bucket(watched: Watched, rule: RuleRun, now: float) -> TokenBucket:
        bucket = watched.buckets.get(rule.key)
        if bucket is None:
            bucket = watched.buckets[rule.key] = TokenBucket(rule.settings["max_bytes_per_second"], now)
        return bucket

    def _shrink(self, group: Group, target: int, step_seconds: float, usage: int, swappiness: int | None = None):
        """The step, planned from the snapshot's USAGE (bytes): not read again."""
        try:
            with exclusive(self.backend, group.path, Deadline(0)):
                self.step_in_flight = True  # SIGTERM/SIGINT now undo the step and stop
                try:
                    return shrink_locked(self.backend, group, ShrinkTarget(bytes=target), Deadline(step_seconds),
                                         usage, swappiness)
                finally:
                    self.step_in_flight = False
        finally:
            self._say_restores()

    def _count_and_log(self, watched: Watched, rule: RuleRun, step: Step, result, now: float) -> None:
        name, policy = result.group, rule.policy.name
        reclaimed = max(0, result.before - result.after)
        self.counters.add(name, policy, actions=1, reclaimed_bytes=reclaimed)
        watched.last_actions[rule.key] = (time.time(), step.why, result.before, result.after)
        outcome = ""
        # v1 can answer EBUSY while usage did get under the target (the
        # group freed memory of its own meanwhile): that is no failure.
        no_progress = result.stopped_because is StopReason.NO_PROGRESS and not result.reached
        if no_progress:
            outcome = f"stopped short: {result.detail}"
        elif result.stopped_because is StopReason.DEADLINE:
            outcome = f"stopped short: step_seconds ({rule.settings['step_seconds']:g} s) ran out"
        why = step.why
        if step.swappiness is not None and getattr(self.backend, "reclaim_takes_swappiness", None):
            why += f" (swappiness {step.swappiness})"  # not before 6.11: the kernel rejected it, it was left out
        if no_progress and rule.key in watched.backoffs:
            # Backed off already: its first step was said in full, the retries
            # are summed up by _back_off (and shown by `memcgctl daemon status`).
            self.log.detail(f"{name}: {policy}: retry: {format_size(result.before)} -> {format_size(result.after)}")
        else:
            self.log.action(name, policy, why, result.before, result.after, result.seconds, outcome)
        if no_progress:
            self._back_off(watched, rule, name, result.detail, now)
            return
        backoff = watched.backoffs.pop(rule.key, None)
        if backoff is not None:
            self.log.note(f"{name}: {policy}: reclaiming again after {backoff.failures} step(s) without progress "
                          f"over {now - backoff.since:.0f} s")

    def _back_off(self, watched: Watched, rule: RuleRun, name: str, why: str, now: float) -> None:
        """Pause the rule on this group, twice as long each time (up to
        backoff_max), and say so once, then once more in sum when the pause
        reaches backoff_max: a group full of anonymous memory without swap
        would otherwise fail at every pass, and fill the journal."""
        backoff = watched.backoffs.get(rule.key)
        if backoff is None:
            backoff = watched.backoffs[rule.key] = Backoff(now)
        longest = rule.settings["backoff_max"]
        delay, reached_longest = backoff.fail(now, longest)
        self.counters.add(name, rule.policy.name, backoffs=1)
        self._recheck(watched.group.name, backoff.until)
        if backoff.failures == 1:
            self.log.warning(f"{name}: {rule.policy.name}: backing off: {why}; trying again in {delay:g} s, "
                             f"then doubling up to {longest:g} s")
        elif reached_longest:
            self.log.warning(f"{name}: {rule.policy.name}: still backing off: {backoff.failures} steps without "
                             f"progress over {now - backoff.since:.0f} s ({why}); trying every {longest:g} s "
                             "from now on, without a line each time")
        else:
            self.log.detail(f"{name}: {rule.policy.name}: still no progress; next try in {delay:g} s")

    def _recheck(self, name: str, at: float) -> None:
        """Read group NAME again at AT (monotonic seconds), or earlier."""
        self.recheck_at[name] = min(self.recheck_at.get(name, math.inf), at)

    # --- the loop ----------------------------------------------------------------

    def run(self, once: bool = False) -> None:
        """Run until SIGTERM or SIGINT (after one pass with ONCE).  A stop
        signal during a step undoes the step first (the v1 limit is restored)."""
        if once:
            self.watching = False
        try:
            with self._signals_wake_us():
                self._loop(once)
        except Interrupted as interrupt:
            self.log.note(f"{interrupt.name}: stopping; the step in flight was undone")
        finally:
            if not once:
                notify.notify("STOPPING=1")
            self._write_counters(time.monotonic(), force=True)
            for name in list(self.watched):
                self._drop(name)
            if self.directory_watch:
                self._unwatch(self.directory_watch)
            self.directory_watch = None
            self.poller.close()  # an engine runs once

    def _loop(self, once: bool) -> None:
        now = time.monotonic()
        self._recover()
        self.discover(now)
        if not once:
            self._say_what_it_watches(f"started on {self.backend.fs.root} (cgroup v{self.backend.version}), "
                                      f"{self.config.path}")
        next_interval = now
        next_rescan = now + self.config.rescan_interval
        while True:
            cpu_before = time.process_time()
            # Idle groups whose rules the kernel wakes are not even looked at.
            interval_pass = once or (now >= next_interval and self._anything_polled())
            due = set(self.watched) if once else self._due(now, interval_pass)
            if due or interval_pass:
                self.run_pass(due, interval_pass and bool(self.pools), now)
            if interval_pass:
                next_interval = now + self.config.interval
            self._write_counters(now)
            if once:
                return
            if due or interval_pass or not self.ready:
                self._tell_systemd()
            self._keep_within_cpu_budget(cpu_before)
            wake_at = min([next_rescan, *self.recheck_at.values()]
                          + ([self.counters.written_at + MAX_WRITE_INTERVAL] if self.counters_journal else [])
                          + ([next_interval] if self._anything_polled() else []))
            woken = self._wait(wake_at - time.monotonic())
            now = time.monotonic()
            self.due.update(name for name in woken if name in self.watched)
            if self._handle_signals():
                return
            if self._rescan_needed or now >= next_rescan:
                self._rescan(now)
                next_rescan = now + self.config.rescan_interval

    def _keep_within_cpu_budget(self, cpu_before: float) -> None:
        """Pause after a pass long enough that the pass's CPU time (the
        daemon's and the kernel's reclaim in its writes) stays within
        max_cpu_percent of one core.  Idle passes cost microseconds: no pause."""
        used = time.process_time() - cpu_before
        pause = min(used * (100.0 / self.config.max_cpu_percent - 1.0), MAX_CPU_PAUSE_SECONDS)
        if pause > 0.001:
            self.log.detail(f"pass used {1000 * used:.1f} ms of CPU; pausing {1000 * pause:.0f} ms")
            # Kernel watches wait (they stay signalled); a signal ends the pause.
            self.signal_poller.poll(pause)

    def _rescan(self, now: float) -> None:
        """discover(), keeping the groups known so far if the root cannot be
        listed right now (the first discover() at start-up fails loudly)."""
        self._rescan_needed = False
        self._recover()
        try:
            self.discover(now)
        except MemcgError as error:
            self.log.warning(f"cannot look for groups: {error}; keeping the {len(self.watched)} known")

    def _recover(self) -> None:
        """Undo what a memcgctl that died left under the root (a `memcgctl
        shrink` killed while the daemon runs): at start and at every rescan."""
        if self.dry_run:
            return
        try:
            recover(self.backend, strict=False)
        except MemcgError as error:
            self.log.warning(f"cannot recover: {error}")
        self._say_restores()

    def _say_restores(self) -> None:
        """Log what became of the limits memcgctl owed back (recovered, dropped, left as someone set them)."""
        if not (self.backend.recovered or self.backend.kept):
            return
        from ..render.restores import kept_text, recovered_text

        for recovered in self.backend.recovered:
            self.log.note(recovered_text(recovered))
        for restore in self.backend.kept:
            self.log.warning(kept_text(restore))
        self.backend.recovered.clear()
        self.backend.kept.clear()

    def _due(self, now: float, interval_pass: bool) -> set:
        """The groups the next pass reads: new and woken ones, those whose
        recheck time came, and at an interval those whose rules poll."""
        due = self.due | {name for name, at in self.recheck_at.items() if at <= now}
        if interval_pass:
            due.update(self._polled())
        return due

    def _polled(self) -> list:
        if self._polled_names is None:
            version = self.backend.version
            self._polled_names = [name for name, watched in self.watched.items()
                                  if watched.polled(version, self.watching and self.backend.fs.is_kernel)]
        return self._polled_names

    def _anything_polled(self) -> bool:
        return bool(self._polled())

    def _wait(self, seconds: float) -> set[str]:
        """Sleep in epoll_wait(2) until a watch fires, a signal comes, or SECONDS pass;
        the names of the groups whose watches fired."""
        woken = set()
        for fd, _ in self.poller.poll(max(0.0, seconds) if math.isfinite(seconds) else -1):
            if fd == self._wake_read:
                with contextlib.suppress(BlockingIOError):
                    while os.read(fd, 512):
                        pass
                continue
            if self.directory_watch and fd == self.directory_watch.fileno():
                self.directory_watch.consume()
                self._rescan_needed = True
                continue
            name = self.by_fd.get(fd)
            if name is None:
                continue
            for watch in self.watched[name].watches.values():
                if watch.fileno() == fd:
                    watch.consume()
            woken.add(name)
        if woken:
            self.log.detail(f"woken by the kernel for {', '.join(sorted(woken))}")
        return woken

    def _handle_signals(self) -> bool:
        """Act on the signals that came; True to stop."""
        signals, self.pending_signals = self.pending_signals, []
        for signum in signals:
            if signum == signal.SIGHUP:
                self.reload()
            else:
                self.log.note(f"{signal.Signals(signum).name}: stopping")
                return True
        return False

    @contextlib.contextmanager
    def _signals_wake_us(self):
        """SIGHUP, SIGTERM and SIGINT are noted and wake epoll_wait() through a
        self-pipe; during a step, SIGTERM and SIGINT raise Interrupted so that
        the step is undone at once (operations.shrink restores the v1 limit)."""
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_read = read_end
        self.poller.register(read_end, select.POLLIN)
        self.signal_poller = select.epoll()
        self.signal_poller.register(read_end, select.POLLIN)

        def handler(signum, _frame):
            self.pending_signals.append(signum)
            if signum != signal.SIGHUP:
                self.stopping = True
                if self.step_in_flight:
                    raise Interrupted(signum)

        previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        previous = {signum: signal.signal(signum, handler) for signum in WAKE_SIGNALS}
        try:
            yield
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)
            signal.set_wakeup_fd(previous_fd)
            self.poller.unregister(read_end)
            self.signal_poller.close()
            os.close(read_end)
            os.close(write_end)

    # --- counters ----------------------------------------------------------------

    def _write_counters(self, now: float, force: bool = False) -> None:
        if self.counters_journal is None:
            return
        if not (force or self.counters.due(now)):
            return
        try:
            self.counters.write(self.counters_journal, now)
            # A row per group and rule (6 ms of JSON for 1,000 groups): at most once a second.
            if force or now - self._status_written_at >= STATUS_WRITE_INTERVAL:
                write_status(self.counters_journal, self.backend.fs.root, self.status_document(now))
                self._status_written_at = now
        except MemcgError as error:
            self.counters.written_at = now  # say it again in MAX_WRITE_INTERVAL, not at every pass
            self.log.warning(f"cannot write the counters file: {error}")

    # --- the service: what systemd, the log and `daemon status` are told ---------

    def _say_what_it_watches(self, opening: str) -> None:
        """One line, even without -v: the rules and the groups each matched
        (the first NAMES_PER_RULE); then a warning for each rule that surely
        does not do what was meant (daemon.checks)."""
        parts = []  # names as they are: the log escapes each whole line
        for label, policy, names in self.watched_by_rule():
            shown = " ".join(names[:NAMES_PER_RULE]) or "(no group matches now)"
            more = f" and {len(names) - NAMES_PER_RULE} more" if len(names) > NAMES_PER_RULE else ""
            parts.append(f"{label} {policy}: {shown}{more}")
        self.log.note(f"{opening}: {len(self.rules)} rule(s), {len(self.pools)} pool(s), {len(self.watched)} "
                      f"group(s): {'; '.join(parts)}")
        for warning in group_warnings(self):
            self.log.warning(warning)

    def watched_by_rule(self) -> list[tuple[str, str, list[str]]]:
        """(rule label, policy, names of the groups it watches now), as
        matches() but from what discover() found."""
        by_rule: dict[str, list] = {rule.key: [] for rule in self.rules}
        for name, watched in sorted(self.watched.items()):
            for rule in watched.rules:
                by_rule[rule.key].append(name)
        found = [(rule.label, rule.policy.name, by_rule[rule.key]) for rule in self.rules]
        return found + [(pool.label, pool.policy.name, sorted(self.pool_members.get(pool.key, ())))
                        for pool in self.pools]

    def _rules_of(self, name: str, watched: Watched) -> list[RuleRun]:
        return watched.rules + [pool for pool in self.pools if name in self.pool_members.get(pool.key, ())]

    def status_document(self, now: float) -> dict:
        """What `memcgctl daemon status` shows (daemon.status): per group and
        rule, the last action and when, the backoff, what was reclaimed."""
        wall = time.time()
        rows = []
        for name, watched in sorted(self.watched.items()):
            for rule in self._rules_of(name, watched):
                backoff = watched.backoffs.get(rule.key)
                last = watched.last_actions.get(rule.key)
                rows.append({
                    "group": name, "rule": rule.label, "policy": rule.policy.name,
                    "last_action": None if last is None else dict(zip(("at", "why", "before", "after"), last,
                                                                      strict=True)),
                    "backed_off_until": wall + backoff.until - now if backoff and backoff.until > now else None,
                    "failures": backoff.failures if backoff else 0,
                    "reclaimed_bytes": self.counters.get(name, rule.policy.name)["reclaimed_bytes"]})
        totals = self.counters.rows.values()
        return {"pid": os.getpid(), "started": self.counters.started, "written": wall,
                "root": str(self.backend.fs.root), "version": self.backend.version,
                "config": str(self.config.path.absolute()),
                "rules": [{"rule": label, "policy": policy, "groups": len(names)}
                          for label, policy, names in self.watched_by_rule()],
                "reclaimed_bytes": sum(row["reclaimed_bytes"] for row in totals),
                "steps": sum(row["actions"] for row in totals), "groups": rows}

    def _tell_systemd(self) -> None:
        """READY=1 after the first pass; STATUS= after each pass that changed it."""
        now = time.monotonic()
        totals = self.counters.rows.values()
        backed_off = sum(1 for watched in self.watched.values()
                         if any(backoff.until > now for backoff in watched.backoffs.values()))
        line = status_line(len(self.watched), len(self.rules) + len(self.pools),
                           sum(row["reclaimed_bytes"] for row in totals), sum(row["actions"] for row in totals),
                           backed_off)
        if self.reload_failed:
            line += "; the last reload failed (see the log), running the previous configuration"
        if line == self._status_sent and self.ready:
            return
        notify.notify(*(() if self.ready else ("READY=1",)), f"STATUS={line}")
        self.ready = True
        self._status_sent = line
