"""The pressure policy: proactive reclaim while the workload does not feel it.

The idea of Meta's senpai and of the TMO paper: take memory from a group in
small steps as long as its tasks do not stall on memory, and back off as soon
as they start to.  What it does differently:

- The signal is the stalled time over the last pass, the difference of the
  PSI `some` totals (microseconds), not avg10: avg10 lags a 10-second decay
  behind, so a policy that reads it keeps reclaiming into a stall and then
  waits long after it ended.  Senpai reads avg10-like figures and so has to
  move slowly (1% per 6 s at its defaults); reading the exact figure lets us
  move faster AND stop sooner.
- The step grows while pressure stays about zero (doubling each pass up to
  `max_step`) and shrinks in proportion to the room left below `target`
  (the TMO paper's reclaim = size x ratio x (1 - pressure / target)).
- Past `target` it stops, quarters its step and holds off for `hold` seconds.
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

import os
from typing import NamedTuple

from ...errors import UsageError
from ...kernel.psi import stalled_percent
from ...sizes import parse_size
from . import Policy, Reading, Step

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20

# Below this share of the target the workload does not feel reclaim: grow the step.
CALM_LOAD = 0.1
# The smallest step worth a write (and a v1 limit dip).
MIN_STEP = 1 * MIB
# The first step is this fraction of max_step; it doubles from there while calm.
FIRST_STEP_FRACTION = 1 / 8

DEFAULTS = {"target": 0.1, "min": 0, "max_step": "5%", "hold": 10.0,
            "refault_target": 0.1, "host_target": 1.0}

REFAULT_KEYS = ("workingset_refault_anon", "workingset_refault_file")


class Signal(NamedTuple):
    """What the last pass measured.  LOAD is pressure as a share of its
    target (1.0: at target); WHAT says it in words for the log."""

    load: float
    what: str


class PressurePolicy(Policy):
    """Reclaim small steps while memory pressure stays under `target`."""

    name = "pressure"

    def __init__(self, rule: dict) -> None:
        self.rule = rule
        settings = {**DEFAULTS, **rule}
        self.target = _percent(settings, "target")
        self.refault_target = _percent(settings, "refault_target")
        self.host_target = _percent(settings, "host_target")
        self.hold = _seconds(settings, "hold")
        self.minimum = _size(settings, "min")
        self.max_step_bytes, self.max_step_percent = _step_size(settings["max_step"])

    # --- one pass -------------------------------------------------------------

    def plan(self, reading: Reading, state: dict) -> Step | None:
        """The usage to shrink READING's group to this pass, or None.

        STATE is this group's own dict, kept by the engine between passes.
        """
        signal = self._measure(reading, state)
        if signal is None:
            return self._idle(state, "measuring: the first pass only takes a sample")
        floor = max(reading.protected, self.minimum)
        if reading.usage <= floor:
            state["step"] = 0
            return self._idle(state, f"at the floor ({_mib(floor)})")
        if signal.load >= 1:
            return self._back_off(reading, state, signal)
        if reading.time < state.get("hold_until", 0.0):
            return self._idle(state, f"{signal.what}; holding off after pressure")
        step = self._next_step(reading.usage, state.get("step", 0), signal.load)
        state["step"] = step
        target = max(floor, reading.usage - step)
        return Step(target, f"{signal.what}: reclaim {_mib(reading.usage - target)}")

    def _back_off(self, reading: Reading, state: dict, signal: Signal) -> None:
        state["step"] = state.get("step", 0) // 4
        state["hold_until"] = reading.time + self.hold
        return self._idle(state, f"{signal.what}: backing off for {self.hold:g} s")

    @staticmethod
    def _idle(state: dict, why: str) -> None:
        # The engine may log it with -v: why this pass took nothing.
        state["idle_why"] = why
        return None

    def _next_step(self, usage: int, previous: int, load: float) -> int:
        """Bytes to reclaim this pass: double the previous step while calm,
        shrink it by the share of the target already used otherwise."""
        largest = self._max_step(usage)
        smallest = min(MIN_STEP, largest)
        if previous <= 0:
            previous = int(largest * FIRST_STEP_FRACTION)
        step = previous * 2 if load <= CALM_LOAD else int(previous * (1 - load))
        return max(smallest, min(largest, step))

    def _max_step(self, usage: int) -> int:
        if self.max_step_percent is not None:
            return int(usage * self.max_step_percent / 100)
        return self.max_step_bytes

    # --- the signal -----------------------------------------------------------

    def _measure(self, reading: Reading, state: dict) -> Signal | None:
        """The pressure of the pass that ended with READING, from the samples
        kept in STATE (None on the first pass, or after a clock step)."""
        previous = state.get("sample")
        state["sample"] = (reading.time, reading.pressure, _refaults(reading.stat))
        if previous is None or reading.time <= previous[0]:
            return None
        seconds = reading.time - previous[0]
        pressure, last_pressure = reading.pressure, previous[1]
        if pressure is not None and pressure.scope == "group":
            if last_pressure is None or last_pressure.scope != "group":
                return None
            return self._group_signal(last_pressure, pressure, seconds)
        return self._refault_signal(reading, previous, seconds)

    def _group_signal(self, before, after, seconds: float) -> Signal:
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


def _mib(size: int) -> str:
    # Not sizes.format_size: that imports humanfriendly, too heavy for a daemon pass.
    return f"{size / MIB:.1f} MiB"


# --- the rule's keys ---------------------------------------------------------------


def _percent(settings: dict, key: str) -> float:
    value = settings[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 100:
        raise UsageError(f"key {key!r}", f"expected a percentage above 0 and below 100 (0.1 is 0.1%), "
                         f"not {value!r}")
    return float(value)


def _seconds(settings: dict, key: str) -> float:
    value = settings[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 86400:
        raise UsageError(f"key {key!r}", f"expected seconds from 0 to 86400, not {value!r}")
    return float(value)


def _size(settings: dict, key: str) -> int:
    value = settings[key]
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        return parse_size(value)
    raise UsageError(f"key {key!r}", f"expected a size such as \"400M\", not {value!r}")


def _step_size(value) -> tuple[int | None, float | None]:
    """max_step: (bytes, None) for a size, (None, percent) for "5%" of usage."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            percent = float(value.strip()[:-1])
        except ValueError:
            percent = -1.0
        if not 0 < percent <= 100:
            raise UsageError("key 'max_step'", f"expected a size or a percentage of usage up to 100%, "
                             f"not {value!r}")
        return None, percent
    step = _size({"max_step": value}, "max_step")
    if step < MIN_STEP:
        raise UsageError("key 'max_step'", f"expected at least 1M, not {value!r}")
    return step, None
