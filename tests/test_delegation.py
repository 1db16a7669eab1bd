"""Issue 13 on the real kernel, v1 here and v2 in the VM: subtrees of the
test's own memory cgroup delegated (chowned) to nobody, and what root's
memcgctl does in them.  Fake-root cases are in test_security.py.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
from security_helpers import GIB, MIB, TOP, check_deep_tree_commands, make_deep_tree, record_for
from unprivileged import NOBODY, as_nobody, memcgctl_as_nobody, needs_root_and_setpriv, nobody_directory, remove_tree

from memcgctl.kernel.discovery import build_fake_root, open_hierarchy
from memcgctl.operations.shrink import shrink
from memcgctl.safety.journal import Journal
from memcgctl.sizes import parse_target

from conftest import run_cli

pytestmark = needs_root_and_setpriv()


def test_a_fake_roots_record_never_reaches_the_real_hierarchy(kernel_root, journal_directory, tmp_path):
    if kernel_root.version != 1:
        pytest.skip("the journal restores v1 limits only")
    assert run_cli(kernel_root.path, "create", "victim", "--limit", "1G").exit_code == 0
    fake = tmp_path / "swap" / "cg"
    build_fake_root(fake, 1)
    run_cli(fake, "create", "victim", "--limit", "1G")
    record_for(fake, journal_directory, "victim", str(8 * MIB))
    # The attacker swaps the fake root for a symlink to the real group's root.
    remove_tree(fake)
    fake.symlink_to(kernel_root.path)
    for root in (kernel_root.path, fake):
        for args in (["stat", "--json", "victim"], ["recover"], ["limit", "victim"]):
            result = run_cli(root, *args)
            assert "restored" not in result.stderr
            assert kernel_root.read("victim", "memory.limit_in_bytes") == str(GIB)
    assert len(list(journal_directory.glob("*.restore"))) == 1


def test_a_stale_record_for_a_remade_group_is_dropped_with_a_message(kernel_root, journal_directory):
    if kernel_root.version != 1:
        pytest.skip("the journal restores v1 limits only")
    assert run_cli(kernel_root.path, "create", "web", "--limit", "100M").exit_code == 0
    record_for(kernel_root.path, journal_directory, "web", str(100 * MIB))
    # Removed and made again by another tool (systemd, a container runtime).
    (kernel_root.path / "web").rmdir()
    (kernel_root.path / "web").mkdir()
    result = run_cli(kernel_root.path, "recover")
    assert result.exit_code == 0
    assert "dropped a journal record that would restore 104857600" in result.stderr
    assert "the group was removed and made again; nothing was written" in result.stderr
    assert int(kernel_root.read("web", "memory.limit_in_bytes")) > GIB  # still unlimited
    assert list(journal_directory.glob("*.restore")) == []


def delegate(kernel_root, name: str) -> Path:
    """A group of our test root, delegated to nobody (directory and files)."""
    assert run_cli(kernel_root.path, "create", name).exit_code == 0
    path = kernel_root.path / name
    for each in [path, *path.iterdir()]:
        os.chown(each, NOBODY.pw_uid, NOBODY.pw_gid)
    return path


def test_a_group_renamed_during_a_shrink_gets_its_own_limit_back(kernel_root, journal_directory, tmp_path):
    if kernel_root.version != 1:
        pytest.skip("only v1 lowers a limit for a shrink; v2 never touches memory.max")
    delegated = delegate(kernel_root, "user")
    for name, limit in (("user/mine", "1G"), ("user/admin", "512M")):
        assert run_cli(kernel_root.path, "create", name, "--limit", limit).exit_code == 0
    cache = tmp_path / "cache"
    kernel_root.fill_page_cache("user/mine", cache, 16)
    backend = open_hierarchy(kernel_root.path, journal=Journal(journal_directory))
    real_read_usage = backend.read_usage
    calls = []

    def user_swaps_groups(group):
        calls.append(group)
        if len(calls) == 2:  # she sees the lowered limit: hers away, the admin's in its place
            swapped = as_nobody(["sh", "-c", f"cd {shlex.quote(str(delegated))} && mv mine away && mv admin mine"])
            assert swapped.returncode == 0, swapped.stderr
        return real_read_usage(group)

    backend.read_usage = user_swaps_groups
    result = shrink(backend, backend.group("user/mine"), parse_target("1M"))
    assert len(calls) >= 2
    assert result.after <= 16 * MIB
    assert kernel_root.read("user/away", "memory.limit_in_bytes") == str(GIB)  # hers, restored
    assert kernel_root.read("user/mine", "memory.limit_in_bytes") == str(512 * MIB)  # the admin's, untouched
    assert list(journal_directory.glob("*.restore")) == []
    cache.unlink()


def test_a_delegated_subtree_as_root_needs_trust_root(kernel_root):
    delegated = delegate(kernel_root, "user")
    refused = run_cli(delegated, "stat", "--json")
    assert refused.exit_code == 77
    assert f"owned by uid {NOBODY.pw_uid}" in refused.stderr
    trusted = run_cli(delegated, "--trust-root", "create", "job")
    assert trusted.exit_code == 0, trusted.stderr
    assert (delegated / "job").is_dir()


def test_a_tree_deeper_than_path_max_on_the_kernel(kernel_root):
    backend = open_hierarchy(kernel_root.path)
    try:
        make_deep_tree(backend, TOP)
        check_deep_tree_commands(kernel_root.path)
    finally:
        remove_deep(kernel_root.path / TOP)


def remove_deep(path: Path) -> None:
    """rmdir PATH and everything under it, through directory fds (cleanup)."""
    if not path.exists():
        return
    parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _remove_at(parent, path.name)
    finally:
        os.close(parent)


def _remove_at(parent: int, name: str) -> None:
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=parent)
    try:
        for entry in os.scandir(fd):
            if entry.is_dir(follow_symlinks=False):
                _remove_at(fd, entry.name)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent)


def test_an_unreadable_delegated_group_as_nobody_exits_77(code, kernel_root):
    assert run_cli(kernel_root.path, "create", "closed").exit_code == 0
    (kernel_root.path / "closed").chmod(0o700)
    journal = nobody_directory()
    try:
        result = memcgctl_as_nobody(code, "--root", str(kernel_root.path), "stat", "--json", "closed",
                                    env={"MEMCGCTL_JOURNAL_DIR": str(journal)})
    finally:
        remove_tree(journal)
    assert result.returncode == 77, result.stderr
    assert f"({kernel_root.path / 'closed'})" in result.stderr


@pytest.mark.parametrize("args", [["limit", "web", "300M"], ["shrink", "web", "1M"], ["empty", "web"],
                                  ["create", "new"], ["delete", "web"], ["attach", "web", "PID"]],
                         ids=" ".join)
def test_a_dry_run_nobody_may_not_carry_out_fails_as_the_real_run(code, kernel_root, tmp_path, args):
    """README: anything that can be checked without writing fails the same way
    with and without -n.  Write permission can: -n printed the plan, exit 0."""
    assert run_cli(kernel_root.path, "create", "web", "--limit", "1G").exit_code == 0
    kernel_root.fill_page_cache("web", tmp_path / "cache", 8)  # above the shrink target
    args = [str(os.getpid()) if arg == "PID" else arg for arg in args]
    journal = nobody_directory()
    try:
        outcomes = [memcgctl_as_nobody(code, "--root", str(kernel_root.path), *dry_run, *args,
                                       env={"MEMCGCTL_JOURNAL_DIR": str(journal)}) for dry_run in (["-n"], [])]
    finally:
        remove_tree(journal)
    dry, real = outcomes
    assert (dry.returncode, dry.stdout) == (77, ""), dry.stderr
    assert dry.stderr == real.stderr and real.returncode == 77
    assert dry.stderr.startswith("memcgctl: ") and "permission denied" in dry.stderr
    limit_file = "memory.limit_in_bytes" if kernel_root.version == 1 else "memory.max"
    assert kernel_root.read("web", limit_file) == str(1 << 30)
    assert sorted(path.name for path in kernel_root.path.iterdir() if path.is_dir()) == ["web"]
