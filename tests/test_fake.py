"""The command line on fake trees: every exit code, dry run, help, and what a
fake root can honestly do (plain files do not reclaim)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from memcgctl.errors import EXIT_CODES, NotAvailable
from memcgctl.kernel.discovery import build_fake_root, open_hierarchy
from memcgctl.kernel.v2 import RECLAIM_CHUNK

from conftest import all_commands, run_cli

MIB = 1024**2


def set_usage(root: Path, group: str, value: int) -> None:
    name = "memory.usage_in_bytes" if (root / "memory.limit_in_bytes").exists() else "memory.current"
    (root / group / name).write_text(f"{value}\n")


def writes(dry_run_output: str) -> list[str]:
    """The shell lines of a dry run, without its comments (what the kernel decides)."""
    return [line for line in dry_run_output.splitlines() if not line.startswith("#")]


def test_fake_shrink_reports_honestly_that_nothing_was_reclaimed(fake_root):
    run_cli(fake_root, "create", "web", "--limit", "1G")
    set_usage(fake_root, "web", 300 * MIB)
    limit_file = "memory.limit_in_bytes" if (fake_root / "memory.limit_in_bytes").exists() else "memory.max"
    before = (fake_root / "web" / limit_file).read_text()
    result = run_cli(fake_root, "shrink", "web", "100M")
    assert result.exit_code == 75
    assert result.stderr.startswith("memcgctl: shrink web: target not reached: 300 MiB -> 300 MiB (target 100 MiB)")
    assert (fake_root / "web" / limit_file).read_text() == before
    if limit_file == "memory.max":  # v2 asked the kernel to reclaim the difference, and never wrote memory.max
        assert (fake_root / "web" / "memory.reclaim").read_text() == str(RECLAIM_CHUNK)  # a piece at a time


def test_v1_shrink_dry_run_shows_lowering_and_restoring(fake_v1):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    set_usage(fake_v1, "web", 300 * MIB)
    result = run_cli(fake_v1, "-n", "shrink", "web", "100M")
    path = fake_v1 / "web" / "memory.limit_in_bytes"
    assert writes(result.stdout) == [f"echo 104857600 > {path}", f"echo 1073741824 > {path}"]


def test_v2_shrink_dry_run_shows_the_reclaim_write(fake_v2):
    run_cli(fake_v2, "create", "web")
    set_usage(fake_v2, "web", 300 * MIB)
    result = run_cli(fake_v2, "-n", "shrink", "web", "80%")
    # 60 MiB to reclaim: the first piece, and the comment says the rest follows
    assert writes(result.stdout) == [f"echo {RECLAIM_CHUNK} > {fake_v2 / 'web' / 'memory.reclaim'}"]
    assert f"# repeated, {RECLAIM_CHUNK} bytes at most a write, while memory.current is above {240 * MIB}" \
        in result.stdout


def test_v2_create_enables_memory_in_each_new_parent(fake_v2):
    (fake_v2 / "cgroup.subtree_control").write_text("")
    result = run_cli(fake_v2, "-n", "create", "-p", "a/b")
    assert result.stdout.splitlines() == [
        f"echo +memory > {fake_v2 / 'cgroup.subtree_control'}",
        f"mkdir {fake_v2 / 'a'}",
        f"echo +memory > {fake_v2 / 'a' / 'cgroup.subtree_control'}",
        f"mkdir {fake_v2 / 'a' / 'b'}",
    ]


def test_v2_limit_below_usage_is_refused_when_the_shrink_fails(fake_v2):
    run_cli(fake_v2, "create", "web")
    set_usage(fake_v2, "web", 300 * MIB)
    refused = run_cli(fake_v2, "limit", "web", "100M")
    assert refused.exit_code == 75
    assert "left as it was" in refused.stderr and "--force" in refused.stderr
    assert (fake_v2 / "web" / "memory.max").read_text() == "max\n"
    forced = run_cli(fake_v2, "limit", "--force", "web", "100M")
    assert forced.exit_code == 0
    assert (fake_v2 / "web" / "memory.max").read_text() == str(100 * MIB)


def test_v2_limit_dry_run_shows_the_shrink_first(fake_v2):
    run_cli(fake_v2, "create", "web")
    set_usage(fake_v2, "web", 300 * MIB)
    result = run_cli(fake_v2, "-n", "limit", "web", "100M")
    assert writes(result.stdout) == [
        f"echo {RECLAIM_CHUNK} > {fake_v2 / 'web' / 'memory.reclaim'}",
        f"echo {100 * MIB} > {fake_v2 / 'web' / 'memory.max'}",
    ]


def test_v1_swap_needs_a_memory_limit(fake_v1):
    run_cli(fake_v1, "create", "web")
    result = run_cli(fake_v1, "limit", "web", "--swap", "1G")
    assert result.exit_code == 2
    assert result.stderr.startswith("memcgctl: set --swap: on cgroup v1 a swap limit needs a memory limit")


def test_attach_threads_writes_the_thread_file(fake_root):
    run_cli(fake_root, "create", "web")
    assert run_cli(fake_root, "attach", "--threads", "web", str(os.getpid())).exit_code == 0
    thread_file = "tasks" if (fake_root / "memory.limit_in_bytes").exists() else "cgroup.threads"
    assert (fake_root / "web" / thread_file).read_text() == str(os.getpid())


def test_attach_bad_pid_is_usage_error_before_anything_moves(fake_root):
    run_cli(fake_root, "create", "web")
    result = run_cli(fake_root, "attach", "web", str(os.getpid()), "abc")
    assert result.exit_code == 2
    assert (fake_root / "web" / "cgroup.procs").read_text() == ""


def test_run_dry_run_shows_the_move_and_the_command(fake_root):
    run_cli(fake_root, "create", "web")
    result = run_cli(fake_root, "-n", "run", "web", "--", "sleep", "1")
    first, second = result.stdout.splitlines()
    assert first.startswith("echo ") and first.endswith(str(fake_root / "web" / "cgroup.procs"))
    assert second == "exec sleep 1"


def test_run_missing_command_is_127_and_a_file_that_cannot_run_126(fake_root, tmp_path):
    run_cli(fake_root, "create", "web")
    result = run_cli(fake_root, "run", "web", "--", "no-such-command-xyz")
    assert result.exit_code == 127
    plain = tmp_path / "plain.txt"
    plain.write_text("not a program")
    assert run_cli(fake_root, "run", "web", "--", str(plain)).exit_code == 126


def test_symlink_out_of_the_root_is_refused(fake_root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (fake_root / "escape").symlink_to(outside)
    for args in (["create", "escape/web"], ["stat", "escape"], ["limit", "escape", "1G"]):
        result = run_cli(fake_root, *args)
        assert result.exit_code == 2, args
        assert "leads outside the cgroup root" in result.stderr
    assert list(outside.iterdir()) == []


def test_a_file_is_not_a_group(fake_root):
    name = "memory.limit_in_bytes" if (fake_root / "memory.limit_in_bytes").exists() else "cgroup.procs"
    assert run_cli(fake_root, "limit", name, "1G").exit_code == 2
    assert run_cli(fake_root, "create", name).exit_code == 2


def test_global_options_work_after_the_command_name_and_from_the_environment(fake_root):
    result = run_cli(None, "create", "web", "-v", "--root", str(fake_root))
    assert (result.exit_code, result.stdout) == (0, "created web\n")
    from_env = run_cli(None, "stat", "--json", env={"MEMCGCTL_ROOT": str(fake_root)})
    assert [row["group"] for row in json.loads(from_env.stdout)] == ["web"]


def test_root_on_the_command_line_beats_the_environment(fake_v1, fake_v2):
    run_cli(fake_v2, "create", "web")
    for args in (["--root", str(fake_v2), "stat", "--json"], ["stat", "--json", "--root", str(fake_v2)]):
        result = run_cli(None, *args, env={"MEMCGCTL_ROOT": str(fake_v1)})
        assert [row["group"] for row in json.loads(result.stdout)] == ["web"], args


@pytest.mark.parametrize(("version", "asked"), [(1, "2"), (2, "1")])
@pytest.mark.parametrize("args", [["stat", "--json", "web"], ["create", "new"], ["limit", "web", "100M"],
                                  ["-n", "limit", "web", "100M"], ["delete", "web"]], ids=" ".join)
def test_a_cgroup_version_the_root_is_not_is_refused(tmp_path, version, asked, args):
    root = tmp_path / "cg"
    build_fake_root(root, version)
    run_cli(root, "create", "web")
    before = sorted(str(path.relative_to(root)) + ":" + path.read_text() for path in root.rglob("*") if path.is_file())
    result = run_cli(root, "--cgroup-version", asked, *args)
    assert result.exit_code == 2, result
    assert result.stdout == ""
    assert result.stderr == (f"memcgctl: use root: this is a cgroup v{version} hierarchy (it has "
                             f"{'cgroup.controllers' if version == 2 else 'memory.limit_in_bytes'}), not v{asked}; "
                             f"nothing was changed ({root})\n")
    after = sorted(str(path.relative_to(root)) + ":" + path.read_text() for path in root.rglob("*") if path.is_file())
    assert after == before and sorted(p.name for p in root.iterdir() if p.is_dir()) == ["web"]


def test_the_cgroup_version_the_root_is_is_accepted(fake_v1):
    run_cli(fake_v1, "create", "web")
    result = run_cli(fake_v1, "--cgroup-version", "1", "stat", "--json", "web")
    assert result.exit_code == 0 and json.loads(result.stdout)[0]["cgroup_version"] == 1


def test_root_that_does_not_exist_is_66_and_a_plain_directory_69(tmp_path):
    assert run_cli(tmp_path / "nope", "stat").exit_code == 66
    result = run_cli(tmp_path, "stat")
    assert result.exit_code == 69
    assert "not a memory cgroup" in result.stderr


def test_no_memory_controller_anywhere_is_69(tmp_path):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
                         "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n")
    with pytest.raises(NotAvailable) as caught:
        open_hierarchy(mountinfo=mountinfo)
    assert caught.value.exit_code == 69
    assert "no cgroup v2 hierarchy with memory" in str(caught.value)


def test_hybrid_host_finds_the_v1_memory_mount(tmp_path):
    unified = tmp_path / "unified"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("pids\n")
    memory = tmp_path / "memory"
    memory.mkdir()
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"35 31 0:32 / {memory} rw - cgroup cgroup rw,memory\n"
                         f"41 31 0:38 / {unified} rw - cgroup2 cgroup2 rw\n")
    backend = open_hierarchy(mountinfo=mountinfo)
    assert (backend.version, backend.fs.root) == (1, memory)


def test_init_fake_builds_a_usable_root_and_refuses_a_full_directory(tmp_path):
    target = tmp_path / "cg"
    assert run_cli(None, "init-fake", "--cgroup-version", "1", str(target)).exit_code == 0
    assert run_cli(target, "create", "web", "--limit", "400M").exit_code == 0
    assert (target / "web" / "memory.limit_in_bytes").read_text() == str(400 * MIB)
    result = run_cli(None, "init-fake", str(target))
    assert result.exit_code == 2
    assert "the directory exists: init-fake makes a new one" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty directory too: someone else may have made it (issue 13, finding 1)
    assert run_cli(None, "init-fake", str(empty)).exit_code == 2
    assert list(empty.iterdir()) == []


def test_init_fake_dry_run_writes_nothing(tmp_path):
    result = run_cli(None, "-n", "init-fake", str(tmp_path / "cg"))
    assert result.stdout.splitlines()[:2] == [f"mkdir {tmp_path / 'cg'}",
                                              f"echo memory > {tmp_path / 'cg' / 'cgroup.controllers'}"]
    assert not (tmp_path / "cg").exists()


def test_tree_shows_groups_under_their_parents(fake_root):
    run_cli(fake_root, "create", "-p", "batch/job1", "web", "--limit", "1G")
    lines = run_cli(fake_root, "tree").stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["batch", "job1", "web"]
    assert lines[1].startswith("    job1")


def test_help_lists_every_exit_code_and_each_command_has_an_example():
    result = run_cli(None, "--help")
    for code, meaning in EXIT_CODES.items():
        assert f"{code:>3}  {meaning}\n" in result.stdout
    for name in all_commands():
        assert "Example" in run_cli(None, name, "--help").stdout, name


@pytest.mark.parametrize("name", sorted(all_commands()))
def test_each_commands_example_is_shown_as_written(name):
    """Examples are kept line by line (click's \\b marker), never reflowed
    into one line after a literal backslash-b (limit, shrink, empty had it)."""
    help_text = run_cli(None, name, "--help").stdout
    assert "\\b" not in help_text
    lines = help_text.splitlines()
    example = next(index for index, line in enumerate(lines) if line.startswith("  Example"))
    assert lines[example].rstrip(":") in ("  Example", "  Examples")  # alone on its line
    assert lines[example + 1].startswith(("    memcgctl ", "    @reboot "))


def test_version_comes_from_the_package_metadata():
    from importlib.metadata import version

    assert run_cli(None, "--version").stdout == f"memcgctl {version('memcgctl')}\n"
