"""The pressure policy: proactive reclaim while the workload does not feel it.

The idea of Meta's senpai and of the TMO paper: take memory from a group in
small steps as long as its tasks do not stall on memory, and back off as soon
as they start to.  What it does differently:

- The signal is stalled time from the PSI `some` totals (microseconds), not
  avg10: avg10 lags a 10-second decay behind, so a policy that reads it keeps
  reclaiming into a stall and then waits long after it ended.  On v2 it is
  the stall over the last PRESSURE_WINDOW seconds against `target`, or over
  the last pass against PASS_SPIKE times `target`: one swap-in of a few
  milliseconds within a calm window is no reason to stop (a policy that
  backed off on every such blip stalled at twice the working set), a real
  stall stops it within a pass (and a PSI trigger wakes it).
- The step grows while pressure stays about zero (doubling each pass up to
  `max_step`); under some pressure it grows by a quarter a pass, up to
  `max_step` times the room left below `target` (the TMO paper's
  reclaim = size x ratio x (1 - pressure / target)).
- Past `target` it stops, quarters its step and holds off for `hold` seconds
  (twice as long each time it hits pressure again soon after a hold).
- v2: refaults of most of what the last step took, in the pass after it,
  say the group is at its working set: it holds off for `hold` seconds
  rather than take memory that comes straight back (churn).
- Refaults mark the edge of the working set: while the group refaults more
  than `refault_target` percent of its size a second, or near the usage
  where it last did, its step is at most CAREFUL_SHARE of usage and grows by
  a quarter a pass instead of doubling; when the workload needs more memory
  the kernel gives it back (memory.reclaim leaves no limit), the refaults say
  so and the policy follows.  That usage is the group's working-set
  estimate (working_set()), which the engine counts and exports.
- v2 on 6.11+: each step tells memory.reclaim its `swappiness=`, steered
  toward the kind of memory that does not refault: file pages refaulting
  means take anonymous ones (up to 200), anonymous ones refaulting means take
  page cache (down to 0).  Older kernels reject the option; the backend then
  leaves it out (kernel.v2) and the kernel's own vm.swappiness decides.
- It never goes below a floor: the group's protection (memory.min/low) or
  `min`, whichever is larger.
- It only plans: the engine shrinks (memory.reclaim on v2, the journaled
  limit dip on v1), so no memory.high or memory.max is ever left changed.

cgroup v1 has no per-group PSI.  There the signal is the rate at which the
group refaults pages it had lost (memory.stat workingset_refault_anon and
_file, the hierarchical total_* when present), in percent of the group's size
per second, against `refault_target`; and the host's /proc/pressure/memory,
against `host_target`, as a guard for the machine as a whole.  Refaults count
every page read back after reclaim, stalled on or not, so the v1 signal is
coarser than PSI: it cannot tell a refault that cost a disk read from one
that was served from a fast device.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

from ...kernel.psi import DEFAULT_WINDOW_US, MemoryPressure, stalled_percent
from ...sizes import format_size
from .. import values
from .base import Policy, Reading, Step

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20

# Below this share of the target the workload does not feel reclaim: grow the step.
CALM_LOAD = 0.1
# The smallest step worth a write (the engine skips smaller ones).
MIN_STEP = 1 * MIB
# The first step is this fraction of max_step; it doubles from there while calm.
FIRST_STEP_FRACTION = 1 / 8
# Near the usage where pressure was last felt (within this factor of it) the
# step grows by CAREFUL_GROWTH a pass instead of doubling.
EDGE_MARGIN = 1.25
CAREFUL_GROWTH = 1.25
# v2: pressure is judged over this many seconds of PSI totals, and a single
# pass backs off alone only past PASS_SPIKE times the target.
PRESSURE_WINDOW = 10.0
PASS_SPIKE = 5.0
# At the edge of the working set (refaulting, or near where it last did) a
# step takes at most this share of usage.
CAREFUL_SHARE = 0.01
# memory.reclaim's swappiness= (6.11+): where it starts (anonymous and file
# pages alike), how far a pass moves it, its range; one kind of refaults
# "dominates" above SKEW times the other's.
SWAPPINESS_START = 100
SWAPPINESS_MOVE = 40
SWAPPINESS_RANGE = (0, 200)
SKEW = 2.0
# The working-set estimate follows the usage of edge passes this fast (EWMA).
ESTIMATE_WEIGHT = 0.5
# v2: refaults of at least this share of the last step within the pass after
# it: what the step took came straight back (the workload needs it), so
# taking more is churn, swap-out by the daemon and swap-in by the workload
# for nothing (6.12, bench/daemon_pressure.py: 5 MiB a second taken and
# refaulted at the hot set); the policy holds off for `hold` seconds instead.
CHURN_SHARE = 0.75
# Each back-off soon after the previous one holds twice as long, up to this many times `hold`.
MAX_HOLD_FACTOR = 8

REFAULT_KEYS = ("workingset_refault_anon", "workingset_refault_file")


def percent_of_time(value) -> float:
    """A percentage above 0 and below 100, written as a number: 0.1 is 0.1%."""
    number = values.number_value(value)
    if not 0 < number < 100:
        raise ValueError(f"expected a percentage above 0 and below 100 (0.1 means 0.1%), not {value!r}")
    return number


def step_size(value) -> tuple[int | None, float | None]:
    """A size ("64M"), or a percentage of the group's CURRENT usage ("5%"):
    (bytes, None) or (None, percent)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            percent = float(value.strip()[:-1])
        except ValueError:
            percent = -1.0
        if not 0 < percent <= 100:
            raise ValueError(f"expected a size or a percentage of usage above 0% and up to 100%, not {value!r}")
        return None, percent
    size = values.size(value)
    if size < MIN_STEP:
        raise ValueError(f"expected at least 1M, not {value!r}")
    return size, None


def hold_seconds(value) -> float:
    number = values.number_value(value)
    if not 0 <= number <= 3600:
        raise ValueError(f"expected seconds from 0 to 3600, not {value!r}")
    return number


class Signal(NamedTuple):
    """What the last pass measured.  LOAD is pressure as a share of its
    target (1.0: at target); WHAT says it in words for the log; EDGE: the
    group refaults or stalls, it is at the edge of its working set."""

    load: float
    what: str
    edge: bool = False
    edge_kinds: tuple = ()  # v2: which kinds ("anon", "file") are at their edge
    refaulted: int = 0  # v2: bytes refaulted over the pass


class PressurePolicy(Policy):
    """Reclaim small steps while memory pressure stays under `target`."""

    name = "pressure"
    keys = {
        "target": percent_of_time,  # v2: percent of wall time stalled (PSI some)
        "max_step": step_size,  # the largest step: a size, or a percentage of usage
        "hold": hold_seconds,  # seconds without reclaim after pressure passed target
        "refault_target": percent_of_time,  # v1: percent of the group refaulted per second
        "host_target": percent_of_time,  # v1: percent of wall time the host stalled
    }
    defaults = {"target": 0.1, "max_step": "5%", "hold": 10.0, "refault_target": 0.1, "host_target": 1.0}
    reads = frozenset({"stat", "pressure"})

    def __init__(self, rule: dict) -> None:
        self.rule = rule
        settings = {key: parser(self.defaults[key]) for key, parser in self.keys.items()}
        settings.update((key, rule[key]) for key in self.keys if rule.get(key) is not None)
        self.target = settings["target"]
        self.refault_target = settings["refault_target"]
        self.host_target = settings["host_target"]
        self.hold = settings["hold"]
        self.max_step_bytes, self.max_step_percent = settings["max_step"]
        self.minimum = rule.get("min") or 0

    def watch_specs(self, reading: Reading, version: int) -> tuple:
        # A PSI trigger wakes the engine as soon as the group stalls for
        # `target` percent of a 2 s window (a window any writer may use,
        # 6.4+), without waiting for the interval.  v1 has no per-group PSI.
        pressure = reading.pressure
        if pressure is None or getattr(pressure, "scope", None) != "group":
            return ()
        stall_us = max(1, int(DEFAULT_WINDOW_US * self.target / 100))
        return (("pressure", stall_us, DEFAULT_WINDOW_US),)

    # --- one pass -------------------------------------------------------------

    def plan(self, reading: Reading, state: dict) -> Step | None:
        """The usage to shrink READING's group to this pass, or None.

        STATE is this group's own dict, kept by the engine between passes.
        """
        signal = self._measure(reading, state)
        if signal is None:
            return self._idle(state, "measuring: no refault rate before a second pass")
        self._estimate(reading, state, signal)
        floor = max(reading.protected, self.minimum)
        if reading.usage <= floor:
            state["step"] = 0
            return self._idle(state, f"at the floor ({format_size(floor)})")
        if signal.load >= 1:
            self._back_off(reading, state, signal)
            return None
        if reading.time < state.get("hold_until", 0.0):
            return self._idle(state, f"{signal.what}; holding off")
        if signal.edge and state.get("step") and signal.refaulted >= CHURN_SHARE * state["step"]:
            state["hold_until"] = reading.time + self.hold
            return self._idle(state, f"{signal.what}: the last step came back, the group is at its working set; "
                                     f"holding off for {self.hold:g} s")
        estimate = state["working_set"][0] if state.get("working_set_complete") else 0
        near_edge = signal.edge or reading.usage < max(state.get("edge", 0), estimate) * EDGE_MARGIN
        step = self._next_step(reading.usage, state.get("step", 0), signal.load, near_edge,
                               careful=self._careful_share(signal, state))
        state["step"] = step
        target = max(floor, reading.usage - step)
        # The engine says the swappiness in its log where the kernel took it.
        return Step(target, f"{signal.what}: reclaim {format_size(reading.usage - target)}",
                    state.get("swappiness"))

    def working_set(self, state: dict) -> tuple[int, float] | None:
        """The group's working-set estimate: (bytes, monotonic time of its last
        update), the usage at which it refaults or stalls; None before the
        policy has seen that."""
        return state.get("working_set")

    def _estimate(self, reading: Reading, state: dict, signal: Signal) -> None:
        """Update the working-set estimate.  Where memory.stat splits usage into
        anon and file (v2), each kind has an edge of its own: the size of that
        kind when it refaulted (or the group stalled), followed halfway at each
        such pass, and lowered to what the kind holds when it holds less
        without refaulting.  A kind with no edge yet counts what it holds (an
        upper bound); kernel memory counts as it is, but not copies of pages
        already written out (swap cache, zswap's pool: see _not_anon_or_file).
        Without the split (v1), the edge is the whole usage."""
        previous = state.get("working_set")
        stat = reading.stat
        if not ("anon" in stat and "file" in stat and "psi_history" in state):
            if signal.edge:
                usage = reading.usage if previous is None else int(
                    previous[0] + ESTIMATE_WEIGHT * (reading.usage - previous[0]))
                state["working_set"] = (usage, reading.time)
                state["working_set_complete"] = True
            return
        edges = state.setdefault("edges", {})
        for kind in ("anon", "file"):
            held = stat[kind]
            if kind in signal.edge_kinds:
                edges[kind] = held if kind not in edges else int(edges[kind] + ESTIMATE_WEIGHT * (held - edges[kind]))
            elif kind in edges and held < edges[kind]:
                edges[kind] = held
        if not edges:
            return
        size = _not_anon_or_file(reading.usage, stat) + sum(edges.get(kind, stat[kind]) for kind in ("anon", "file"))
        state["working_set_complete"] = len(edges) == 2
        if previous is None or signal.edge or abs(size - previous[0]) > previous[0] / 100:
            state["working_set"] = (size, reading.time)
        else:
            state["working_set"] = (size, previous[1])  # about the same: its age goes on

    def _back_off(self, reading: Reading, state: dict, signal: Signal) -> None:
        """Stop, quarter the step, hold off.  A back-off soon after the last
        hold ended (the group is at the edge of its working set) holds twice
        as long as the last; pressure during a hold only extends it."""
        now, held_until = reading.time, state.get("hold_until", -math.inf)
        factor = state.get("hold_factor", 1)
        if now >= held_until:
            state["step"] = state.get("step", 0) // 4
            state["edge"] = reading.usage
            factor = min(factor * 2, MAX_HOLD_FACTOR) if now - held_until < self.hold else 1
        state["hold_factor"] = factor
        state["hold_until"] = max(held_until, now + self.hold * factor)
        return self._idle(state, f"{signal.what}: backing off for {state['hold_until'] - now:g} s")

    @staticmethod
    def _idle(state: dict, why: str) -> None:
        # The engine may log it with -v: why this pass took nothing.
        state["idle_why"] = why
        return None

    @staticmethod
    def _careful_share(signal: Signal, state: dict) -> float | None:
        """v2, refaulting: the largest share of usage a step may take.  Both
        kinds at their edge: CAREFUL_SHARE; one only (the step is steered to
        the other, where the kernel takes swappiness=): twice that."""
        if not (signal.edge and "psi_history" in state):
            return None
        return CAREFUL_SHARE * (1 if len(signal.edge_kinds) != 1 else 2)

    def _next_step(self, usage: int, previous: int, load: float, near_edge: bool,
                   careful: float | None = None) -> int:
        """Bytes to reclaim this pass: grow the previous step while calm
        (double it, or a quarter more NEAR_EDGE of the working set), shrink
        it by the share of the target already used otherwise.  CAREFUL (v2,
        refaulting): at most that share of usage."""
        largest = self._max_step(usage)
        if careful is not None:
            largest = min(largest, max(MIN_STEP, int(usage * careful)))
        smallest = min(MIN_STEP, largest)
        if previous <= 0:
            previous = int(largest * FIRST_STEP_FRACTION)
        if load <= CALM_LOAD:
            step = int(previous * (CAREFUL_GROWTH if near_edge else 2))
        else:
            # TMO's reclaim = size x ratio x (1 - pressure / target): a share
            # of the largest step, grown to by a quarter a pass.  Shrinking the last
            # step by (1 - load) each pass decayed it to 1 MiB under a steady
            # third of the target (6.1's window, bench/daemon_pressure.py):
            # the group crawled 50 MiB above its working set.
            step = min(int(previous * CAREFUL_GROWTH), int(largest * (1 - load)))
        return max(smallest, min(largest, step))

    def _max_step(self, usage: int) -> int:
        if self.max_step_percent is not None:
            return int(usage * self.max_step_percent / 100)
        return self.max_step_bytes

    # --- the signal -----------------------------------------------------------

    def _measure(self, reading: Reading, state: dict) -> Signal | None:
        """The pressure of the pass that ended with READING, from the samples
        kept in STATE.  With no earlier sample (the first pass, `--once`, a
        clock step) a group's PSI has only its avg10 to say; v1 refaults
        have nothing yet: None."""
        previous = state.get("sample")
        state["sample"] = (reading.time, reading.pressure, _refaults(reading.stat))
        pressure = reading.pressure
        group_psi = pressure if pressure is not None and pressure.scope == "group" else None
        last_refaults = state.get("refaults_by_kind")
        if group_psi is not None:
            state["refaults_by_kind"] = _refaults_by_kind(reading.stat)
        if previous is None or reading.time <= previous[0] or (group_psi is not None and previous[1] is None):
            state.pop("psi_history", None)
            return None if group_psi is None else self._first_signal(group_psi)
        seconds = reading.time - previous[0]
        last_pressure = previous[1]
        if group_psi is not None:
            if last_pressure.scope != "group":
                return self._first_signal(group_psi)
            return self._group_signal(reading, group_psi, state, last_pressure, last_refaults, seconds)
        return self._refault_signal(reading, previous, seconds)

    def _first_signal(self, pressure: MemoryPressure) -> Signal:
        average = pressure.some.avg10
        return Signal(average / self.target, f"pressure avg10 {average:.2f}% at a first look (target {self.target:g}%)")

    def _group_signal(self, reading: Reading, after: MemoryPressure, state: dict, before: MemoryPressure,
                      last_refaults: tuple | None, seconds: float) -> Signal:
        """v2: the stall (AFTER, the group's PSI now, against BEFORE) of the
        last PRESSURE_WINDOW seconds against `target`, of the last pass against
        PASS_SPIKE times it; the refaults of the pass mark the edge of the
        working set and steer swappiness."""
        history = state.setdefault("psi_history", [(before.some.total_us, reading.time - seconds)])
        history.append((after.some.total_us, reading.time))
        while len(history) > 2 and reading.time - history[1][1] >= PRESSURE_WINDOW:
            history.pop(0)
        passed = stalled_percent(before, after, seconds)
        first_total, first_time = history[0]
        windowed = max(0, after.some.total_us - first_total) / ((reading.time - first_time) * 1e6) * 100
        load = max(windowed / self.target, passed / (self.target * PASS_SPIKE))
        what = (f"pressure {windowed:.3f}% over {reading.time - first_time:.0f} s, {passed:.3f}% over "
                f"{seconds:.1f} s (target {self.target:g}%)")
        if last_refaults is None:
            return Signal(load, what)
        anon, file = state["refaults_by_kind"]
        anon_bytes = max(0, anon - last_refaults[0]) * PAGE_SIZE
        file_bytes = max(0, file - last_refaults[1]) * PAGE_SIZE
        per_second = max(reading.usage, PAGE_SIZE) * seconds / 100  # bytes a second per percent
        rate = (anon_bytes + file_bytes) / per_second
        self._steer(state, anon_bytes, file_bytes)
        what += f", refaults {rate:.3f}%/s"
        # A kind is at its edge when it alone refaults half the target, or
        # (pressure) both are.
        kinds = tuple(kind for kind, refaulted in (("anon", anon_bytes), ("file", file_bytes))
                      if load >= 1 or refaulted / per_second >= self.refault_target / 2)
        return Signal(load, what, edge=load >= 1 or rate >= self.refault_target, edge_kinds=kinds,
                      refaulted=anon_bytes + file_bytes)

    @staticmethod
    def _steer(state: dict, anon_bytes: int, file_bytes: int) -> None:
        """Move memory.reclaim's swappiness toward the kind that does not
        refault (file refaults: take anonymous memory, higher; anonymous
        refaults: take page cache, lower)."""
        swappiness = state.get("swappiness", SWAPPINESS_START)
        if file_bytes > SKEW * anon_bytes and file_bytes >= MIN_STEP // 4:
            swappiness += SWAPPINESS_MOVE
        elif anon_bytes > SKEW * file_bytes and anon_bytes >= MIN_STEP // 4:
            swappiness -= SWAPPINESS_MOVE
        state["swappiness"] = max(SWAPPINESS_RANGE[0], min(SWAPPINESS_RANGE[1], swappiness))

    def _refault_signal(self, reading: Reading, previous: tuple, seconds: float) -> Signal:
        refaulted = max(0, _refaults(reading.stat) - previous[2]) * PAGE_SIZE
        rate = refaulted / max(reading.usage, PAGE_SIZE) / seconds * 100
        load = rate / self.refault_target
        what = f"refaults {rate:.3f}%/s of its size (target {self.refault_target:g})"
        host, last_host = reading.pressure, previous[1]
        if host is not None and last_host is not None and host.scope == last_host.scope:
            stalled = stalled_percent(last_host, host, seconds)
            load = max(load, stalled / self.host_target)
            what += f", host pressure {stalled:.3f}% (guard {self.host_target:g}%)"
        return Signal(load, what, edge=load >= 1)


def _not_anon_or_file(usage: int, stat: dict) -> int:
    """What of USAGE is neither anon nor file in v2's memory.stat, less what
    holds copies of pages already on swap: the unmapped swap cache (in
    neither anon, which counts mapped pages, nor file; 6.1's classic LRU
    keeps about 100 MiB of it on the bench's workload, and an estimate that
    counted it was 40% over the hot set) and zswap's compressed pool (charged
    to the group as kernel memory).  Neither is memory the workload needs:
    the kernel frees them first.  Mapped swap cache is also in anon, so at
    most what is left over is taken off."""
    rest = max(0, usage - stat["anon"] - stat["file"])
    return max(0, rest - stat.get("swapcached", 0) - stat.get("zswap", 0))


def _refaults(stat: dict) -> int:
    """Pages refaulted so far: hierarchical on v1 (total_*), the group's own
    counters otherwise (v2's are hierarchical already)."""
    return sum(_refaults_by_kind(stat))


def _refaults_by_kind(stat: dict) -> tuple[int, int]:
    """(anonymous, file) pages refaulted so far (see _refaults)."""
    return tuple(stat.get(f"total_{key}", stat.get(key, 0)) for key in REFAULT_KEYS)
