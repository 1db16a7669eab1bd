"""Helpers of test_security.py and test_delegation.py (fake roots there,
delegated kernel subtrees here): journal records as a dead shrink leaves them,
and trees deeper than PATH_MAX."""

from __future__ import annotations

import json
import os
from pathlib import Path

from memcgctl.kernel.discovery import open_hierarchy
from memcgctl.kernel.fs import Group
from memcgctl.safety.journal import Journal

from conftest import run_cli

MIB = 1024**2
GIB = 1024**3


def record_for(root: Path, journal_directory: Path, group: str, value: str, changes: dict | None = None,
               lowered: str = str(MIB)) -> Path:
    """Write the record a dead shrink of GROUP to LOWERED would leave, with CHANGES to its fields."""
    backend = open_hierarchy(root, trust_root=True)
    target = backend.group(group)
    limit = target.path / "memory.limit_in_bytes"
    journal = Journal(journal_directory)
    journal.record(target.path, limit, value, (lowered,), identity=backend.fs.identity(target))
    [record] = [p for p in journal_directory.glob("*.restore") if p.name == journal._record_name(target.path)]
    data = json.loads(record.read_text())
    data.update(changes or {})
    record.write_text(json.dumps(data))
    return record


DEPTH = 17
LONG = "d" * 250
TOP = "deep" + "d" * 246  # 17 names of 250 bytes: past PATH_MAX wherever the root is


def make_deep_tree(backend, top: str) -> list[Group]:
    """DEPTH nested groups with 250-byte names under TOP (past PATH_MAX)."""
    groups = [backend.group(top, must_exist=False)]
    for action in backend.plan_create(groups[0]):
        backend.fs.apply(action)
    for _ in range(DEPTH - 1):
        parent = groups[-1]
        child = Group(f"{parent.name}/{LONG}", parent.path / LONG)
        for action in backend.plan_create(child):
            backend.fs.apply(action)
        groups.append(child)
    assert len(os.fsencode(groups[-1].path)) > 4096
    return groups


def check_deep_tree_commands(root: Path) -> None:
    stat_result = run_cli(root, "--trust-root", "stat", "--json")
    assert stat_result.exit_code == 0, stat_result.stderr
    assert len([g for g in json.loads(stat_result.stdout) if g["group"].startswith("deep")]) == DEPTH
    tree_result = run_cli(root, "--trust-root", "tree", TOP)
    assert tree_result.exit_code == 0, tree_result.stderr
    assert len(tree_result.stdout.splitlines()) == DEPTH
    dry = run_cli(root, "--trust-root", "-n", "delete", "-r", TOP)
    assert dry.exit_code == 0, dry.stderr
    assert len(dry.stdout.splitlines()) == DEPTH
    deleted = run_cli(root, "--trust-root", "delete", "-r", TOP)
    assert deleted.exit_code == 0, deleted.stderr
    assert not (root / TOP).exists()
