"""Which groups a rule or a pool names: its patterns (a name, or a glob whose
components match one level each, "batch/*") expanded against the tree."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from ..errors import NotFound
from ..kernel.backend import Backend
from ..kernel.fs import Group


class Known(Protocol):
    """What the engine keeps for a group it watches (engine.Watched): its Group, reused."""

    group: Group


def matches(rules: list, pools: list, expand: Callable[[str], list[Group]]) -> list[tuple[str, str, list[str]]]:
    """(rule label, policy, names of the groups it matches now), for --check:
    RULES and POOLS are the engine's (engine.RuleRun), EXPAND its expand()."""
    found = [(rule.label, rule.policy.name, [group.name for group in expand(rule.settings["match"])])
             for rule in rules]
    for pool in pools:
        names = sorted({group.name for pattern in pool.settings["groups"] for group in expand(pattern)})
        found.append((pool.label, pool.policy.name, names))
    return found


def expand(backend: Backend, pattern: str, known: Mapping[str, Known], listed: set[Path]) -> list[Group]:
    """The groups PATTERN names: a name, or a glob whose components
    match one level each ("batch/*").  KNOWN: the groups watched so far, by
    name; LISTED gathers the directories a glob listed (to watch for new
    groups)."""
    groups = [backend.group("", must_exist=False)]
    for part in pattern.split("/"):
        groups = [child for group in groups for child in _children_matching(backend, group, part, known, listed)]
    return [group for group in groups if group.name in known or backend.is_group(group)]


def _children_matching(backend: Backend, group: Group, part: str, known: Mapping[str, Known],
                       listed: set[Path]) -> list[Group]:
    if not any(character in part for character in "*?["):
        child = backend.fs.group(f"{group.name}/{part}" if group.name else part)
        return [child] if backend.fs.is_dir(child.path) else []
    try:
        names = fnmatch.filter(backend.fs.child_names(group), part)
    except NotFound:
        return []  # removed while we looked
    listed.add(group.path)
    # A rescan every few seconds over 1,000 groups: reuse what we know.
    prefix = f"{group.name}/" if group.name else ""
    children = []
    for name in sorted(names):
        watched = known.get(prefix + name)
        children.append(watched.group if watched else Group(prefix + name, group.path / name))
    return children
