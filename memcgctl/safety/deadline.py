"""Time as a value: a Deadline is made once from a timeout and passed down, so
that waiting for a lock and the work after it share one budget."""

from __future__ import annotations

import time

# The least time one kernel attempt gets, even past its deadline: a timeout
# of 0 means one attempt (v1: one limit write; v2: memory.reclaim pieces for
# this long).
ATTEMPT_FLOOR_SECONDS = 0.5

INFINITY = float("inf")  # not math.inf: the math module costs 0.1 ms at every start


class Deadline:
    """A moment on the monotonic clock by which work must end; None: never."""

    __slots__ = ("at",)

    def __init__(self, seconds: float | None = None):
        if seconds is not None and not 0 <= seconds < INFINITY:  # NaN fails every comparison
            raise ValueError(f"a deadline needs a finite number of seconds >= 0, not {seconds!r}")
        self.at = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float | None:
        """Seconds left (0 when passed); None when there is no deadline."""
        return None if self.at is None else max(0.0, self.at - time.monotonic())

    @property
    def expired(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def __repr__(self) -> str:
        return "Deadline(never)" if self.at is None else f"Deadline(in {self.remaining():.3f} s)"


NEVER = Deadline(None)
