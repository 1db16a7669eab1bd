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
        floor = rule.get("min", 0)
        if low.bytes is not None and floor > low.bytes:
            # min wins: the group would stop above low at every step, and look like a failure.
            return "min", f"min ({format_size(floor)}) is above low ({low}): the group could never get down to low"
        return None

    def polls(self, version: int) -> bool:
        # cgroup v1 has usage thresholds: the kernel wakes us at the crossing,
        # and an idle group costs nothing.  v2 has none: poll, and also wake
        # on memory.events.  A percentage of the hard limit polls on v1 too,
        # to follow a change of the limit (the threshold moves with it).
        uses_percent = self.rule["high"].percent is not None or self.rule["low"].percent is not None
        return version != 1 or uses_percent

    def watch_specs(self, reading: Reading, version: int) -> tuple:
        if version == 1:
            high = self.rule["high"].resolve(reading.limit)
            return () if high is None else (("usage", high),)
        return (("events",),)

    def plan(self, reading: Reading, state: dict) -> Step | None:
        high = self.rule["high"].resolve(reading.limit)
        low = self.rule["low"].resolve(reading.limit)
        if high is None or low is None or reading.usage <= low:
            state.pop("since_usage", None)
            return None
        # At `high` counts as crossed: the kernel signals a v1 threshold when
        # usage reaches it, and reading right then can give exactly `high`.
        if reading.usage >= high:
            state["since_usage"] = reading.usage
        elif "since_usage" not in state:
            return None
        # Once crossed, go on down to `low` even when steps held back by the
        # rate cap (or cut short) leave the group between the two.
        crossed = state["since_usage"]
        return Step(low, f"usage {format_size(reading.usage)} (crossed high {format_size(high)} at "
                         f"{format_size(crossed)})" if reading.usage < high else
                    f"usage {format_size(reading.usage)} >= high {format_size(high)}")

    def stepped(self, after: Reading, state: dict) -> None:
        low = self.rule["low"].resolve(after.limit)
        if low is None or after.usage <= low:
            state.pop("since_usage", None)  # done: the next step waits for the next crossing
