"""How fast the daemon goes at a group: the smallest step worth taking, the
pause after steps without progress (doubling), and the rate cap (a token
bucket per group and rule)."""

from __future__ import annotations

import math

# Steps smaller than this are not worth a kernel call (a v1 limit dip costs
# two writes and a journal record).
MIN_STEP_BYTES = 1024**2
# The first pause after a step that made no progress; it doubles each time.
FIRST_BACKOFF_SECONDS = 1.0


class Backoff:
    """The pause of one rule on one group after steps without progress."""

    __slots__ = ("failures", "until", "since")

    def __init__(self, now: float = 0.0):
        self.failures = 0
        self.until = 0.0
        self.since = now  # monotonic seconds of the first step without progress

    def fail(self, now: float, longest: float) -> tuple[float, bool]:
        """One more step without progress: pause FIRST_BACKOFF_SECONDS, twice
        as long each time up to LONGEST.  (the pause in seconds, whether it
        has just reached LONGEST)."""
        self.failures += 1
        delay = min(FIRST_BACKOFF_SECONDS * 2 ** (self.failures - 1), longest)
        reached_longest = delay == longest and FIRST_BACKOFF_SECONDS * 2 ** (self.failures - 2) < longest
        self.until = now + delay
        return delay, reached_longest


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
