"""What a policy is: it reads one snapshot of a group (a Reading) and says
how far to shrink it (a Step), or nothing.  The engine does the reading, the
locking, the shrinking, the counting and the logging; a policy never touches
the kernel."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from ...kernel.psi import MemoryPressure


class Reading(NamedTuple):
    """One group, read ONCE per pass by the engine and shared by every rule."""

    name: str
    time: float  # monotonic seconds
    usage: int  # bytes
    limit: int | None  # bytes of the hard limit, None unlimited
    protected: int  # bytes never to go below: v2 max(memory.min, memory.low), v1 0
    stat: dict  # memory.stat counters ({} unless a rule of the group reads "stat")
    events: dict | None  # v2 memory.events (when a rule reads "events"), None on v1
    pressure: MemoryPressure | None = None  # filled by kernel/psi.py where a rule reads "pressure"


class Step(NamedTuple):
    target: int  # bytes to shrink the group to
    why: str  # words for the log line ("usage 950M > high 900M")
    # v2 6.11+: memory.reclaim's swappiness= for this step (0 file pages
    # only ... 200 anonymous only), None for the kernel's own; left out on
    # kernels without it.
    swappiness: int | None = None


class Policy:
    """One instance per [[group]] rule of the configuration (and, as
    pool.PoolPolicy, per [[pool]]).

    Class attributes say what the configuration may hold and what the engine
    must read and watch for it:
    - keys: {key: parser}; a parser (see daemon.values) turns the TOML value
      into the value the policy uses, or raises ValueError;
    - required: keys the rule must have;
    - reads: what a Reading must carry besides usage and limits ("stat",
      "events", "pressure"): nothing else is read, to keep idle passes cheap.
    """

    name = ""
    keys: dict = {}
    required: tuple = ()
    reads: frozenset = frozenset()

    def __init__(self, rule: dict) -> None:
        self.rule = rule

    @classmethod
    def check(cls, rule: dict) -> tuple[str, str] | None:
        """(key, why) when the values of RULE do not go together, else None."""
        return None

    def polls(self, version: int) -> bool:
        """Whether the engine must read the group at every interval (True), or
        only when one of watch_specs() wakes it (and at start)."""
        return True

    def watch_specs(self, reading: Reading, version: int) -> tuple:
        """Kernel notifiers that should wake the engine for this group, as
        hashable specs the engine turns into watches (engine.WATCH_KINDS):
        ("usage", bytes) a v1 usage threshold, ("events",) v2 memory.events."""
        return ()

    def plan(self, reading: Reading, state: dict) -> Step | None:
        """The step to take now, or None.  STATE is a dict of this rule's own
        for this group; the engine drops it when the group vanishes."""
        raise NotImplementedError

    def working_set(self, state: dict) -> tuple[int, float] | None:
        """The policy's estimate of what the group's workload needs: (bytes,
        monotonic time it was last updated), or None (the engine counts and
        exports it)."""
        return None

    def stepped(self, after: Reading, state: dict) -> None:
        """The engine carried out this rule's step: AFTER is the reading with
        the usage the step reached.  For policies that keep state across steps."""
