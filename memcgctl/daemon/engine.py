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
import fnmatch
import math
import os
import select
import signal
import time

from ..errors import ConfigError, Interrupted, LockHeld, MemcgError, NotFound
from ..kernel.backend import Backend
from ..kernel.fs import Group
from ..kernel.psi import PressureTrigger, read_pressure
from ..kernel.watches import DirectoryWatch, EventsFileWatch, UsageThreshold
from ..operations.shrink import StopReason, shrink_locked
from ..safety.deadline import Deadline
from ..safety.journal import exclusive
from ..sizes import ShrinkTarget
from .config import Config, load_config
from .counters import MAX_WRITE_INTERVAL, Counters
from .log import DaemonLog
from .policies import PoolPolicy, Reading, Step

STAT_FILE = "memory.stat"
EVENTS_FILE = "memory.events"
# Steps smaller than this are not worth a kernel call (a v1 limit dip costs
# two writes and a journal record).
MIN_STEP_BYTES = 1024**2
# The first pause after a step that made no progress; it doubles each time.
FIRST_BACKOFF_SECONDS = 1.0
# The longest pause the CPU budget imposes after one pass.
MAX_CPU_PAUSE_SECONDS = 10.0
WAKE_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)

# Policy.watch_specs() kind -> how to make the kernel watch.
WATCH_KINDS = {
    "usage": lambda group, threshold: UsageThreshold(group, threshold),
    "events": lambda group: EventsFileWatch(group),
    "pressure": lambda group, stall_us, window_us: PressureTrigger.for_group(group.path, stall_us, window_us),
}


def describe_spec(spec: tuple) -> str:
    if spec[0] == "usage":
        from ..sizes import format_size

        return f"usage crossing {format_size(spec[1])} (eventfd)"
    if spec[0] == "events":
        return "memory.events (POLLPRI)"
    return " ".join(str(part) for part in spec)


# Reading fields beyond the basic ones, filled only for groups whose rules
# list them in Policy.reads: {field: function(backend, group) -> value}
# ("pressure": the group's PSI, or the host's on v1, from kernel/psi.py).
EXTRA_READERS: dict = {
    # A fake tree's files are not the kernel's: no PSI there (and no trigger written to them).
    "pressure": lambda backend, group: read_pressure(group.path) if backend.fs.is_kernel else None,
}


class RuleRun:
    """A rule of the configuration at work: its policy instance and settings."""

    def __init__(self, key: str, label: str, policy, settings: dict):
        self.key = key  # "group 1", "pool 2": unique within a configuration
        self.label = label
        self.policy = policy
        self.settings = settings


class Backoff:
    __slots__ = ("failures", "until")

    def __init__(self):
        self.failures = 0
        self.until = 0.0


class TokenBucket:
    """At most RATE bytes per second, in bursts of at most one second's worth."""

    __slots__ = ("rate", "tokens", "at")

    def __init__(self, rate: int, now: float):
        self.rate = rate
        self.tokens = float(rate)
        self.at = now

    def available(self, now: float) -> int:
        self.tokens = min(float(self.rate), self.tokens + (now - self.at) * self.rate)
        self.at = now
        return int(self.tokens)

    def spend(self, amount: int) -> None:
        self.tokens -= amount

    def seconds_until(self, amount: int) -> float:
        return max(0.0, (amount - self.tokens) / self.rate) if self.rate else math.inf


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
        self.read_error: str | None = None  # the last failure to read it, said once

    def polled(self, version: int, watching: bool) -> bool:
        return (self.in_pools or self.unwatchable or not watching
                or any(rule.policy.polls(version) for rule in self.rules))


class Engine:
    """The daemon over one root.  The caller holds the daemon lock of the root."""

    def __init__(self, backend: Backend, config: Config, log: DaemonLog, dry_run: bool = False):
        self.backend = backend
        self.log = log
        self.dry_run = dry_run
        self.counters = Counters(backend.fs.root)
        # The counters for `memcgctl export` go beside the journal's records;
        # a dry run writes nothing, and a library user without a journal has none.
        self.counters_journal = None if dry_run else backend.journal
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
        # once, and idle rescans are not needed to find them.
        self.directory_watch = None
        self._listed_directories: set = set()
        self._rescan_needed = False
        # Kernel watches are not used in a dry run, which writes nothing (a
        # registration is a write to cgroup.event_control), nor for one pass.
        self.watching = not dry_run
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
        """SIGHUP: read the file again; if it is invalid keep the rules in use."""
        try:
            config = load_config(self.config.path)
        except ConfigError as error:
            self.log.note(f"reload failed, keeping the previous configuration: {error}")
            return
        for name in list(self.watched):
            self._drop(name)
        self._use(config)
        self._rescan(time.monotonic())
        self.log.note(f"reloaded {config.path}: {len(config.rules)} rule(s), {len(config.pools)} pool(s), "
                      f"{len(self.watched)} group(s)")

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
            self.log.note(f"cannot watch for new groups ({error}); looking every {self.config.rescan_interval:g} s")
            if self.directory_watch:
                self._unwatch(self.directory_watch)
            self.directory_watch = False

    def matches(self) -> list[tuple[str, str, list[str]]]:
        """(rule label, policy, names of the groups it matches now), for --check."""
        found = [(rule.label, rule.policy.name, [group.name for group in self.expand(rule.settings["match"])])
                 for rule in self.rules]
        for pool in self.pools:
            names = sorted({group.name for pattern in pool.settings["groups"] for group in self.expand(pattern)})
            found.append((pool.label, pool.policy.name, names))
        return found

    def expand(self, pattern: str) -> list[Group]:
        """The groups PATTERN names: a name, or a glob whose components
        match one level each ("batch/*")."""
        groups = [self.backend.group("", must_exist=False)]
        for part in pattern.split("/"):
            groups = [child for group in groups for child in self._children_matching(group, part)]
        return [group for group in groups if group.name in self.watched or self.backend.is_group(group)]

    def _children_matching(self, group: Group, part: str) -> list[Group]:
        if not any(character in part for character in "*?["):
            child = self.backend.fs.group(f"{group.name}/{part}" if group.name else part)
            return [child] if self.backend.fs.is_dir(child.path) else []
        try:
            names = fnmatch.filter(self.backend.fs.child_names(group), part)
        except NotFound:
            return []  # removed while we looked
        self._listed_directories.add(group.path)
        # A rescan every few seconds over 1,000 groups: reuse what we know.
        prefix = f"{group.name}/" if group.name else ""
        children = []
        for name in sorted(names):
            known = self.watched.get(prefix + name)
            children.append(known.group if known else Group(prefix + name, group.path / name))
        return children

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
        self._drop(name)

    # --- kernel watches ----------------------------------------------------------

    def _update_watches(self, watched: Watched, reading: Reading, now: float) -> None:
        wanted = set()
        for rule in watched.rules:
            wanted.update(rule.policy.watch_specs(reading, self.backend.version))
        for spec in set(watched.watches) - wanted:
            self._unwatch(watched.watches.pop(spec))
        for spec in wanted - set(watched.watches):
            kind, *arguments = spec
            try:
                watch = WATCH_KINDS[kind](watched.group, *arguments)
            except NotFound:
                raise
            except MemcgError as error:
                self.log.note(f"{reading.name}: cannot watch ({error}); reading it at every interval instead")
                watched.unwatchable = True
                self._polled_names = None
                continue
            watched.watches[spec] = watch
            self.by_fd[watch.fileno()] = reading.name
            self.poller.register(watch.fileno(), watch.poll_events)
            self.log.detail(f"{reading.name}: watching {describe_spec(spec)}")
            # A crossing between our reading and the registration would be
            # missed: read once more, right away.
            self._recheck(reading.name, now)

    def _unwatch(self, watch) -> None:
        fd = watch.fileno()
        if fd >= 0:
            self.by_fd.pop(fd, None)
            with contextlib.suppress(OSError, ValueError):
                self.poller.unregister(fd)
        watch.close()

    # --- one pass ----------------------------------------------------------------

    def read(self, watched: Watched, now: float) -> Reading:
        """One snapshot of the group: only what its rules need."""
        backend, group = self.backend, watched.group
        stat = backend.read_counters(group.path / STAT_FILE) if "stat" in watched.reads else {}
        events = None
        if backend.version == 2 and "events" in watched.reads:
            events = backend.read_counters(group.path / EVENTS_FILE)
        extras = {field: reader(backend, group) for field, reader in EXTRA_READERS.items() if field in watched.reads}
        return Reading(group.name, now, backend.read_usage(group), backend.read_hard_limit(group),
                       backend.read_protection(group), stat, events, **extras)

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
                    self.log.note(f"{name}: cannot read the group: {error}")
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
        try:
            if self.watching:
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
            lines = [write.shell() for write in self.backend.plan_shrink(watched.group, target, step.swappiness)]
            self.log.would(name, policy, step.why, lines)
            return
        try:
            result = self._shrink(watched.group, target, rule.settings["step_seconds"], step.swappiness)
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

    def _shrink(self, group: Group, target: int, step_seconds: float, swappiness: int | None = None):
        with exclusive(self.backend, group.path, Deadline(0)):
            self.step_in_flight = True  # SIGTERM/SIGINT now undo the step and stop
            try:
                return shrink_locked(self.backend, group, ShrinkTarget(bytes=target), Deadline(step_seconds),
                                     swappiness)
            finally:
                self.step_in_flight = False
        self.stopping = False  # SIGTERM or SIGINT came: end the pass early

    def _count_and_log(self, watched: Watched, rule: RuleRun, step: Step, result, now: float) -> None:
        name, policy = result.group, rule.policy.name
        reclaimed = max(0, result.before - result.after)
        self.counters.add(name, policy, actions=1, reclaimed_bytes=reclaimed)
        outcome = ""
        if result.stopped_because is StopReason.NO_PROGRESS and not result.reached:
            outcome = f"stopped short: {result.detail}"
        elif result.stopped_because is StopReason.DEADLINE:
            outcome = f"stopped short: step_seconds ({rule.settings['step_seconds']:g} s) ran out"
        why = step.why
        if step.swappiness is not None and getattr(self.backend, "reclaim_takes_swappiness", None):
            why += f" (swappiness {step.swappiness})"  # not before 6.11: the kernel rejected it, it was left out
        self.log.action(name, policy, why, result.before, result.after, result.seconds, outcome)
        # v1 can answer EBUSY while usage did get under the target (the
        # group freed memory of its own meanwhile): that is no failure.
        if result.stopped_because is StopReason.NO_PROGRESS and not result.reached:
            self._back_off(watched, rule, name, result.detail, now)
            return
        backoff = watched.backoffs.pop(rule.key, None)
        if backoff is not None:
            self.log.note(f"{name}: {policy}: reclaiming again after {backoff.failures} step(s) without progress")

    def _back_off(self, watched: Watched, rule: RuleRun, name: str, why: str, now: float) -> None:
        """Pause the rule on this group, twice as long each time (up to
        backoff_max), and say so once: a group full of anonymous memory
        without swap would otherwise fail at every pass."""
        backoff = watched.backoffs.setdefault(rule.key, Backoff())
        backoff.failures += 1
        delay = min(FIRST_BACKOFF_SECONDS * 2 ** (backoff.failures - 1), rule.settings["backoff_max"])
        backoff.until = now + delay
        self.counters.add(name, rule.policy.name, backoffs=1)
        self._recheck(watched.group.name, backoff.until)
        if backoff.failures == 1:
            self.log.note(f"{name}: {rule.policy.name}: backing off: {why}; trying again in {delay:g} s, "
                          f"then doubling up to {rule.settings['backoff_max']:g} s")
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
            self._write_counters(time.monotonic(), force=True)
            for name in list(self.watched):
                self._drop(name)
            if self.directory_watch:
                self._unwatch(self.directory_watch)
            self.directory_watch = None
            self.poller.close()  # an engine runs once

    def _loop(self, once: bool) -> None:
        now = time.monotonic()
        self.discover(now)
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
        try:
            self.discover(now)
        except MemcgError as error:
            self.log.note(f"cannot look for groups: {error}; keeping the {len(self.watched)} known")

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
                                  if watched.polled(version, self.watching)]
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
        except MemcgError as error:
            self.counters.written_at = now  # say it again in MAX_WRITE_INTERVAL, not at every pass
            self.log.note(f"cannot write the counters file: {error}")
