"""Issue 13: an unprivileged user must never steer root's memcgctl.

Each test plays `nobody` as the attacker (setpriv), in fake roots under a
directory nobody owns, or in a subtree of the test's own memory cgroup
delegated (chowned) to nobody.  Where the original attack needed a race,
the swap is driven from a hook at the exact moment, so the test is
deterministic.  Issue 9 defects 10 (probes outside the error boundary) and
14 (unreadable journal record) are here too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from security_helpers import GIB, MIB, TOP, check_deep_tree_commands, make_deep_tree, record_for
from unprivileged import (
    NOBODY,
    SYSTEM_PYTHON,
    as_nobody,
    memcgctl_as_nobody,
    needs_root_and_setpriv,
    nobody_directory,
    remove_tree,
)

from memcgctl.errors import PermissionDenied
from memcgctl.kernel.discovery import build_fake_root, open_hierarchy
from memcgctl.kernel.fs import Group
from memcgctl.operations.shrink import shrink
from memcgctl.safety.journal import Journal
from memcgctl.sizes import parse_target

from conftest import run_cli, run_process

pytestmark = needs_root_and_setpriv()


def nobody_fake_root(attacker_dir: Path, code: Path, version: int = 1) -> Path:
    """A fake root that nobody built (the README's init-fake), with group web."""
    root = attacker_dir / "cg"
    env = {"MEMCGCTL_JOURNAL_DIR": str(attacker_dir / "journal")}
    built = memcgctl_as_nobody(code, "init-fake", "--cgroup-version", str(version), str(root), env=env)
    assert built.returncode == 0, built.stderr
    created = memcgctl_as_nobody(code, "--root", str(root), "create", "web", "--limit", "1G", env=env)
    assert created.returncode == 0, created.stderr
    return root


def victim_file(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    return victim


# --- finding 1: symlinks, FIFOs, roots and init-fake in another user's directory ----------


def test_init_fake_refuses_a_directory_someone_else_made():
    # The README's `init-fake /tmp/cg`, after nobody made /tmp/cg first.
    planted = Path(f"/tmp/memcgctl-planted-{uuid.uuid4().hex[:8]}")
    as_nobody(["mkdir", str(planted)])
    try:
        result = run_cli(None, "init-fake", "--cgroup-version", "1", str(planted))
        assert result.exit_code == 2
        assert "the directory exists: init-fake makes a new one" in result.stderr
        assert list(planted.iterdir()) == []  # nothing built into it
        assert planted.stat().st_uid == NOBODY.pw_uid
    finally:
        remove_tree(planted)


def test_init_fake_refuses_to_build_under_a_directory_another_user_owns(attacker_dir):
    result = run_cli(None, "init-fake", str(attacker_dir / "cg"))
    assert result.exit_code == 77
    assert f"{attacker_dir} is owned by uid {NOBODY.pw_uid}" in result.stderr
    assert "--trust-root" in result.stderr
    assert not (attacker_dir / "cg").exists()


def test_root_refuses_a_root_another_user_owns_unless_trusted(attacker_dir, code):
    root = nobody_fake_root(attacker_dir, code)
    refused = run_cli(root, "stat", "--json", "web")
    assert refused.exit_code == 77
    assert f"is owned by uid {NOBODY.pw_uid}" in refused.stderr and "--trust-root" in refused.stderr
    assert refused.stdout == ""
    trusted = run_cli(root, "--trust-root", "stat", "--json", "web")
    assert trusted.exit_code == 0, trusted.stderr
    assert json.loads(trusted.stdout)[0]["limit"] == GIB


def test_root_refuses_a_root_others_can_write(tmp_path):
    root = tmp_path / "cg"
    build_fake_root(root, 1)
    root.chmod(0o777)
    result = run_cli(root, "stat")
    assert result.exit_code == 77
    assert "can be written by group or others" in result.stderr


def test_a_planted_symlink_is_never_followed_even_in_a_trusted_root(attacker_dir, code, tmp_path):
    root = nobody_fake_root(attacker_dir, code)
    victim = victim_file(tmp_path)
    target = root / "web" / "memory.force_empty"
    planted = as_nobody(["sh", "-c", f"rm {shlex.quote(str(target))} && ln -s {shlex.quote(str(victim))} "
                                     f"{shlex.quote(str(target))}"])
    assert planted.returncode == 0, planted.stderr
    result = run_cli(root, "--trust-root", "empty", "web")
    assert result.exit_code == 77
    assert "refused" in result.stderr and "symbolic link" in result.stderr
    assert victim.read_text() == "precious"
    # A symlinked group directory is no way around it.
    as_nobody(["sh", "-c", f"mkdir {shlex.quote(str(tmp_path / 'x'))} 2>/dev/null; "
                           f"ln -s {shlex.quote(str(tmp_path))} {shlex.quote(str(root / 'out'))}"])
    assert run_cli(root, "--trust-root", "empty", "out").exit_code == 2
    assert victim.read_text() == "precious"


def test_a_hard_link_to_a_file_outside_is_refused(tmp_path):
    root = tmp_path / "cg"
    build_fake_root(root, 1)
    run_cli(root, "create", "web")
    victim = victim_file(tmp_path)
    (root / "web" / "memory.force_empty").unlink()
    os.link(victim, root / "web" / "memory.force_empty")
    result = run_cli(root, "empty", "web")
    assert result.exit_code == 77
    assert "hard link" in result.stderr
    assert victim.read_text() == "precious"


def test_a_fifo_in_place_of_a_limit_is_refused_at_once(attacker_dir, code):
    root = nobody_fake_root(attacker_dir, code)
    limit = root / "web" / "memory.limit_in_bytes"
    planted = as_nobody(["sh", "-c", f"rm {shlex.quote(str(limit))} && mkfifo {shlex.quote(str(limit))}"])
    assert planted.returncode == 0, planted.stderr
    (root / "web" / "memory.usage_in_bytes").chmod(0o666)
    as_nobody(["sh", "-c", f"echo {500 * MIB} > {shlex.quote(str(root / 'web' / 'memory.usage_in_bytes'))}"])
    started = time.monotonic()
    result = run_process(root, "--trust-root", "shrink", "web", "1M")
    assert time.monotonic() - started < 20
    assert result.returncode == 77, result.stderr
    assert "not a regular file" in result.stderr
    assert stat.S_ISFIFO(os.lstat(limit).st_mode)


def test_a_fifo_swapped_in_before_the_restore_never_blocks_it(fake_v1, journal_directory):
    """The original: a FIFO in place of memory.limit_in_bytes when the restore
    opens it blocked the open with SIGTERM/SIGINT/SIGALRM masked.  The swap
    happens from a hook right after the lowering write."""
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    usage = fake_v1 / "web" / "memory.usage_in_bytes"
    usage.write_text(str(500 * MIB))
    backend = open_hierarchy(fake_v1, journal=Journal(journal_directory))
    limit = fake_v1 / "web" / "memory.limit_in_bytes"
    real_read_usage = backend.read_usage
    calls = []

    def swap_after_lowering(group):
        calls.append(group)
        if len(calls) == 2:  # the first read after the lowering write
            limit.unlink()
            os.mkfifo(limit)
        return real_read_usage(group)

    backend.read_usage = swap_after_lowering
    started = time.monotonic()
    with pytest.raises(PermissionDenied, match="not a regular file"):
        shrink(backend, backend.group("web"), parse_target("1M"))
    assert time.monotonic() - started < 5
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) & {signal.SIGTERM, signal.SIGINT, signal.SIGALRM} == set()
    # The limit is still lowered: the record stays for recover to try again.
    assert len(list(journal_directory.glob("*.restore"))) == 1
    limit.unlink()
    limit.write_text(str(MIB))
    assert "restored 1073741824" in run_cli(fake_v1, "recover").stderr
    assert limit.read_text() == str(GIB)


# --- finding 2: journal records bound to their root, group directory and boot --------------


@pytest.mark.parametrize("changes, why", [
    ({"file": "cgroup.procs", "path": "{group}/cgroup.procs"}, "not a limit of its group"),
    ({"value": "0x10"}, "is not a limit"),
    ({"value": "1 2"}, "is not a limit"),
    ({"group": "../x"}, "is not a group name"),
    ({"root": "/sys/fs/cgroup/memory"}, "made for /sys/fs/cgroup/memory"),
])
def test_a_record_is_replayed_only_into_a_limit_and_only_as_a_number(fake_v1, journal_directory, changes, why):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    procs = fake_v1 / "web" / "cgroup.procs"
    changes = {key: value.format(group=fake_v1 / "web") for key, value in changes.items()}
    record_for(fake_v1, journal_directory, "web", str(MIB), changes)
    result = run_cli(fake_v1, "limit", "web", "2G")
    assert result.exit_code == 74
    assert "does not match its group" in result.stderr and why in result.stderr
    assert "rm " in result.stderr  # says how to clear it
    assert (fake_v1 / "web" / "memory.limit_in_bytes").read_text() == str(GIB)
    assert procs.read_text() == ""


def test_a_record_from_before_a_reboot_is_dropped(fake_v1, journal_directory):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    record_for(fake_v1, journal_directory, "web", str(MIB), {"boot": "00000000-0000-0000-0000-000000000000"})
    result = run_cli(fake_v1, "stat", "web")
    assert "made before the last reboot" in result.stderr
    assert (fake_v1 / "web" / "memory.limit_in_bytes").read_text() == str(GIB)
    assert list(journal_directory.glob("*.restore")) == []


# --- finding 3: the journal directory, opened once and checked up to / ---------------------


def test_a_journal_directory_under_another_users_directory_is_refused(attacker_dir, fake_v1, monkeypatch):
    journal = attacker_dir / "journal"
    as_nobody(["mkdir", "-p", str(journal)])
    monkeypatch.setenv("MEMCGCTL_JOURNAL_DIR", str(journal))
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    (fake_v1 / "web" / "memory.usage_in_bytes").write_text(str(500 * MIB))
    result = run_cli(fake_v1, "shrink", "web", "1M")
    assert result.exit_code == 77
    assert "no one else can write" in result.stderr or f"owned by uid {NOBODY.pw_uid}" in result.stderr
    assert (fake_v1 / "web" / "memory.limit_in_bytes").read_text() == str(GIB)
    root_made = attacker_dir / "rootmade"
    root_made.mkdir(mode=0o700)  # ours, but nobody can rename it away and put a symlink there
    monkeypatch.setenv("MEMCGCTL_JOURNAL_DIR", str(root_made))
    result = run_cli(fake_v1, "shrink", "web", "1M")
    assert result.exit_code == 77
    assert f"{attacker_dir} is owned by uid {NOBODY.pw_uid}" in result.stderr


def test_a_journal_directory_swapped_after_it_was_opened_is_not_used(fake_v1, tmp_path):
    """The review's flip, made deterministic: once open, the journal is used
    through its fd; a symlink put in its place leads nowhere."""
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    backend = open_hierarchy(fake_v1)
    web = backend.group("web")
    directory = tmp_path / "journal"
    directory.mkdir(mode=0o700)
    journal = Journal(directory)
    assert journal.pending(web.path) is None  # opened and checked now
    planted = tmp_path / "planted"
    planted.mkdir(mode=0o700)
    other = Journal(planted)
    other.record(web.path, web.path / "memory.limit_in_bytes", str(MIB), (str(MIB),), identity=backend.fs.identity(web))
    directory.rename(tmp_path / "journal-away")
    directory.symlink_to(planted)
    assert journal.pending(web.path) is None  # the planted record is not seen
    journal.record(web.path, web.path / "memory.limit_in_bytes", str(GIB), (str(MIB),),
                   identity=backend.fs.identity(web))
    assert len(list((tmp_path / "journal-away").glob("*.restore"))) == 1
    with journal.locked(web.path):
        assert len(list((tmp_path / "journal-away").glob("*.lock"))) == 1
    assert list(planted.glob("*.lock")) == []
    assert len(list(planted.glob("*.restore"))) == 1  # the planted record, never applied
    journal.close()


# Finding 4 (the v1 rename race), the delegated-subtree and real-kernel cases of
# findings 1, 2, 8 and defect 10 are in test_delegation.py, which runs on cgroup
# v2 in the VM too.


# --- finding 5: completion inserts a hostile group name quoted, in bash, zsh and fish ------

HOSTILE = "pwn;id>sec-pwned"


@pytest.fixture
def hostile_world(tmp_path):
    from test_completion import World

    world = World(tmp_path)
    assert run_cli(world.tree, "create", HOSTILE).exit_code == 0
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    return world, workdir


def test_bash_completion_quotes_the_name(hostile_world):
    from test_completion import bash_complete

    world, _ = hostile_world
    assert bash_complete(["stat", "pw"], world.env) == [shlex.quote(HOSTILE).replace("'", "")
                                                         .replace(";", "\\;").replace(">", "\\>")]


def run_typed_line(child, typed: str) -> str:
    """Type TYPED, TAB, Enter; what the shell's `echo` of the status says."""
    child.send(typed + "\t")
    child.expect_exact("sec-pwned")  # the completion is on the line (the shell echoes it)
    child.send("\r")
    child.sendline("echo RC$((0+0))=$?")
    child.expect(r"RC0=(\d+)")
    return child.match.group(1)


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_a_completed_hostile_name_runs_nothing_when_entered(hostile_world, shell):
    import shutil

    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    from test_completion import ZSH_SETUPS, bash_session, zsh_session

    world, workdir = hostile_world
    child = bash_session(world.env) if shell == "bash" else zsh_session(world.env, ZSH_SETUPS["fpath"])
    try:
        child.sendline(f"cd {shlex.quote(str(workdir))}")
        status = run_typed_line(child, "memcgctl stat pw")
    finally:
        child.close(force=True)
    assert status == "0"  # stat of the group itself succeeded
    assert list(workdir.iterdir()) == []  # `id>sec-pwned` did not run


def test_fish_offers_the_name_and_inserts_it_escaped(hostile_world):
    import shutil

    if shutil.which("fish") is None:
        pytest.skip("fish is not installed")
    from test_completion import FISH_SETUPS, fish_complete

    world, workdir = hostile_world
    assert fish_complete(["stat", "pw"], world.env, "autoload") == [HOSTILE]
    # What fish inserts for that candidate is its own escaping of it.
    script = (f"{FISH_SETUPS['autoload']}\ncd {shlex.quote(str(workdir))}\n"
              "set -l c (complete -C 'memcgctl stat pw' | string split -f1 \\t)\n"
              "eval memcgctl stat (string escape -- $c); echo RC=$status\n")
    completed = subprocess.run(["fish", "--no-config", "-c", script], env=world.env, capture_output=True,
                               text=True, stdin=subprocess.DEVNULL, timeout=30)
    assert "RC=0" in completed.stdout, completed.stderr
    assert list(workdir.iterdir()) == []


# --- finding 6: control characters never reach the terminal raw ------------------------

SNEAKY = "job\r\x1b[2Kmemcgctl says all is well\x1b[0m"


def test_control_characters_in_names_are_escaped_everywhere(fake_v1):
    assert run_cli(fake_v1, "create", "-p", f"batch/{SNEAKY}").exit_code == 0
    outputs = {
        "-n delete -r": run_cli(fake_v1, "-n", "delete", "-r", "batch"),
        "stat": run_cli(fake_v1, "stat"),
        "tree": run_cli(fake_v1, "tree"),
        "-v create": run_cli(fake_v1, "-v", "create", f"{SNEAKY}2"),
        "error": run_cli(fake_v1, "limit", f"batch/{SNEAKY}", "1k", "--swap", "xx"),
        "missing": run_cli(fake_v1, "stat", f"{SNEAKY}3"),
    }
    for name, result in outputs.items():
        for text in (result.stdout, result.stderr):
            assert "\r" not in text and "\x1b" not in text, (name, text)
    deleted = outputs["-n delete -r"].stdout.splitlines()
    assert deleted[0] == "rmdir " + "$'" + str(fake_v1 / "batch") + "/job\\r\\E[2Kmemcgctl says all is well\\E[0m'"
    assert run_process(fake_v1, "-n", "delete", "-r", "batch").returncode == 0
    # The shell reads the line back as the very path.
    echoed = subprocess.run(["bash", "-c", deleted[0].replace("rmdir ", "printf %s ", 1)], capture_output=True,
                            check=True).stdout
    assert echoed == os.fsencode(fake_v1 / "batch" / SNEAKY)
    # For a person, each character is escaped where it stands (escape.printable).
    assert "    job\\r\\x1b[2Kmemcgctl says all is well\\x1b[0m  " in outputs["tree"].stdout
    assert "batch/job\\r\\x1b[2K" in outputs["stat"].stdout
    assert outputs["missing"].stderr.startswith("memcgctl: group job\\r\\x1b[2Kmemcgctl says all is well\\x1b[0m3: "
                                                "no such group (/")
    assert (fake_v1 / "batch" / SNEAKY).is_dir()


# --- finding 7: `-n run` prints shell that runs what the real run would ------------------


def test_dry_run_of_run_prints_quoted_shell_and_echo_dollar_dollar(fake_v1):
    run_cli(fake_v1, "create", "web")
    argv = ["sh", "-c", 'echo safe; touch "$1"', "_", "x;id"]
    result = run_cli(fake_v1, "-n", "run", "web", "--", *argv)
    assert result.exit_code == 0, result.stderr
    attach_line, exec_line = result.stdout.splitlines()
    procs = fake_v1 / "web" / "cgroup.procs"
    assert attach_line == f"echo $$ > {procs}"
    assert shlex.split(exec_line) == ["exec", *argv]
    assert procs.read_text() == ""  # a dry run moved nothing
    shell = subprocess.run(["bash", "-c", f"{attach_line}; echo $$"], capture_output=True, text=True, check=True)
    assert procs.read_text().strip() == shell.stdout.strip()  # the shell that ran the line moved itself


# --- finding 8: trees deeper than PATH_MAX ---------------------------------------------

def test_a_tree_deeper_than_path_max_on_a_fake_root(fake_v1):
    make_deep_tree(open_hierarchy(fake_v1), TOP)
    check_deep_tree_commands(fake_v1)


# --- finding 9: a user's journal when XDG_RUNTIME_DIR is unset ---------------------------


def test_a_users_journal_is_not_the_tmp_directory_anyone_can_make_first(attacker_dir, code):
    root = nobody_fake_root(attacker_dir, code)
    home = attacker_dir / "home"
    as_nobody(["mkdir", "-m", "700", str(home)])
    planted = Path(f"/tmp/memcgctl-{NOBODY.pw_uid}")
    existed = planted.exists()
    if not existed:
        planted.mkdir(mode=0o777)  # made first by another user (root plays her)
    try:
        as_nobody(["sh", "-c", f"echo {500 * MIB} > {shlex.quote(str(root / 'web' / 'memory.usage_in_bytes'))}"])
        result = memcgctl_as_nobody(code, "--root", str(root), "shrink", "web", "1M", env={"HOME": str(home)})
        # A fake usage never goes down (75), but the shrink locked and journaled in nobody's home.
        assert result.returncode == 75, result.stderr
        assert "target not reached" in result.stderr
        assert (home / ".cache" / "memcgctl").is_dir()
        assert len(list((home / ".cache" / "memcgctl").glob("*.lock"))) == 1
        assert (root / "web" / "memory.limit_in_bytes").read_text() == str(GIB)
        no_home = memcgctl_as_nobody(code, "--root", str(root), "shrink", "web", "1M",
                                     env={"HOME": "/nonexistent"})
        assert no_home.returncode == 77
        assert no_home.stderr.startswith("memcgctl: use journal directory: ")
        assert "--journal-dir" in no_home.stderr or "permission denied" in no_home.stderr
    finally:
        if not existed:
            with contextlib.suppress(OSError):
                planted.rmdir()


# --- issue 9, defect 10: unreadable trees as nobody: exit 77, the file named ---------------


def test_unreadable_groups_as_nobody_exit_77_naming_the_file(code, tmp_path):
    readable = Path(tempfile.mkdtemp(prefix="memcgctl-unreadable-"))
    readable.chmod(0o755)
    try:
        root = readable / "cg"
        build_fake_root(root, 1)
        run_cli(root, "create", "web", "open")
        (root / "web").chmod(0o700)  # root's group, closed to others
        (root / "open" / "memory.stat").chmod(0o600)
        journal = nobody_directory()
        env = {"MEMCGCTL_JOURNAL_DIR": str(journal)}
        cases = [
            (["stat", "--json", "web"], root / "web"),
            (["stat", "--json", "web/x"], root / "web"),
            (["stat", "--json", "open"], root / "open" / "memory.stat"),
            (["stat", "--json"], root / "web"),
            (["tree"], root / "web"),
            (["create", "new"], root / "new"),
            (["limit", "open", "1G"], root / "open" / "memory.limit_in_bytes"),
        ]
        for args, named in cases:
            result = memcgctl_as_nobody(code, "--root", str(root), *args, env=env)
            assert result.returncode == 77, (args, result.stderr)
            assert "Traceback" not in result.stderr
            assert result.stderr.startswith("memcgctl: ") and result.stderr.count("\n") == 1, result.stderr
            assert f"({named})" in result.stderr, (args, result.stderr)
        assert not (root / "new").exists()
    finally:
        remove_tree(readable)
        remove_tree(journal)


# --- issue 9, defect 14: an unreadable journal record ------------------------------------


def test_recover_reports_an_unreadable_record_and_says_how_to_clear_it(fake_v1, journal_directory):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    journal = Journal(journal_directory)
    record = journal_directory / journal._record_name(fake_v1 / "web")
    record.write_text("{not json")
    result = run_cli(fake_v1, "recover")
    assert result.exit_code == 74
    assert f"rm {record}" in result.stderr and "unreadable record" in result.stderr
    assert run_cli(fake_v1, "stat", "web").exit_code == 0  # reading is not blocked
    changed = run_cli(fake_v1, "limit", "web", "2G")
    assert changed.exit_code == 74 and f"rm {record}" in changed.stderr
    assert (fake_v1 / "web" / "memory.limit_in_bytes").read_text() == str(GIB)
    record.unlink()  # as the message says
    assert run_cli(fake_v1, "recover").exit_code == 0
    assert run_cli(fake_v1, "limit", "web", "2G").exit_code == 0
    assert (fake_v1 / "web" / "memory.limit_in_bytes").read_text() == str(2 * GIB)


def test_the_python_that_runs_as_nobody_is_this_code(code):
    completed = as_nobody([SYSTEM_PYTHON, "-c", "import memcgctl; print(memcgctl.__file__)"],
                          env={"PYTHONPATH": str(code)}, cwd="/")
    assert completed.stdout.strip() == str(code / "memcgctl" / "__init__.py")


# --- the fast readers and walkers of top, export and init-fake take the same path ----------


def test_top_and_export_reads_refuse_a_planted_link_fifo_or_hard_link(fake_v1, tmp_path):
    run_cli(fake_v1, "create", "web")
    backend = open_hierarchy(fake_v1)
    web = backend.group("web")
    victim = victim_file(tmp_path)
    names = ("memory.usage_in_bytes", "memory.stat", "memory.failcnt")
    (fake_v1 / "web" / "memory.usage_in_bytes").unlink()
    (fake_v1 / "web" / "memory.usage_in_bytes").symlink_to(victim)
    with pytest.raises(PermissionDenied, match="symbolic link"):
        backend.fs.read_group_files(web.path, names)
    (fake_v1 / "web" / "memory.usage_in_bytes").unlink()
    os.mkfifo(fake_v1 / "web" / "memory.usage_in_bytes")
    started = time.monotonic()
    with pytest.raises(PermissionDenied, match="not a regular file"):
        backend.fs.read_group_files(web.path, names)
    assert time.monotonic() - started < 5  # refused, never waiting for a writer
    (fake_v1 / "web" / "memory.usage_in_bytes").unlink()
    os.link(victim, fake_v1 / "web" / "memory.usage_in_bytes")
    with pytest.raises(PermissionDenied, match="hard link"):
        backend.fs.read_group_files(web.path, names)
    # What the user of top sees: one line naming the file, exit 77, no traceback.
    result = run_cli(fake_v1, "top", "-b", "-n", "1")
    assert result.exit_code == 77, result.stderr
    assert result.stderr.startswith("memcgctl: ") and "hard link" in result.stderr
    assert "Traceback" not in result.stderr
    assert victim.read_text() == "precious"


def test_fast_reads_of_a_linked_group_directory_are_refused(fake_v1, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "memory.usage_in_bytes").write_text("123\n")
    (fake_v1 / "out").symlink_to(outside)
    backend = open_hierarchy(fake_v1)
    with pytest.raises(PermissionDenied, match="refused"):
        backend.fs.read_group_files(fake_v1 / "out", ("memory.usage_in_bytes",))


def test_the_quick_walk_never_follows_a_linked_directory(fake_v1, tmp_path):
    run_cli(fake_v1, "create", "-p", "web/a")
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (fake_v1 / "web" / "out").symlink_to(outside)
    backend = open_hierarchy(fake_v1)
    root = backend.group("", must_exist=False)
    names = [group.name for group in backend.fs.descendants_quickly(root)]
    assert names == [group.name for group in backend.fs.descendants(root)] == ["web", "web/a"]
    result = run_cli(fake_v1, "top", "-b", "-n", "1")
    assert result.exit_code == 0, result.stderr
    assert "out" not in result.stdout and "deep" not in result.stdout


def test_a_group_that_is_the_root_directory_is_known_by_its_inode(fake_v1):
    from memcgctl.kernel.fs import resolves_to_root

    run_cli(fake_v1, "create", "web")
    backend = open_hierarchy(fake_v1)
    assert resolves_to_root(backend.fs, Group("self", backend.fs.root))  # however it is named
    assert not resolves_to_root(backend.fs, backend.group("web"))
    assert not resolves_to_root(backend.fs, backend.group("gone", must_exist=False))


def test_a_fake_file_of_init_fake_never_follows_a_planted_link(tmp_path):
    from memcgctl.errors import MemcgError
    from memcgctl.kernel.discovery import plan_fake_root
    from memcgctl.kernel.fs import CgroupFS

    victim = victim_file(tmp_path)
    root = tmp_path / "cg"
    plan = plan_fake_root(root, 1)
    fs = CgroupFS(root, is_kernel=False)
    fs.apply(plan[0])  # MakeDir of the root: made new
    (root / plan[1].path.name).symlink_to(victim)  # planted between two steps
    with pytest.raises(MemcgError) as raised:
        fs.apply(plan[1])
    assert str(root / plan[1].path.name) in str(raised.value)
    assert victim.read_text() == "precious"
    assert (root / plan[1].path.name).is_symlink()


def test_the_exporter_never_follows_or_waits_on_a_planted_daemon_counters_file(fake_v1, journal_directory, tmp_path):
    from memcgctl.daemon.counters import counters_file_name
    from memcgctl.export.daemon_counters import UnreadableCounters, read_daemon_counters

    victim = victim_file(tmp_path)
    planted = journal_directory / counters_file_name(fake_v1)
    planted.symlink_to(victim)
    journal, identity = Journal(journal_directory), (fake_v1.stat().st_dev, fake_v1.stat().st_ino)
    with pytest.raises(UnreadableCounters):
        read_daemon_counters(journal, fake_v1, identity)
    planted.unlink()
    os.mkfifo(planted)
    started = time.monotonic()
    with pytest.raises(UnreadableCounters, match="not a regular file"):
        read_daemon_counters(journal, fake_v1, identity)
    assert time.monotonic() - started < 5
    planted.unlink()
    assert read_daemon_counters(journal, fake_v1, identity) is None  # no file: no daemon
    assert victim.read_text() == "precious"


def test_dry_run_plan_as_json_carries_hostile_names_as_data(fake_v1):
    import json

    name = "we'b\x01$(touch x)"
    result = run_cli(fake_v1, "-n", "--plan-json", "create", "-p", f"a/{name}", "--limit", "1G")
    assert (result.exit_code, result.stderr) == (0, "")
    assert json.loads(result.stdout) == {"plan": [
        {"action": "mkdir", "path": str(fake_v1 / "a")},
        {"action": "mkdir", "path": str(fake_v1 / "a" / name)},
        {"action": "write", "path": str(fake_v1 / "a" / name / "memory.limit_in_bytes"), "value": str(GIB)},
    ]}
    assert not (fake_v1 / "a").exists()
    run = run_cli(fake_v1, "-n", "--plan-json", "run", "--create", "web", "--", "sh", "-c", "echo hi")
    assert json.loads(run.stdout)["plan"][-2:] == [
        {"action": "attach_self", "path": str(fake_v1 / "web" / "cgroup.procs")},
        {"action": "exec", "argv": ["sh", "-c", "echo hi"]}]
    without_n = run_cli(fake_v1, "--plan-json", "create", "web")
    assert (without_n.exit_code, without_n.stdout) == (2, "")
    assert without_n.stderr == "memcgctl: --plan-json: prints what a dry run would do: use it with -n\n"
    assert not (fake_v1 / "web").exists()


def test_dry_run_plan_as_json_is_valid_utf8_for_a_name_that_is_not(fake_v1):
    """A byte that is not UTF-8 was written as a lone surrogate (\\udcff),
    which jq turns into U+FFFD and Python cannot encode: it is \\xff, as in
    stat --json."""
    name = os.fsdecode(b"raw\xffbyte")  # as the kernel's bytes reach Python
    result = subprocess.run([sys.executable, "-m", "memcgctl", "--root", str(fake_v1), "-n", "--plan-json", "create",
                             name], capture_output=True, timeout=60)
    assert (result.returncode, result.stderr) == (0, b"")
    result.stdout.decode("utf-8")  # valid UTF-8: no lone surrogate
    assert b"\\udc" not in result.stdout
    assert json.loads(result.stdout)["plan"] == [{"action": "mkdir", "path": str(fake_v1) + "/raw\\xffbyte"}]
    assert not any(path.name.startswith("raw") for path in fake_v1.iterdir())
