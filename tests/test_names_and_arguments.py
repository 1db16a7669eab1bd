"""Names and arguments a new user (or a script) gets wrong: a negative size,
a name of blanks, and a group whose name holds a newline (made by renaming
on a fake tree), which is named as the tables spell it."""

from __future__ import annotations

import os

import pytest

from conftest import run_cli

MIB = 1024**2


def limit_file(root) -> str:
    return "memory.max" if (root / "cgroup.controllers").exists() else "memory.limit_in_bytes"


@pytest.mark.parametrize("args", [["limit", "web", "-5M"], ["shrink", "web", "-5M"]], ids=" ".join)
def test_a_negative_size_is_said_to_be_a_bad_size(fake_root, args):
    assert run_cli(fake_root, "create", "web", "--limit", "1G").exit_code == 0
    result = run_cli(fake_root, *args)
    assert result.exit_code == 2, result
    assert result.stderr == f"memcgctl: bad size '-5M': a size cannot be negative (see 'memcgctl {args[0]} -h')\n"
    assert (fake_root / "web" / limit_file(fake_root)).read_text().strip() == str(1024 * MIB)


@pytest.mark.parametrize("name", [" ", "  ", "batch/ /job", "\t"])
def test_a_name_of_blanks_is_refused(fake_root, name):
    result = run_cli(fake_root, "create", "-p", name)
    assert result.exit_code == 2, result
    assert result.stderr == f"memcgctl: group '{name}': a group name cannot be only blanks\n".replace("\t", "\\t")
    assert [path.name for path in fake_root.iterdir() if path.is_dir()] == []


def test_a_newline_in_a_new_name_is_refused(fake_root):
    result = run_cli(fake_root, "create", "a\nb")
    assert result.exit_code == 2
    assert result.stderr == "memcgctl: group 'a\\nb': a group name cannot contain NUL or newline\n"
    assert [path.name for path in fake_root.iterdir() if path.is_dir()] == []


@pytest.fixture
def newline_group(fake_root):
    assert run_cli(fake_root, "create", "made").exit_code == 0
    os.rename(fake_root / "made", fake_root / "a\nb")
    return fake_root


def test_a_group_listed_with_an_escaped_newline_is_named_so(newline_group):
    listed = run_cli(newline_group, "stat")
    assert listed.exit_code == 0 and "a\\nb " in listed.stdout
    limited = run_cli(newline_group, "limit", "a\\nb", "100M")
    assert limited.exit_code == 0, limited
    assert (newline_group / "a\nb" / limit_file(newline_group)).read_text().strip() == str(100 * MIB)
    detail = run_cli(newline_group, "stat", "a\\nb", "--detail")
    assert detail.exit_code == 0 and detail.stdout.startswith("a\\nb  (cgroup v")
    assert run_cli(newline_group, "delete", "a\\nb").exit_code == 0
    assert not (newline_group / "a\nb").exists()


def test_a_spelling_no_group_has_is_still_no_such_group(newline_group):
    result = run_cli(newline_group, "limit", "a\\nc", "100M")
    assert result.exit_code == 66
    assert result.stderr.startswith("memcgctl: group a\\\\nc: no such group")
    assert (newline_group / "a\nb" / limit_file(newline_group)).read_text().strip() in ("max", "9223372036854771712")
