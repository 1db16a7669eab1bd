"""The fields of `stat --fields`/`--csv`: named figures of a GroupFigures.

A field is one of GroupFigures's own figures (`usage`, `limit`, ...), a counter
of memory.stat as `stat.KEY` or of v2 memory.events as `events.KEY` (the
same nesting as `stat --json`).  Names are checked before anything is printed.
"""

from __future__ import annotations

from ..errors import UsageError
from ..kernel.figures import GroupFigures

# GroupFigures's figures that are one value (not the stat and events objects).
PLAIN_FIELDS = ("group", "path", "cgroup_version", "usage", "limit", "soft_limit", "high", "low", "min",
                "swap_limit", "peak", "failcnt", "pids")


def default_fields(version: int, limit_names: tuple) -> list[str]:
    """What `--csv` prints without --fields: the group, its usage, limits and peak."""
    return ["group", "usage", *limit_names, "peak", *(["failcnt"] if version == 1 else []), "pids"]


def valid_fields(stats: list[GroupFigures]) -> list[str]:
    """Every field name the groups of STATS have, in a stable order."""
    names = list(PLAIN_FIELDS)
    for stat in stats:
        names += [f"stat.{key}" for key in (stat.stat or {}) if f"stat.{key}" not in names]
        names += [f"events.{key}" for key in (stat.events or {}) if f"events.{key}" not in names]
    return names


def parse_fields(text: str, stats: list[GroupFigures]) -> list[str]:
    """The names in TEXT ('usage,limit,stat.anon'), or UsageError (exit 2)
    naming the valid ones."""
    wanted = [name.strip() for name in text.split(",")]
    valid = valid_fields(stats)
    unknown = [name for name in wanted if name not in valid]
    if unknown or not text.strip():
        raise UsageError(f"unknown field {', '.join(repr(name) for name in unknown) or repr(text)}",
                         "valid fields: " + ", ".join(valid))
    return wanted


def field_value(stat: GroupFigures, name: str) -> int | str | None:
    """The value of field NAME for STAT; None when unlimited or not there."""
    if name.startswith("stat."):
        return (stat.stat or {}).get(name[len("stat."):])
    if name.startswith("events."):
        return (stat.events or {}).get(name[len("events."):])
    return getattr(stat, name)
