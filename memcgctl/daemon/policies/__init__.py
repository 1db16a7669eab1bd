"""Policies of the daemon: each turns one Reading of a group into a Step or nothing.

Placeholder of the interface the engine keeps (see the daemon branch): the
engine's own version of this file replaces it.
"""

from __future__ import annotations

from typing import NamedTuple


class Reading(NamedTuple):
    """One group, read once per pass by the engine."""

    name: str
    time: float  # monotonic seconds
    usage: int
    limit: int | None
    protected: int  # v2 max(memory.min, memory.low), v1 0
    stat: dict  # memory.stat counters
    events: dict | None  # v2 memory.events, None on v1
    pressure: object | None = None  # kernel.psi.read_pressure()


class Step(NamedTuple):
    """Shrink the group to TARGET bytes, because WHY."""

    target: int
    why: str


class Policy:
    name: str

    def __init__(self, rule: dict) -> None:
        self.rule = rule

    def plan(self, reading: Reading, state: dict) -> Step | None:
        raise NotImplementedError


from .pressure import PressurePolicy  # noqa: E402 (after the interface it builds on)

POLICIES = {"pressure": PressurePolicy}
