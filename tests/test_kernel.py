"""Real-kernel behaviour that fake trees cannot show: reclaim, page rounding,
the v1 memsw ordering rule, the v2 safety rule, processes and permissions.

Runs on this host's memory cgroup version (v1 here, v2 in the VM of tests/vm),
inside a fresh child of the test process's own memory cgroup.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from unprivileged import needs_root_and_setpriv

from memcgctl.errors import InvalidValue
from memcgctl.kernel.actions import Write
from memcgctl.kernel.discovery import open_hierarchy

from conftest import run_cli, run_process

MIB = 1024**2
V1_UNLIMITED = 9223372036854771712


def only_on(version: int):
    return pytest.mark.parametrize("cgroup_version", [version], indirect=True)


@pytest.fixture
def cgroup_version(request, kernel_root):
    if kernel_root.version != request.param:
        pytest.skip(f"needs cgroup v{request.param}; this host's memory controller is v{kernel_root.version}")
    return request.param


def limit_file(kernel_root) -> str:
    return "memory.limit_in_bytes" if kernel_root.version == 1 else "memory.max"


def usage(kernel_root, group: str) -> int:
    name = "memory.usage_in_bytes" if kernel_root.version == 1 else "memory.current"
    return int(kernel_root.read(group, name))


def pages_scanned(kernel_root, group: str) -> int:
    """v2: pages the kernel scanned for reclaim in GROUP so far (memory.stat
    pgscan).  A v2 shrink writes memory.reclaim, which scans; nothing else
    in these tests puts the group under pressure."""
    stat = dict(line.split() for line in kernel_root.read(group, "memory.stat").splitlines())
    return int(stat["pgscan"])


def test_limit_is_read_back_rounded_down_to_pages(kernel_root):
    run_cli(kernel_root.path, "create", "web")
    result = run_cli(kernel_root.path, "limit", "-v", "web", "4097")
    assert result.exit_code == 0
    assert "(4096 bytes)" in result.stdout
    assert kernel_root.read("web", limit_file(kernel_root)) == "4096"


def test_unlimited_is_written_the_way_each_version_wants(kernel_root):
    run_cli(kernel_root.path, "create", "web", "--limit", "1G")
    assert run_cli(kernel_root.path, "limit", "web", "-1").exit_code == 0
    expected = str(V1_UNLIMITED) if kernel_root.version == 1 else "max"
    assert kernel_root.read("web", limit_file(kernel_root)) == expected


@only_on(1)
def test_v1_swap_is_swap_alone_and_memsw_is_written_in_the_kernels_order(kernel_root, cgroup_version):
    root = kernel_root.path
    run_cli(root, "create", "web")
    memsw = "memory.memsw.limit_in_bytes"
    assert run_cli(root, "limit", "web", "100M", "--swap", "50M").exit_code == 0
    assert kernel_root.read("web", memsw) == str(150 * MIB)
    # Raising: memsw must go up first, or the kernel refuses the limit (EINVAL).
    raised = run_cli(root, "limit", "-n", "web", "300M")
    assert raised.stdout.splitlines()[0].endswith(memsw)
    assert run_cli(root, "limit", "web", "300M").exit_code == 0
    assert (kernel_root.read("web", "memory.limit_in_bytes"), kernel_root.read("web", memsw)) == (
        str(300 * MIB), str(350 * MIB))
    # Lowering both: the limit must go down first.
    lowered = run_cli(root, "limit", "-n", "web", "50M", "--swap", "0")
    assert lowered.stdout.splitlines()[0].endswith("memory.limit_in_bytes")
    assert run_cli(root, "limit", "web", "50M", "--swap", "0").exit_code == 0
    assert (kernel_root.read("web", "memory.limit_in_bytes"), kernel_root.read("web", memsw)) == (
        str(50 * MIB), str(50 * MIB))
    assert json.loads(run_cli(root, "stat", "--json", "web").stdout)[0]["swap_limit"] == 0


@only_on(1)
def test_v1_soft_limit(kernel_root, cgroup_version):
    run_cli(kernel_root.path, "create", "web")
    assert run_cli(kernel_root.path, "limit", "web", "--soft", "64M").exit_code == 0
    assert kernel_root.read("web", "memory.soft_limit_in_bytes") == str(64 * MIB)


def test_write_refused_with_einval_is_65(kernel_root):
    """The kernel's EINVAL maps to exit code 65 (v1: memsw below the limit;
    v2: "-1", which only v1 accepts)."""
    run_cli(kernel_root.path, "create", "web", "--limit", "100M")
    backend = open_hierarchy(kernel_root.path)
    group = backend.group("web")
    write = (Write(group.path / "memory.memsw.limit_in_bytes", str(10 * MIB)) if kernel_root.version == 1
             else Write(group.path / "memory.max", "-1"))
    with pytest.raises(InvalidValue) as caught:
        backend.fs.apply(write)
    assert caught.value.exit_code == 65
    assert "invalid argument" in str(caught.value)


def test_shrink_page_cache_to_target_and_restore(kernel_root, tmp_path):
    root = kernel_root.path
    run_cli(root, "create", "web", "--limit", "1G")
    limit_before = kernel_root.read("web", limit_file(kernel_root))
    kernel_root.fill_page_cache("web", tmp_path / "cache", 150)
    assert usage(kernel_root, "web") > 140 * MIB
    result = run_process(root, "shrink", "-v", "web", "50M")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("web: ") and "(target 50 MiB)" in result.stdout
    assert usage(kernel_root, "web") <= 50 * MIB
    assert kernel_root.read("web", limit_file(kernel_root)) == limit_before


def test_shrink_to_a_percentage_of_usage(kernel_root, tmp_path):
    run_cli(kernel_root.path, "create", "web")
    kernel_root.fill_page_cache("web", tmp_path / "cache", 100)
    before = usage(kernel_root, "web")
    assert run_process(kernel_root.path, "shrink", "web", "50%").returncode == 0
    assert usage(kernel_root, "web") <= before // 2


def test_shrink_of_anonymous_memory_fails_and_kills_nothing(kernel_root):
    root = kernel_root.path
    run_cli(root, "create", "web")
    limit_before = kernel_root.read("web", limit_file(kernel_root))
    holder = kernel_root.hold_anonymous_memory("web", 100 * MIB)
    result = run_process(root, "shrink", "--timeout", "30", "web", "20M")
    assert result.returncode == 75
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("memcgctl: shrink web: target not reached: ")
    assert holder.poll() is None, "the process holding memory must still be alive"
    assert kernel_root.read("web", limit_file(kernel_root)) == limit_before


def in_blocking_write(process: subprocess.Popen, timeout: float = 10) -> bool:
    """Wait until PROCESS sits in a write(2) to a kernel file, that is, the
    kernel is reclaiming for it; False if it ended first."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{process.pid}/syscall").read_text().startswith("1 "):  # x86-64 write
                return True
        time.sleep(0.001)
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_shrink_interrupted_by_a_signal_restores_the_limit(kernel_root, tmp_path, signum):
    """A stop signal while the kernel reclaims.  A writer re-dirtying page
    cache in the group keeps reclaim going; the kernel may still finish first,
    so up to five tries, each of which must leave the limit as it was."""
    run_cli(kernel_root.path, "create", "web", "--limit", "4G")
    kernel_root.keep_dirtying("web", tmp_path / "dirty")
    scanned_before = pages_scanned(kernel_root, "web") if kernel_root.version == 2 else 0
    exit_codes = []
    for _ in range(5):
        shrinker = subprocess.Popen([sys.executable, "-m", "memcgctl", "--root", str(kernel_root.path),
                                     "shrink", "web", "1M"], stderr=subprocess.PIPE, text=True)
        if in_blocking_write(shrinker):
            shrinker.send_signal(signum)
        _, stderr = shrinker.communicate(timeout=60)
        exit_codes.append(shrinker.returncode)
        # v1: the lowered limit is back; v2: memory.max was never touched.
        assert kernel_root.read("web", limit_file(kernel_root)) == str(4096 * MIB)
        if shrinker.returncode == 128 + signum:
            assert stderr == f"memcgctl: interrupted by {signal.Signals(signum).name}\n"
            break
    if kernel_root.version == 1:
        assert 128 + signum in exit_codes, f"never caught the kernel reclaiming: {exit_codes}"
    else:  # v2 shrinks by writing memory.reclaim, never memory.max: the kernel did reclaim
        assert pages_scanned(kernel_root, "web") > scanned_before


def test_shrink_timeout_is_75_and_restores_the_limit(kernel_root, tmp_path):
    """--timeout stops the kernel's reclaim.  The kernel may also give up by
    itself first (EBUSY, under load), or on v2 write the pages back and reach
    the target: then try again, up to three times."""
    run_cli(kernel_root.path, "create", "web", "--limit", "4G")
    kernel_root.keep_dirtying("web", tmp_path / "dirty")
    reasons = []
    for _ in range(3):
        scanned_before = pages_scanned(kernel_root, "web") if kernel_root.version == 2 else 0
        result = run_process(kernel_root.path, "shrink", "--timeout", "1", "web", "1M")
        assert result.returncode in (0, 75)
        assert result.returncode == 0 or "target not reached" in result.stderr
        assert kernel_root.read("web", limit_file(kernel_root)) == str(4096 * MIB)
        if kernel_root.version == 2:  # memory.reclaim was written: the kernel scanned the group
            assert pages_scanned(kernel_root, "web") > scanned_before
        reasons.append(result.stderr)
        if "timed out after 1 s" in result.stderr:
            break
    if kernel_root.version == 1:
        assert "timed out after 1 s" in reasons[-1], reasons


def test_empty_reclaims_page_cache_and_reports_what_is_left(kernel_root, tmp_path):
    run_cli(kernel_root.path, "create", "web")
    kernel_root.fill_page_cache("web", tmp_path / "cache", 100)
    result = run_process(kernel_root.path, "empty", "-v", "web")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("web: ") and result.stdout.endswith(" left\n")
    assert usage(kernel_root, "web") < 10 * MIB


def test_delete_of_busy_group_is_75_and_nothing_is_killed(kernel_root):
    run_cli(kernel_root.path, "create", "web")
    holder = kernel_root.hold_anonymous_memory("web", 4 * MIB)
    result = run_cli(kernel_root.path, "delete", "web")
    assert result.exit_code == 75
    assert "still has 1 process" in result.stderr
    assert holder.poll() is None
    assert (kernel_root.path / "web").is_dir()


def test_a_refused_limit_is_one_error_line_without_a_set_warning(kernel_root):
    """v1 EBUSY (v2: the shrink before memory.max fails): the warning that a
    soft limit above the new hard one is "set" must not precede the error."""
    run_cli(kernel_root.path, "create", "web", "--limit", "1G")
    holder = kernel_root.hold_anonymous_memory("web", 20 * MIB)
    soft = "--soft" if kernel_root.version == 1 else "--high"
    result = run_process(kernel_root.path, "limit", "web", "4M", soft, "300M", "--timeout", "5")
    assert result.returncode == 75
    [line] = result.stderr.splitlines()
    assert line.startswith("memcgctl: ") and "warning" not in line
    assert kernel_root.read("web", limit_file(kernel_root)) == str(1 << 30)
    assert holder.poll() is None
    warned = run_process(kernel_root.path, "limit", "web", "500M", soft, "600M")
    assert warned.returncode == 0
    assert warned.stderr.startswith(f"memcgctl: warning: {soft} 600 MiB is above the hard limit 500 MiB: set")
    assert kernel_root.read("web", limit_file(kernel_root)) == str(500 * MIB)
    holder.kill()


@only_on(1)
def test_a_useless_force_on_v1_is_said_when_the_kernel_refuses_the_limit(kernel_root, cgroup_version):
    """v1 never OOM-kills for a limit, it refuses it (EBUSY): the warning that
    --force does nothing matters most exactly then, and comes before the error."""
    assert run_cli(kernel_root.path, "create", "web", "--limit", "1G").exit_code == 0
    holder = kernel_root.hold_anonymous_memory("web", 20 * MIB)
    result = run_process(kernel_root.path, "limit", "--force", "web", "4M", "--timeout", "5")
    assert result.returncode == 75
    warning, error = result.stderr.splitlines()
    assert warning.startswith("memcgctl: warning: --force does nothing here: on cgroup v1 the kernel never "
                              "OOM-kills to get under a new limit (it refuses it)")
    assert error.startswith("memcgctl: ") and "warning" not in error
    assert kernel_root.read("web", "memory.limit_in_bytes") == str(1 << 30)
    assert holder.poll() is None
    holder.kill()


def test_stat_agrees_with_the_kernel_files(kernel_root, tmp_path):
    run_cli(kernel_root.path, "create", "web", "--limit", "512M")
    kernel_root.fill_page_cache("web", tmp_path / "cache", 50)
    holder = kernel_root.hold_anonymous_memory("web", 20 * MIB)
    [row] = json.loads(run_cli(kernel_root.path, "stat", "--json", "web").stdout)
    assert row["limit"] == 512 * MIB
    assert row["pids"] == 1 and row["cgroup_version"] == kernel_root.version
    assert abs(row["usage"] - usage(kernel_root, "web")) < 2 * MIB
    if kernel_root.version == 1:
        assert row["stat"]["cache"] >= 50 * MIB and row["stat"]["rss"] >= 20 * MIB
        assert row["failcnt"] == int(kernel_root.read("web", "memory.failcnt"))
    else:
        assert row["stat"]["file"] >= 50 * MIB and row["stat"]["anon"] >= 20 * MIB
        assert row["events"]["oom_kill"] == 0
    holder.kill()


def test_run_puts_the_command_in_the_group_and_passes_its_exit_status(kernel_root):
    run_cli(kernel_root.path, "create", "web")
    shown = run_process(kernel_root.path, "run", "web", "--", "cat", "/proc/self/cgroup")
    assert shown.returncode == 0
    assert kernel_root.path.name + "/web\n" in shown.stdout
    assert run_process(kernel_root.path, "run", "web", "--", "sh", "-c", "exit 7").returncode == 7
    missing = run_process(kernel_root.path, "run", "web", "--", "no-such-command-xyz")
    assert missing.returncode == 127 and "command not found" in missing.stderr


def test_attach_moves_the_good_pids_and_reports_the_bad(kernel_root):
    run_cli(kernel_root.path, "create", "web")
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    kernel_root.processes.append(sleeper)
    # pid_max is at most 4194304: no process has it (a larger number is a usage error)
    result = run_cli(kernel_root.path, "attach", "web", str(sleeper.pid), "4194304")
    assert result.exit_code == 66
    assert "attach 4194304 to web: no such process" in result.stderr
    assert kernel_root.read("web", "cgroup.procs").split() == [str(sleeper.pid)]


@pytest.fixture
def nobody_python(code) -> list[str]:
    """memcgctl run as user nobody, from the readable copy CODE."""
    from unprivileged import SETPRIV, SYSTEM_PYTHON, nobody_directory, remove_tree

    # nobody's own journal: the default for a user without XDG_RUNTIME_DIR,
    # ~/.cache/memcgctl (issue 13, finding 9), in a home of nobody's
    home = nobody_directory(Path("/tmp"), mode=0o700)
    yield [*SETPRIV, "env", "-u", "MEMCGCTL_JOURNAL_DIR", "-u", "XDG_RUNTIME_DIR", f"HOME={home}",
           f"PYTHONPATH={code}", SYSTEM_PYTHON, "-m", "memcgctl"]
    remove_tree(home)


@needs_root_and_setpriv()
def test_non_root_reads_but_writes_fail_with_77(kernel_root, nobody_python):
    run_cli(kernel_root.path, "create", "web", "--limit", "1G")
    root = ["--root", str(kernel_root.path)]
    shown = subprocess.run([*nobody_python, *root, "stat", "--json", "web"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)[0]["limit"] == 1024 * MIB
    denied = subprocess.run([*nobody_python, *root, "limit", "web", "100M"], capture_output=True, text=True)
    assert denied.returncode == 77, denied.stderr
    assert "needs write permission" in denied.stderr and limit_file(kernel_root) in denied.stderr
    assert kernel_root.read("web", limit_file(kernel_root)) == str(1024 * MIB)


@only_on(2)
def test_v2_limit_below_usage_shrinks_first(kernel_root, cgroup_version, tmp_path):
    run_cli(kernel_root.path, "create", "web")
    kernel_root.fill_page_cache("web", tmp_path / "cache", 150)
    result = run_process(kernel_root.path, "limit", "web", "50M")
    assert result.returncode == 0, result.stderr
    assert kernel_root.read("web", "memory.max") == str(50 * MIB)
    assert usage(kernel_root, "web") <= 50 * MIB


@only_on(2)
def test_v2_limit_below_unreclaimable_usage_is_refused_unless_forced(kernel_root, cgroup_version):
    run_cli(kernel_root.path, "create", "web")
    holder = kernel_root.hold_anonymous_memory("web", 100 * MIB)
    refused = run_process(kernel_root.path, "limit", "--timeout", "60", "web", "20M")
    assert refused.returncode == 75
    assert "OOM-kill" in refused.stderr and "--force" in refused.stderr
    assert kernel_root.read("web", "memory.max") == "max"
    assert holder.poll() is None
    forced = run_process(kernel_root.path, "limit", "--force", "--timeout", "60", "web", "20M")
    assert forced.returncode == 0, forced.stderr
    assert "OOM-killed 1 process" in forced.stderr
    holder.wait(timeout=30)
    assert holder.returncode != 0


@only_on(2)
def test_v2_no_internal_processes_rule_is_explained(kernel_root, cgroup_version):
    run_cli(kernel_root.path, "create", "web")
    kernel_root.hold_anonymous_memory("web", 4 * MIB)
    result = run_cli(kernel_root.path, "create", "web/child")
    assert result.exit_code == 75
    assert "no-internal-processes" in result.stderr


@only_on(2)
def test_v2_high_low_min_and_swap(kernel_root, cgroup_version):
    run_cli(kernel_root.path, "create", "web")
    result = run_cli(kernel_root.path, "limit", "web", "--high", "300M", "--low", "10M", "--min", "5M",
                     "--swap", "0")
    assert result.exit_code == 0, result.stderr
    assert [kernel_root.read("web", name) for name in ("memory.high", "memory.low", "memory.min")] == [
        str(300 * MIB), str(10 * MIB), str(5 * MIB)]
    if (kernel_root.path / "web" / "memory.swap.max").exists():
        assert kernel_root.read("web", "memory.swap.max") == "0"


def test_dry_run_on_the_kernel_changes_nothing(kernel_root, tmp_path):
    run_cli(kernel_root.path, "create", "web", "--limit", "1G")
    kernel_root.fill_page_cache("web", tmp_path / "cache", 30)
    before = usage(kernel_root, "web")
    for args in (["shrink", "web", "1M"], ["empty", "web"], ["limit", "web", "1M"], ["delete", "web"]):
        result = run_cli(kernel_root.path, "-n", *args)
        assert result.exit_code == 0, (args, result.stderr)
        assert result.stdout.startswith("echo ") or result.stdout.startswith("rmdir "), args
    assert kernel_root.read("web", limit_file(kernel_root)) == str(1024 * MIB)
    assert usage(kernel_root, "web") >= before - MIB
    assert os.path.isdir(kernel_root.path / "web")


def test_pids_count_the_group_itself_as_the_help_says_while_sizes_count_below(kernel_root, tmp_path):
    """The help and the man page say which figures are hierarchical: usage
    counts a child's memory in its parent, PIDS only the parent's own processes."""
    assert run_cli(kernel_root.path, "create", "-p", "parent/child").exit_code == 0
    holder = kernel_root.hold_anonymous_memory("parent/child", 16 * MIB)
    [parent, child] = json.loads(run_process(kernel_root.path, "stat", "--json", "-r", "parent").stdout)
    assert (parent["group"], parent["pids"], child["pids"]) == ("parent", 0, 1)
    assert parent["usage"] >= child["usage"] >= 16 * MIB
    assert kernel_root.read("parent", "cgroup.procs") == ""
    table = run_process(kernel_root.path, "stat", "-r", "parent").stdout.splitlines()
    assert table[0].split()[-2] == "PIDS"  # the cells of sizes hold a space ("16 MiB"): count from the right
    assert [line.split()[-2] for line in table[1:]] == ["0", "1"]
    assert "PIDS only the processes in the group itself" in " ".join(run_cli(None, "stat", "--help").stdout.split())
    holder.kill()
