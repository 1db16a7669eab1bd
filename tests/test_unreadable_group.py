"""One group that cannot be read (a file of it nobody may read, bad text)
does not hide the others: stat, tree and top show every group they can read,
name the one they could not on stderr, once, and exit with its error's code
(77 permission denied, 74 bad text), as export and the daemon skip it."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from unprivileged import memcgctl_as_nobody, needs_root_and_setpriv, readable_copy, remove_tree

from memcgctl.kernel.discovery import build_fake_root

from conftest import run_cli

MIB = 1024**2


@pytest.fixture(scope="module")
def code():
    directory = readable_copy()
    yield directory
    remove_tree(directory)


@pytest.fixture
def closed_tree():
    """A fake v1 root (root's, which nobody may read) with web and batch/a,
    batch/b; batch/a's memory.stat is mode 000: nobody cannot read it."""
    top = Path(tempfile.mkdtemp(prefix="memcgctl-closed-"))
    top.chmod(0o755)
    root = top / "cg"
    build_fake_root(root, 1)
    for name in ("web", "batch/a", "batch/b"):
        assert run_cli(root, "create", "-p", name).exit_code == 0
    (root / "web" / "memory.usage_in_bytes").write_text(f"{200 * MIB}\n")
    (root / "batch" / "a" / "memory.stat").chmod(0)
    yield root
    remove_tree(top)


def said_once(stderr: str, command: str) -> None:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"memcgctl: {command}: left out batch/a, which cannot be read: "), stderr
    assert "permission denied" in lines[0] and "memory.stat" in lines[0], stderr


@needs_root_and_setpriv()
@pytest.mark.parametrize("args", [("stat",), ("stat", "-r", "batch"), ("stat", "--csv"), ("tree",),
                                  ("top", "-b", "-n", "2", "-d", "0.1")], ids=" ".join)
def test_the_other_groups_are_shown_and_the_unreadable_one_named_once(code, closed_tree, attacker_dir, args):
    result = memcgctl_as_nobody(code, "--root", str(closed_tree), *args,
                                env={"MEMCGCTL_JOURNAL_DIR": str(attacker_dir / "journal")})
    assert result.returncode == 77, result
    said_once(result.stderr, args[0])
    assert "batch/b" in result.stdout or " b " in result.stdout + " ", result.stdout
    assert "batch/a" not in result.stdout and "  a  " not in result.stdout, result.stdout
    if args[0] != "top" and "-r" not in args:
        assert "web" in result.stdout
    assert oct((closed_tree / "batch" / "a" / "memory.stat").stat().st_mode & 0o777) == "0o0"


@needs_root_and_setpriv()
def test_stat_json_stays_one_valid_document(code, closed_tree, attacker_dir):
    result = memcgctl_as_nobody(code, "--root", str(closed_tree), "stat", "--json",
                                env={"MEMCGCTL_JOURNAL_DIR": str(attacker_dir / "journal")})
    assert result.returncode == 77, result
    said_once(result.stderr, "stat")
    groups = [each["group"] for each in json.loads(result.stdout)]
    assert "web" in groups and "batch/b" in groups and "batch/a" not in groups


def test_bad_text_in_one_group_is_74_and_the_others_shown(fake_v2):
    for name in ("web", "db"):
        assert run_cli(fake_v2, "create", name).exit_code == 0
    (fake_v2 / "db" / "memory.current").write_text("lots\n")
    result = run_cli(fake_v2, "stat")
    assert result.exit_code == 74, result
    assert "web" in result.stdout and "db" not in result.stdout
    assert result.stderr.startswith("memcgctl: stat: left out db, which cannot be read: ")
    assert result.stderr.count("\n") == 1


def test_tree_draws_a_child_of_a_left_out_group_under_its_nearest_shown_ancestor(fake_v2):
    """a/x cannot be read: a/x/y was drawn as `y` under a/w, its sibling's place."""
    for name in ("a", "a/w", "a/x", "a/x/y"):
        assert run_cli(fake_v2, "create", "-p", name).exit_code == 0
    (fake_v2 / "a" / "x" / "memory.current").write_text("lots\n")
    result = run_cli(fake_v2, "tree")
    assert result.exit_code == 74, result
    names = [(len(line) - len(line.lstrip(" ")), line.split()[0]) for line in result.stdout.splitlines()]
    assert names == [(0, "a"), (4, "w"), (4, "x/y")], result.stdout
    assert result.stderr.startswith("memcgctl: tree: left out a/x, which cannot be read: ")
