"""What the daemon says of its rules against the groups as they are: legal
configurations that surely do not do what was meant.  `daemon --check`
prints these as warnings, and the daemon logs them at start and at each
reload; neither refuses to run (the groups may change: a limit set later
makes a percentage work).  Mistakes in the file itself are ConfigErrors
(config.py)."""

from __future__ import annotations

from ..errors import MemcgError
from .values import Amount


def group_warnings(engine) -> list[str]:
    """One line per group and problem, over the groups ENGINE watches (after
    discover())."""
    warnings = []
    for name, watched in sorted(engine.watched.items()):
        if len(watched.rules) > 1:
            warnings.append(f"{name}: matched by {' and '.join(rule.label for rule in watched.rules)}: each rule "
                            "acts on it on its own (one rule per group is what the daemon is made for)")
        pools = [pool for pool in engine.pools if name in engine.pool_members.get(pool.key, ())]
        if len(pools) > 1:
            warnings.append(f"{name}: in {' and '.join(pool.label for pool in pools)}: each pool counts it in its "
                            "budget and shrinks it for that budget (one pool per group is what the daemon is made for)")
        for rule in watched.rules:
            warnings.extend(f"{name}: {rule.label}: {problem}" for problem in _percent_problems(engine, watched, rule))
    return warnings


def _percent_problems(engine, watched, rule) -> list[str]:
    """A percentage of the hard limit on a group that has none: the rule
    never acts on it (an unlimited group has no 90%)."""
    keys = [key for key, value in rule.settings.items() if isinstance(value, Amount) and value.percent is not None]
    if not keys:
        return []
    try:
        limit = engine.backend.read_hard_limit(watched.group)
    except MemcgError:
        return []  # gone, or unreadable: the daemon says so itself
    if limit is not None:
        return _watermarks_crossed(rule.settings, limit)
    written = ", ".join(f'{key} = "{rule.settings[key]}"' for key in keys)
    return [f"{written}: a percentage of the hard limit, and the group has none: the rule does nothing for it "
            "until it gets one"]


def _watermarks_crossed(settings: dict, limit: int) -> list[str]:
    """A size and a percentage for high and low (both percentages, or both
    sizes, are compared in the file) that put low at or above high for this
    group's hard limit LIMIT: the rule would reclaim below high to a low
    that is not below it."""
    from ..sizes import format_size

    high, low = settings.get("high"), settings.get("low")
    if not (isinstance(high, Amount) and isinstance(low, Amount)):
        return []
    high_bytes, low_bytes = high.resolve(limit), low.resolve(limit)
    if high_bytes is None or low_bytes is None or low_bytes < high_bytes:
        return []
    return [f'high = "{high}" is {format_size(high_bytes)} and low = "{low}" is {format_size(low_bytes)} of its '
            f"hard limit ({format_size(limit)}): low is not below high for this group"]
