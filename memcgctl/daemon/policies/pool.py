"""pool: the RFC's balancing between groups, as user-space soft limits.

When the groups of a pool hold more than its budget together, the excess is
reclaimed from the groups furthest above their share of the budget (shares
are weights, equal by default).  The kernel has no knob for this today: v1
soft limits are ignored under MGLRU, and v2 only protects.
"""

from __future__ import annotations

from ...sizes import format_size
from .. import values
from .base import Policy, Reading, Step


class PoolPolicy(Policy):
    """One instance per [[pool]] of the configuration.  A Policy whose plan()
    takes the readings of all the pool's groups at once (engine._run_pool);
    its groups are read at every interval, so it watches nothing."""

    name = "pool"
    keys = {"groups": values.group_patterns, "budget": values.size, "share": values.shares}
    required = ("groups", "budget")

    @classmethod
    def check(cls, rule: dict) -> tuple[str, str] | None:
        """Refused: a budget of 0, groups that nest (their memory would be counted twice), and
        a share for a group the pool does not hold (a typo whose weight would
        go unused: each entry must name, or glob, groups of `groups`)."""
        from fnmatch import fnmatchcase

        groups = rule["groups"]
        if rule["budget"] == 0:
            return "budget", ("0 would take every group of the pool down to its min, as far as the kernel can: "
                              "to turn a pool off, remove or comment out its table")
        nested = nesting(groups)
        if nested is not None:
            outer, inner = nested
            return "groups", (f"'{inner}' may name groups inside '{outer}': a group's usage includes its "
                              "children's (on both cgroup versions), so the pool would count their memory twice; "
                              "list the parent or its children, not both")
        for pattern in rule.get("share", {}):
            if not any(fnmatchcase(group, pattern) or fnmatchcase(pattern, group) for group in groups):
                return "share", f"'{pattern}' is not in the pool's groups ({', '.join(groups)})"
        return None

    def stepped(self, after: Reading, state: dict) -> None:
        """The pool keeps nothing across steps."""

    def weight(self, name: str) -> float:
        """The share weight of group NAME: the first `share` entry whose name
        or glob matches it, else 1."""
        from fnmatch import fnmatchcase

        for pattern, weight in self.rule.get("share", {}).items():
            if fnmatchcase(name, pattern):
                return weight
        return 1.0

    # A pool plans over its groups together: not Policy.plan's one reading.
    def plan(self, readings: list[Reading], state: dict) -> list[tuple[str, Step]]:  # type: ignore[override]
        """(group, step) for each group to shrink so that the pool's total gets
        back under its budget; [] while it is under."""
        budget = self.rule["budget"]
        total = sum(reading.usage for reading in readings)
        if total <= budget or not readings:
            return []
        weights = {reading.name: self.weight(reading.name) for reading in readings}
        weight_sum = sum(weights.values())
        above_share = {reading.name: reading.usage - budget * weights[reading.name] / weight_sum
                       for reading in readings}
        level = water_level(list(above_share.values()), total - budget)
        why = f"pool total {format_size(total)} > budget {format_size(budget)}"
        steps = []
        for reading in readings:
            take = int(above_share[reading.name] - level)
            if take > 0:
                share = int(reading.usage - above_share[reading.name])
                steps.append((reading.name, Step(reading.usage - take,
                                                 f"{why}; {format_size(reading.usage)} vs share "
                                                 f"{format_size(share)}")))
        return steps


def nesting(patterns: tuple) -> tuple[str, str] | None:
    """(outer, inner): two of PATTERNS (names or globs, one level per
    component) of which INNER may name a group inside one OUTER names; None if
    no two can.  Where both components are globs they are taken to overlap
    unless their literal beginnings differ (a* and b* cannot)."""
    for outer in patterns:
        for inner in patterns:
            outer_parts, inner_parts = outer.split("/"), inner.split("/")
            if len(outer_parts) < len(inner_parts) and all(
                    _may_overlap(a, b) for a, b in zip(outer_parts, inner_parts, strict=False)):
                return outer, inner
    return None


GLOB_CHARACTERS = "*?["


def _may_overlap(a: str, b: str) -> bool:
    """Whether one name can match both components A and B."""
    from fnmatch import fnmatchcase

    a_is_glob, b_is_glob = (any(c in part for c in GLOB_CHARACTERS) for part in (a, b))
    if not a_is_glob and not b_is_glob:
        return a == b
    if not a_is_glob or not b_is_glob:
        return fnmatchcase(a, b) if not a_is_glob else fnmatchcase(b, a)
    prefix_a, prefix_b = (part[:min(part.find(c) for c in GLOB_CHARACTERS if c in part)] for part in (a, b))
    return prefix_a.startswith(prefix_b) or prefix_b.startswith(prefix_a)


def water_level(above: list[float], excess: float) -> float:
    """The level L >= 0 such that taking max(0, a - L) from each amount A
    above its share sums to EXCESS: the groups furthest above their share
    give first, and the ones left end equally far above it."""
    ordered = sorted((a for a in above if a > 0), reverse=True)
    taken_above = 0.0
    for count, amount in enumerate(ordered, start=1):
        next_amount = ordered[count] if count < len(ordered) else 0.0
        taken_above += amount
        # Lowering the top COUNT groups to NEXT_AMOUNT takes this much:
        if taken_above - count * next_amount >= excess:
            return (taken_above - excess) / count
    return 0.0
