"""What a new user hit (issue 9): the root as a target, limits the kernel rounds
to 0 pages, several groups on one line, kernel file names in a group path,
dry and real runs that disagreed, and the small defects of the command line.

Each test asserts what the user sees and the state that results.  The root
cases on the real kernel use a --root that is a child of the test process's
own memory cgroup (kernel_root), never the host's root.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from memcgctl.errors import EXIT_CODES, MemcgError
from memcgctl.kernel.discovery import open_hierarchy
from memcgctl.kernel.fs import CgroupFS

from conftest import all_commands, run_cli, run_process

MIB = 1024**2
PAGE_SIZE = os.sysconf("SC_PAGESIZE")


def is_v1(root: Path) -> bool:
    return (root / "memory.limit_in_bytes").exists()


def limit_file(root: Path) -> str:
    return "memory.limit_in_bytes" if is_v1(root) else "memory.max"


def set_usage(root: Path, group: str, value: int) -> None:
    name = "memory.usage_in_bytes" if is_v1(root) else "memory.current"
    (root / group / name).write_text(f"{value}\n")


def whole_state(root: Path) -> dict:
    """Every directory and file under ROOT with its content (counters too)."""
    state = {}
    for directory, _, files in os.walk(root):
        state[directory] = None
        for name in files:
            path = os.path.join(directory, name)
            try:
                state[path] = Path(path).read_bytes()
            except OSError:
                state[path] = "unreadable"
    return state


# --- defect 1: the root is never the target of a change -----------------------------

ROOT_SPELLINGS = ["", "/", "//"]


def commands_on(group: str, pid: int) -> list[list[str]]:
    return [["limit", group, "10M"], ["shrink", group, "50%"],
            ["empty", group], ["attach", group, str(pid)], ["create", group], ["create", "-p", group],
            ["delete", group], ["delete", "-r", group]]


@pytest.mark.parametrize("spelling", ROOT_SPELLINGS, ids=["empty", "slash", "double-slash"])
@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry"])
def test_the_root_is_never_a_target_on_fake_roots(fake_root, spelling, dry_run):
    run_cli(fake_root, "create", "web", "--limit", "1G")
    if is_v1(fake_root):
        set_usage(fake_root, "", 500 * MIB)  # so that a shrink of the root would have work to do
    before = whole_state(fake_root)
    for args in commands_on(spelling, os.getpid()):
        result = run_cli(fake_root, *(["-n"] if dry_run else []), *args)
        assert result.exit_code == 2, (args, result.stderr)
        assert result.stdout == ""
        [line] = result.stderr.splitlines()
        assert line.startswith("memcgctl: ") and "the root of the hierarchy is not a target" in line, line
        assert whole_state(fake_root) == before, args


@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry"])
def test_run_in_the_root_is_refused(fake_root, dry_run):
    before = whole_state(fake_root)
    result = run_process(fake_root, *(["-n"] if dry_run else []), "run", "/", "--", "true")
    assert result.returncode == 2
    assert "the root of the hierarchy is not a target" in result.stderr
    assert result.stdout == ""
    assert whole_state(fake_root) == before


def test_a_link_to_the_root_is_not_a_way_round(fake_root):
    (fake_root / "self").symlink_to(".")
    before = whole_state(fake_root)
    for args in (["limit", "self", "10M"], ["empty", "self"], ["delete", "self"]):
        result = run_cli(fake_root, *args)
        assert result.exit_code == 2, (args, result.stderr)
        # A symbolic link is refused as a group name before the root check is reached.
        assert "group 'self': leads outside the cgroup root" in result.stderr
    assert whole_state(fake_root) == before


def test_stat_and_tree_may_still_show_the_root(fake_v1):
    run_cli(fake_v1, "create", "web")
    assert run_cli(fake_v1, "stat", "--json", "/").exit_code == 0
    assert run_cli(fake_v1, "tree").exit_code == 0
    assert run_cli(fake_v1, "limit", "/").exit_code == 0  # showing the root's limits changes nothing


def test_the_root_is_never_a_target_on_the_kernel(kernel_root):
    root = kernel_root.path
    run_cli(root, "create", "web")
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    kernel_root.processes.append(sleeper)
    settings = ["memory.limit_in_bytes", "memory.soft_limit_in_bytes"] if kernel_root.version == 1 else [
        "memory.max", "memory.high", "cgroup.subtree_control"]
    before = {name: (root / name).read_text() for name in settings}
    for spelling in ROOT_SPELLINGS:
        for args in commands_on(spelling, sleeper.pid):
            for dry in ([], ["-n"]):
                result = run_cli(root, *dry, *args)
                assert result.exit_code == 2, (dry, args, result.stderr)
                assert "the root of the hierarchy is not a target" in result.stderr
    ran = run_process(root, "run", "", "--", "true")
    assert ran.returncode == 2
    assert {name: (root / name).read_text() for name in settings} == before
    assert (root / "cgroup.procs").read_text() == ""  # nothing moved into the root
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["web"]


# --- defect 3: a hard limit the kernel would round to 0 pages -----------------------


def test_a_limit_below_one_page_is_refused_unless_forced(fake_root):
    run_cli(fake_root, "create", "web", "--limit", "1G")
    before = (fake_root / "web" / limit_file(fake_root)).read_text()
    for dry in ([], ["-n"]):
        result = run_cli(fake_root, *dry, "limit", "web", "4")
        assert result.exit_code == 2, result.stderr
        [line] = result.stderr.splitlines()
        assert "4 bytes" in line and f"page size {PAGE_SIZE} bytes" in line and "--force" in line, line
    assert (fake_root / "web" / limit_file(fake_root)).read_text() == before
    created = run_cli(fake_root, "create", "small", "--limit", "1k")
    assert created.exit_code == 2
    assert "1024 bytes" in created.stderr
    assert not (fake_root / "small").exists()
    assert run_cli(fake_root, "limit", "--force", "web", "4").exit_code == 0
    assert (fake_root / "web" / limit_file(fake_root)).read_text() == "4"
    assert run_cli(fake_root, "create", "--force", "small", "--limit", "1k").exit_code == 0
    assert (fake_root / "small" / limit_file(fake_root)).read_text() == "1024"


def test_a_limit_of_one_page_or_unlimited_is_fine(fake_root):
    run_cli(fake_root, "create", "web")
    assert run_cli(fake_root, "limit", "web", str(PAGE_SIZE)).exit_code == 0
    assert run_cli(fake_root, "limit", "web", "max").exit_code == 0


def test_kernel_limit_below_one_page_is_refused_unless_forced(kernel_root):
    root = kernel_root.path
    run_cli(root, "create", "web", "--limit", "1G")
    file = "memory.limit_in_bytes" if kernel_root.version == 1 else "memory.max"
    refused = run_cli(root, "limit", "web", "4")
    assert refused.exit_code == 2 and f"page size {PAGE_SIZE}" in refused.stderr
    assert kernel_root.read("web", file) == str(1024 * MIB)
    assert run_cli(root, "create", "tiny", "--limit", "1k").exit_code == 2
    assert not (root / "tiny").exists()
    forced = run_cli(root, "limit", "--force", "web", "4")
    assert forced.exit_code == 0, forced.stderr
    assert kernel_root.read("web", file) == "0"  # what the kernel makes of it


# --- defect 7: several groups on one line: each tried, worst exit code ------------


def test_delete_tries_every_group_and_exits_with_the_worst_code(fake_root):
    run_cli(fake_root, "create", "d1", "d2", "busy")
    (fake_root / "busy" / "cgroup.procs").write_text(f"{os.getpid()}\n")
    result = run_cli(fake_root, "delete", "d1", "nosuch", "busy", "d2")
    assert result.exit_code == 75  # 66 for nosuch, 75 for busy
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("memcgctl: ") and "nosuch" in lines[0] and "no such group" in lines[0]
    assert "busy" in lines[1] and "still has 1 process" in lines[1]
    assert sorted(p.name for p in fake_root.iterdir() if p.is_dir()) == ["busy"]


def test_create_tries_every_group_and_exits_with_the_worst_code(fake_root):
    run_cli(fake_root, "create", "old")
    result = run_cli(fake_root, "create", "e1", "nosuch/x", "old", "e2")
    assert result.exit_code == 73  # 66 for nosuch/x, 73 for old
    assert len(result.stderr.splitlines()) == 2
    assert sorted(p.name for p in fake_root.iterdir() if p.is_dir()) == ["e1", "e2", "old"]
    dry = run_cli(fake_root, "-n", "create", "e3", "nosuch/x", "e4")
    assert dry.exit_code == 66
    assert [line.split()[0] for line in dry.stdout.splitlines() if not line.startswith("#")].count("mkdir") >= 2


# --- defect 8: a kernel file name in a group path --------------------------------

KERNEL_FILE_NAMES = ["x/memory.limit_in_bytes", "memory.max", "x/cgroup.procs/y", "tasks", "a/memory.foo"]


@pytest.mark.parametrize("name", KERNEL_FILE_NAMES)
@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry"])
def test_a_kernel_file_name_in_a_path_is_refused_before_anything_is_made(fake_root, name, dry_run):
    before = whole_state(fake_root)
    result = run_cli(fake_root, *(["-n"] if dry_run else []), "create", "-p", name)
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert "kernel file" in result.stderr
    assert whole_state(fake_root) == before


def test_a_kernel_file_name_on_the_kernel(kernel_root):
    result = run_cli(kernel_root.path, "create", "-p", "x/memory.limit_in_bytes")
    assert result.exit_code == 2
    assert not (kernel_root.path / "x").exists()


# --- defect 11: one plan, dry and real --------------------------------------------


class Other:
    """A kind of action the filesystem layer does not know."""

    def __init__(self, path):
        self.path = path


def test_an_unknown_kind_of_action_is_refused_not_taken_for_another(fake_v1):
    run_cli(fake_v1, "create", "web")
    fs = CgroupFS(fake_v1, is_kernel=False)
    with pytest.raises(TypeError):
        fs.apply(Other(fake_v1 / "web"))
    assert (fake_v1 / "web" / "memory.limit_in_bytes").is_file()


def test_dry_shrink_of_a_group_under_its_target_says_nothing_to_do(fake_root):
    run_cli(fake_root, "create", "web", "--limit", "2G")
    set_usage(fake_root, "web", 300 * MIB)
    before = whole_state(fake_root)
    dry = run_cli(fake_root, "-n", "shrink", "web", "1G")
    assert (dry.exit_code, dry.stderr) == (0, "")
    assert dry.stdout.startswith("# nothing to do")
    assert "echo" not in dry.stdout
    real = run_cli(fake_root, "-v", "shrink", "web", "1G")
    assert real.exit_code == 0
    assert whole_state(fake_root) == before


def test_v1_dry_shrink_says_the_restore_depends_on_the_kernel(fake_v1):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    set_usage(fake_v1, "web", 300 * MIB)
    lines = run_cli(fake_v1, "-n", "shrink", "web", "100M").stdout.splitlines()
    path = fake_v1 / "web" / "memory.limit_in_bytes"
    writes = [line for line in lines if not line.startswith("#")]
    assert writes == [f"echo {100 * MIB} > {path}", f"echo {1024 * MIB} > {path}"]
    comment = lines[1]
    assert comment.startswith("# ") and "EBUSY" in comment and "restore" in comment


def test_init_fake_dry_run_on_a_full_directory_exits_2_like_the_real_run(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("x")
    dry = run_cli(None, "-n", "init-fake", str(tmp_path / "full"))
    real = run_cli(None, "init-fake", str(tmp_path / "full"))
    assert dry.exit_code == real.exit_code == 2
    assert "the directory exists" in dry.stderr and dry.stdout == ""
    assert dry.stderr == real.stderr
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["something"]


def test_init_fake_on_an_empty_directory_exits_2_dry_and_real_alike(tmp_path):
    # init-fake makes a NEW directory: an empty one may have been made by
    # someone else, to plant links in it (see test_security.py).
    (tmp_path / "empty").mkdir()
    dry = run_cli(None, "-n", "init-fake", str(tmp_path / "empty"))
    real = run_cli(None, "init-fake", str(tmp_path / "empty"))
    assert dry.exit_code == real.exit_code == 2
    assert "the directory exists" in dry.stderr and dry.stdout == "" and dry.stderr == real.stderr
    assert list((tmp_path / "empty").iterdir()) == []


def test_init_fake_carries_out_the_plan_it_prints(tmp_path):
    printed = run_cli(None, "-n", "init-fake", "--cgroup-version", "1", str(tmp_path / "cg")).stdout
    assert not (tmp_path / "cg").exists()
    recorded = record_actions(lambda: run_cli(None, "init-fake", "--cgroup-version", "1", str(tmp_path / "cg")))
    assert printed.splitlines() == recorded
    assert run_cli(tmp_path / "cg", "create", "web", "--limit", "400M").exit_code == 0


def record_actions(run) -> list[str]:
    """The shell lines of the actions the filesystem layer carried out during RUN."""
    recorded = []
    original = CgroupFS.apply

    def recording(self, action):
        recorded.append(action.shell())
        return original(self, action)

    CgroupFS.apply = recording
    try:
        result = run()
    finally:
        CgroupFS.apply = original
    assert result.exit_code == 0, result.stderr
    return recorded


@pytest.mark.parametrize("args", [
    ["create", "-p", "a/b/c", "--limit", "400M"],
    ["delete", "-r", "web"],
    ["limit", "web", "100M", "--swap", "0"],
    ["shrink", "web", "100M"],
], ids=" ".join)
def test_the_real_run_carries_out_the_plan_the_dry_run_prints(fake_root, args):
    run_cli(fake_root, "create", "-p", "web/x/y", "--limit", "1G")
    run_cli(fake_root, "create", "web", "--exist-ok")
    set_usage(fake_root, "web", 50 * MIB)
    printed = run_cli(fake_root, "-n", *args)
    assert printed.exit_code == 0, printed.stderr
    recorded = record_actions(lambda: run_cli(fake_root, *args))
    assert [line for line in printed.stdout.splitlines() if not line.startswith("#")] == recorded


def test_verbose_reports_parents_made_and_children_removed(fake_root):
    created = run_cli(fake_root, "-v", "create", "-p", "a/b/c")
    assert created.stdout.splitlines() == ["created a", "created a/b", "created a/b/c"]
    deleted = run_cli(fake_root, "-v", "delete", "-r", "a")
    assert deleted.stdout.splitlines() == ["deleted a/b/c", "deleted a/b", "deleted a"]
    assert not (fake_root / "a").exists()
    ran = run_process(fake_root, "-v", "run", "--create", "x/y", "--", "true")
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr.splitlines()[:2] == ["created x", "created x/y"]
    assert (fake_root / "x" / "y").is_dir()


# --- defect 13: the small ones --------------------------------------------------------


def test_stat_lists_a_group_named_twice_once(fake_root):
    run_cli(fake_root, "create", "-p", "b/j")
    rows = json.loads(run_cli(fake_root, "stat", "-r", "--json", "b", "b/j").stdout)
    assert [row["group"] for row in rows] == ["b", "b/j"]


def test_tree_of_a_subgroup_starts_at_the_left_and_counts_pids_in_words(fake_root):
    run_cli(fake_root, "create", "-p", "b/j/k")
    (fake_root / "b" / "j" / "cgroup.procs").write_text(f"{os.getpid()}\n")
    (fake_root / "b" / "j" / "k" / "cgroup.procs").write_text("1\n2\n")
    lines = run_cli(fake_root, "tree", "b/j").stdout.splitlines()
    assert lines[0].startswith("j  ") and lines[0].endswith("(1 pid)")
    assert lines[1].startswith("    k  ") and lines[1].endswith("(2 pids)")


def test_limit_shows_zero_swap_once(fake_v1):
    run_cli(fake_v1, "create", "web")
    run_cli(fake_v1, "limit", "web", "100M", "--swap", "0")
    lines = run_cli(fake_v1, "limit", "web").stdout.splitlines()
    swap = next(line for line in lines if line.startswith("swap_limit"))
    assert swap.split(None, 1)[1] == "0 bytes"
    assert "100 MiB (104857600 bytes)" in next(line for line in lines if line.startswith("limit"))


def test_shrink_of_two_groups_says_one_group_per_shrink(fake_root):
    run_cli(fake_root, "create", "web", "batch")
    result = run_cli(fake_root, "shrink", "web", "batch", "80%")
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert "one group" in line and "bad size" not in line


@pytest.mark.parametrize("name", sorted(all_commands()))
def test_each_commands_help_ends_with_the_exit_status_table(name):
    text = run_cli(None, name, "-h").stdout
    last_code = max(EXIT_CODES)
    assert "Exit status:" in text, name
    assert text.rstrip().endswith(f"{last_code:>3}  {EXIT_CODES[last_code]}"), name


@pytest.mark.parametrize("args", [["shrink"], ["limit", "--bogus", "web"], ["shrink", "web"], ["nosuch"],
                                  ["create"], ["--cgroup-version", "3", "stat"]], ids=" ".join)
def test_usage_errors_are_one_line(fake_v1, args):
    result = run_process(fake_v1, *args)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("memcgctl: ") and " -h" in line, line


@pytest.mark.parametrize("args", [["top", "--root", "ROOT", "-b", "-n", "1"], ["completion", "bash", "-v"]],
                         ids=" ".join)
def test_a_global_option_after_top_or_completion_says_where_it_goes(fake_v1, args):
    """top and completion take global options before their name only (top's -n is
    a count): the error says so instead of a bare 'no such option'."""
    args = [str(fake_v1) if arg == "ROOT" else arg for arg in args]
    result = run_process(None, *args)
    assert (result.returncode, result.stdout) == (2, "")
    [line] = result.stderr.splitlines()
    option, command = args[1 if args[0] == "top" else 2], args[0]
    assert line == (f"memcgctl: {command}: no such option '{option}': give it before the command name "
                    f"('memcgctl {option} ... {command}') (see 'memcgctl {command} -h')")
    before = run_process(fake_v1, "top", "-b", "-n", "1") if command == "top" else run_process(None, "-v", *args[:2])
    assert before.returncode == 0, before.stderr


@pytest.mark.parametrize("args", [["--root", "", "limit", "web", "300M"], ["limit", "--root=", "web", "300M"]],
                         ids=" ".join)
def test_an_empty_root_is_exit_2_not_the_current_directory(fake_v1, args):
    """`--root "$CGROOT"` with CGROOT unset, run from inside a root: refused,
    not taken for the current directory."""
    assert run_cli(fake_v1, "create", "web", "--limit", "1G").exit_code == 0
    result = run_process(None, *args, cwd=fake_v1)
    assert (result.returncode, result.stdout) == (2, "")
    [line] = result.stderr.splitlines()
    assert "invalid value for '--root': empty (is the variable that names it unset?)" in line
    assert (fake_v1 / "web" / "memory.limit_in_bytes").read_text() == str(1 << 30)


# Every command, with arguments that would change or show something (in a dry
# run, on a fake root: the old code ran them).
EVERY_COMMAND = {
    "attach": ["attach", "web", "1"], "completion": ["completion", "bash"], "create": ["create", "new"],
    "daemon": ["daemon", "--config", "CONFIG", "--check"], "delete": ["delete", "web"], "empty": ["empty", "web"],
    "export": ["export"], "init-fake": ["init-fake", "NEW"], "limit": ["limit", "web", "2G"], "recover": ["recover"],
    "run": ["run", "web", "--", "true"], "shrink": ["shrink", "web", "1M"], "stat": ["stat"],
    "top": ["top", "-b", "-n", "1"], "tree": ["tree"], "units": ["units", "--install", "--dir", "NEW"],
}


@pytest.mark.parametrize("variable", ["MEMCGCTL_ROOT", "MEMCGCTL_JOURNAL_DIR"])
def test_an_empty_root_or_journal_variable_is_exit_2_for_every_command(fake_v1, tmp_path, variable):
    """Issue 17, finding 2: click takes an empty variable for an unset one, so
    `export MEMCGCTL_ROOT=$UNSET` meant the host's hierarchy."""
    assert set(EVERY_COMMAND) == set(all_commands())
    assert run_cli(fake_v1, "create", "web", "--limit", "1G").exit_code == 0
    config = tmp_path / "daemon.toml"
    config.write_text('[[group]]\nmatch = "*"\npolicy = "watermark"\nhigh = "2M"\nlow = "1M"\n')
    for name, args in EVERY_COMMAND.items():
        args = [{"CONFIG": str(config), "NEW": str(tmp_path / "new")}.get(arg, arg) for arg in args]
        result = run_cli(fake_v1, "-n", *args, env={variable: ""})
        assert (result.exit_code, result.stdout) == (2, ""), (name, result)
        assert result.stderr == (f"memcgctl: environment variable {variable} is set but empty (is the variable "
                                 f"that names it unset?): unset {variable} or give it a directory (see 'memcgctl "
                                 "-h')\n"), name
    assert sorted(path.name for path in fake_v1.iterdir() if path.is_dir()) == ["web"]
    assert (fake_v1 / "web" / "memory.limit_in_bytes").read_text() == str(1 << 30)
    assert not (tmp_path / "new").exists()


def test_an_empty_root_variable_is_not_the_hosts_hierarchy():
    result = run_process(None, "stat", env={**os.environ, "MEMCGCTL_ROOT": ""})
    assert (result.returncode, result.stdout) == (2, "")
    assert "environment variable MEMCGCTL_ROOT is set but empty" in result.stderr


def test_an_empty_journal_dir_option_is_exit_2(fake_v1):
    result = run_cli(fake_v1, "--journal-dir", "", "stat")
    assert (result.exit_code, result.stdout) == (2, "")
    assert "invalid value for '--journal-dir': empty (is the variable that names it unset?)" in result.stderr


def test_a_soft_limit_above_the_hard_limit_is_set_with_a_warning(fake_v1):
    run_cli(fake_v1, "create", "web", "--limit", "100M")
    result = run_cli(fake_v1, "limit", "web", "--soft", "200M")
    assert result.exit_code == 0
    [line] = result.stderr.splitlines()
    assert line.startswith("memcgctl: warning: ") and "--soft" in line and "above the hard limit" in line
    assert (fake_v1 / "web" / "memory.soft_limit_in_bytes").read_text() == str(200 * MIB)
    assert run_cli(fake_v1, "limit", "web", "--soft", "50M").stderr == ""
    lowered = run_cli(fake_v1, "limit", "web", "40M")  # now the hard limit goes under the soft one
    assert lowered.exit_code == 0
    # --soft was not given this time: the warning speaks of the group's own soft limit.
    assert lowered.stderr == ("memcgctl: warning: the group's soft limit 50 MiB is above the new hard limit 40 MiB: "
                              "it has no effect while the hard limit is lower\n")
    assert (fake_v1 / "web" / "memory.limit_in_bytes").read_text() == str(40 * MIB)


def test_high_above_the_limit_is_set_with_a_warning(fake_v2):
    run_cli(fake_v2, "create", "web")
    result = run_cli(fake_v2, "limit", "web", "100M", "--high", "200M")
    assert result.exit_code == 0
    assert "memcgctl: warning: " in result.stderr and "--high" in result.stderr
    assert (fake_v2 / "web" / "memory.high").read_text() == str(200 * MIB)


def test_force_on_v1_is_warned_about(fake_v1):
    run_cli(fake_v1, "create", "web")
    result = run_cli(fake_v1, "limit", "--force", "web", "100M")
    assert result.exit_code == 0
    [line] = result.stderr.splitlines()
    assert line.startswith("memcgctl: warning: --force") and "cgroup v1" in line
    assert (fake_v1 / "web" / "memory.limit_in_bytes").read_text() == str(100 * MIB)


# --- the library speaks of limits by name, never of options ------------------------


def test_library_errors_name_the_limit_not_the_option(fake_v2):
    from memcgctl.operations.limits import set_limits

    run_cli(fake_v2, "create", "web")
    set_usage(fake_v2, "web", 300 * MIB)
    backend = open_hierarchy(fake_v2)
    web = backend.group("web")
    errors = []
    for changes in ({"soft_limit": 1}, {"limit": 4}, {"limit": 100 * MIB}):
        with pytest.raises(MemcgError) as caught:
            set_limits(backend, web, changes)
        errors.append(caught.value)
    assert [error.limit_name for error in errors] == ["soft_limit", "limit", "limit"]
    assert all("--" not in str(error) for error in errors), [str(error) for error in errors]
    assert (fake_v2 / "web" / "memory.max").read_text() == "max\n"
    shown = run_cli(fake_v2, "limit", "web", "--soft", "1M")  # the CLI words it with its options
    assert shown.exit_code == 69 and "--soft" in shown.stderr


@pytest.mark.parametrize(("command", "expected_code"), [
    (["create", "-p", "a/b", "a/c"], 0),
    (["create", "n1", "n1"], 73),
    (["create", "n2", "n2/child"], 0),
    (["delete", "-r", "web", "web/x"], 66),
    (["delete", "web/x/y", "web/x"], 0),
], ids=lambda value: " ".join(value) if isinstance(value, list) else str(value))
def test_several_groups_dry_run_plans_what_the_real_run_does(fake_root, command, expected_code):
    run_cli(fake_root, "create", "-p", "web/x/y")
    dry = run_cli(fake_root, "-n", *command)
    assert dry.exit_code == expected_code, dry.stderr
    real_actions = []
    original = CgroupFS.apply

    def recording(self, action):
        real_actions.append(action.shell())
        return original(self, action)

    CgroupFS.apply = recording
    try:
        real = run_cli(fake_root, *command)
    finally:
        CgroupFS.apply = original
    assert real.exit_code == expected_code, real.stderr
    assert [line for line in dry.stdout.splitlines() if not line.startswith("#")] == real_actions


def test_a_v2_dry_run_of_a_hard_limit_below_usage_says_the_real_run_refuses(fake_v2):
    run_cli(fake_v2, "create", "web")
    run_cli(fake_v2, "limit", "web", "--high", "500M")
    (fake_v2 / "web" / "memory.current").write_text(f"{300 * MIB}\n")
    dry = run_cli(fake_v2, "-n", "limit", "web", "100M")
    assert dry.exit_code == 0
    assert dry.stdout.splitlines()[-1] == (
        f"# if the shrink leaves usage above {100 * MIB} bytes (a fake tree frees nothing), the real run writes "
        "none of the lines after the shrink's and exits 75, the limit left as it was, unless --force (then the "
        "limit is written all the same and the kernel OOM-kills to get under it)")
    assert "--high" not in dry.stderr
    assert dry.stderr == ("memcgctl: warning: the group's high limit (throttle point) 500 MiB is above the new hard "
                          "limit 100 MiB: it has no effect while the hard limit is lower\n")
    real = run_cli(fake_v2, "limit", "web", "100M")
    assert real.exit_code == 75 and "--force" in real.stderr
    assert (fake_v2 / "web" / "memory.max").read_text().strip() == "max"
    forced = run_cli(fake_v2, "-n", "limit", "web", "100M", "--force")
    assert forced.exit_code == 0 and "exits 75" not in forced.stdout
