"""watermark: the RFC's background reclaim.  When usage crosses `high`,
shrink the group to `low`."""

from __future__ import annotations

from ...sizes import format_size
from .. import values
from .base import Policy, Reading, Step


class WatermarkPolicy(Policy):
    name = "watermark"
    keys = {"high": values.size_or_percent, "low": values.size_or_percent}
    required = ("high", "low")

    @classmethod
    def check(cls, rule: dict) -> tuple[str, str] | None:
        high, low = rule["high"], rule["low"]
        both_percent = high.percent is not None and low.percent is not None
        both_bytes = high.bytes is not None and low.bytes is not None
        if (both_percent and low.percent >= high.percent) or (both_bytes and low.bytes >= high.bytes):
            return "low", f"low ({low}) must be below high ({high})"
        return None

    def polls(self, version: int) -> bool:
        # cgroup v1 has usage thresholds: the kernel wakes us at the crossing,
        # and an idle group costs nothing.  v2 has none: poll, and also wake
        # on memory.events.
        return version != 1

    def watch_specs(self, reading: Reading, version: int) -> tuple:
        if version == 1:
            high = self.rule["high"].resolve(reading.limit)
            return () if high is None else (("usage", high),)
        return (("events",),)

    def plan(self, reading: Reading, state: dict) -> Step | None:
        high = self.rule["high"].resolve(reading.limit)
        low = self.rule["low"].resolve(reading.limit)
        # At `high` counts as crossed: the kernel signals a v1 threshold when
        # usage reaches it, and reading right then can give exactly `high`.
        if high is None or low is None or reading.usage < high:
            return None
        return Step(low, f"usage {format_size(reading.usage)} >= high {format_size(high)}")
