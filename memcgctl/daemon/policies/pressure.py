"""The pressure policy: proactive reclaim while the workload does not feel it.

The idea of Meta's senpai and of the TMO paper: take memory from a group in
small steps as long as its tasks do not stall on memory, and back off as soon
as they start to.  What it does differently:

- The signal is the stalled time over the last pass, the difference of the
  PSI `some` totals (microseconds), not avg10: avg10 lags a 10-second decay
  behind, so a policy that reads it keeps reclaiming into a stall and then
  waits long after it ended.  Senpai at its defaults stays safe by moving
  slowly (1% per 6 s); reading the exact figure of each pass (and being woken
  by a PSI trigger) lets us move faster AND stop sooner.
- The step grows while pressure stays about zero (doubling each pass up to
  `max_step`) and shrinks in proportion to the room left below `target`
  (the TMO paper's reclaim = size x ratio x (1 - pressure / target)).
- Past `target` it stops, quarters its step and holds off for `hold` seconds
  (twice as long each time it hits pressure again soon after a hold); near
  the usage where it felt pressure, its step grows by a quarter a pass
  instead of doubling.
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
    target (1.0: at target); WHAT says it in words for the log."""

    load: float
    what: str


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
        floor = max(reading.protected, self.minimum)
        if reading.usage <= floor:
            state["step"] = 0
            return self._idle(state, f"at the floor ({format_size(floor)})")
        if signal.load >= 1:
            self._back_off(reading, state, signal)
            return None
        if reading.time < state.get("hold_until", 0.0):
            return self._idle(state, f"{signal.what}; holding off after pressure")
        near_edge = reading.usage < state.get("edge", 0) * EDGE_MARGIN
        step = self._next_step(reading.usage, state.get("step", 0), signal.load, near_edge)
        state["step"] = step
        target = max(floor, reading.usage - step)
        return Step(target, f"{signal.what}: reclaim {format_size(reading.usage - target)}")

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

    def _next_step(self, usage: int, previous: int, load: float, near_edge: bool) -> int:
        """Bytes to reclaim this pass: grow the previous step while calm
        (double it, or a quarter more NEAR_EDGE of the working set), shrink
        it by the share of the target already used otherwise."""
        largest = self._max_step(usage)
        smallest = min(MIN_STEP, largest)
        if previous <= 0:
            previous = int(largest * FIRST_STEP_FRACTION)
        if load <= CALM_LOAD:
            step = int(previous * (CAREFUL_GROWTH if near_edge else 2))
        else:
            step = int(previous * (1 - load))
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
        if previous is None or reading.time <= previous[0] or (group_psi is not None and previous[1] is None):
            return None if group_psi is None else self._first_signal(group_psi)
        seconds = reading.time - previous[0]
        last_pressure = previous[1]
        if group_psi is not None:
            if last_pressure.scope != "group":
                return self._first_signal(group_psi)
            return self._group_signal(last_pressure, group_psi, seconds)
        return self._refault_signal(reading, previous, seconds)

    def _first_signal(self, pressure: MemoryPressure) -> Signal:
        average = pressure.some.avg10
        return Signal(average / self.target, f"pressure avg10 {average:.2f}% at a first look (target {self.target:g}%)")

    def _group_signal(self, before: MemoryPressure, after: MemoryPressure, seconds: float) -> Signal:
        stalled = stalled_percent(before, after, seconds)
        return Signal(stalled / self.target, f"pressure {stalled:.3f}% over {seconds:.1f} s "
                                             f"(target {self.target:g}%)")

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
        return Signal(load, what)


def _refaults(stat: dict) -> int:
    """Pages refaulted so far: hierarchical on v1 (total_*), the group's own
    counters otherwise (v2's are hierarchical already)."""
    total = 0
    for key in REFAULT_KEYS:
        total += stat.get(f"total_{key}", stat.get(key, 0))
    return total


