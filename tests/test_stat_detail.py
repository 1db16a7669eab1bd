"""stat GROUP --detail, stat --fields and stat --csv: on fake trees of both
versions and on the real kernel, against the files they read."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memcgctl.daemon.counters import counters_file_name

from conftest import run_cli, run_process

MIB = 1024**2


@pytest.fixture
def web(fake_root):
    assert run_cli(fake_root, "create", "web", "--limit", "100M").exit_code == 0
    return fake_root


def is_v2(root) -> bool:
    return (root / "cgroup.controllers").exists()


def test_detail_shows_every_counter_grouped_and_explained(web):
    if is_v2(web):
        (web / "web" / "memory.stat").write_text("anon 1048576\nfile 2097152\npgfault 1234567\nnew_counter 5\n")
        (web / "web" / "memory.events").write_text("low 0\nhigh 4\nmax 2\noom 0\noom_kill 1\noom_group_kill 0\n")
    else:
        (web / "web" / "memory.stat").write_text("rss 1048576\ncache 2097152\npgfault 1234567\nnew_counter 5\n"
                                                 "total_cache 2097152\n")
        (web / "web" / "memory.failcnt").write_text("4\n")
        (web / "web" / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    result = run_cli(web, "stat", "web", "--detail")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"web  (cgroup v{2 if is_v2(web) else 1}, ")
    sections = [line for line in lines if line and not line.startswith(" ")][1:]
    assert sections == ["limits", "memory", "page cache", "faults and huge pages", "events", "other"]
    shown = {line.split()[0]: line.split(None, 1)[1] for line in lines if line.startswith("  ")}
    assert shown["limit"].startswith("100 MiB  hard limit")
    assert shown["anon" if is_v2(web) else "rss"].startswith("1 MiB  anonymous memory")
    assert shown["file" if is_v2(web) else "cache"].startswith("2 MiB  page cache")
    assert shown["pgfault"] == "1,234,567  page faults"
    assert shown["new_counter"] == "5"  # unknown to memcgctl: shown, under other
    assert shown["oom_kill"] == "1  processes killed by the OOM killer"
    if is_v2(web):
        assert shown["high"] == "4  throttled or reclaimed over memory.high"
    else:
        assert shown["failcnt"] == "4  times usage hit memory.limit_in_bytes"
        assert shown["total_cache"].endswith("; this group and below")


def write_counters(journal_directory, root, pid: int, rows: list) -> Path:
    """The counters file a daemon on ROOT (process PID) would write; its path."""
    document = {"pid": pid, "started": time.time(), "root": str(root), "root_device": root.stat().st_dev,
                "root_inode": root.stat().st_ino, "rows": rows}
    path = journal_directory / counters_file_name(root)
    path.write_text(json.dumps(document))
    return path


def test_detail_shows_a_running_daemons_working_set_estimate(web, journal_directory):
    rows = [{"group": "web", "policy": "pressure", "reclaimed_bytes": 0, "actions": 0, "backoffs": 0, "errors": 0,
             "working_set_bytes": 250 * MIB, "working_set_updated": time.time() - 12},
            {"group": "other", "policy": "pressure", "reclaimed_bytes": 0, "actions": 0, "backoffs": 0, "errors": 0,
             "working_set_bytes": MIB, "working_set_updated": time.time()}]
    write_counters(journal_directory, web, os.getpid(), rows)  # this process stands for the daemon
    result = run_cli(web, "stat", "web", "--detail")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    shown = [line for line in lines if line.startswith("  working_set")]
    assert len(shown) == 1 and lines[lines.index(shown[0]) - 1] == "daemon"
    assert re.fullmatch(r"  working_set +250 MiB  what the workload needs, as the daemon's pressure policy "
                        r"estimates it \(the usage where it refaults or stalls\), 1[23] s ago", shown[0]), shown


def test_detail_without_a_running_daemon_has_no_daemon_section(web, journal_directory):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    counters = write_counters(journal_directory, web, finished.pid, [
        {"group": "web", "policy": "pressure", "reclaimed_bytes": 0, "actions": 0, "backoffs": 0, "errors": 0,
         "working_set_bytes": 250 * MIB, "working_set_updated": time.time()}])
    result = run_cli(web, "stat", "web", "--detail")
    assert result.exit_code == 0 and "working_set" not in result.stdout and "\ndaemon\n" not in result.stdout
    counters.write_text("{broken")  # unreadable: the kernel's figures anyway
    result = run_cli(web, "stat", "web", "--detail")
    assert result.exit_code == 0 and "working_set" not in result.stdout, result.stderr


@pytest.mark.parametrize("args", [["stat", "--detail"], ["stat", "--detail", "web", "web"],
                                  ["stat", "--detail", "--json", "web"], ["stat", "--detail", "-r", "web"],
                                  ["stat", "--json", "--csv"], ["stat", "--fields", "usage", "--json"]],
                         ids=" ".join)
def test_detail_and_fields_refuse_what_they_cannot_do(web, args):
    result = run_cli(web, *args)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith("memcgctl: stat --")


def test_csv_has_a_header_and_bytes(web):
    assert run_cli(web, "create", "db").exit_code == 0
    result = run_cli(web, "stat", "--csv")
    assert result.exit_code == 0, result.stderr
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["group"] for row in table] == ["db", "web"]
    assert (table[1]["limit"], table[0]["limit"], table[1]["usage"]) == (str(100 * MIB), "", "0")


def test_fields_pick_figures_and_counters(web):
    key = "stat.anon" if is_v2(web) else "stat.rss"
    result = run_cli(web, "stat", "web", "--fields", f"group,limit,{key}", "--csv")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"group,limit,{key}\nweb,{100 * MIB},0\n"
    table = run_cli(web, "stat", "web", "--fields", f"limit,{key}")
    assert table.stdout.splitlines() == [f"limit      {key}", f"104857600  {0:>{len(key)}}"]  # first column to the left


def test_unknown_fields_are_exit_2_listing_the_valid_ones(web):
    result = run_cli(web, "stat", "--fields", "usage,bogus,stat.nope")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith("memcgctl: unknown field 'bogus', 'stat.nope': valid fields: group, path, ")
    assert ", usage, " in result.stderr and ", pids, stat." in result.stderr


def test_detail_and_csv_on_the_kernel(kernel_root, tmp_path):
    assert run_process(kernel_root.path, "create", "web").returncode == 0
    kernel_root.fill_page_cache("web", tmp_path / "cache", 16)
    detail = run_process(kernel_root.path, "stat", "web", "--detail")
    assert detail.returncode == 0, detail.stderr
    shown = {line.split()[0]: line for line in detail.stdout.splitlines() if line.startswith("  ")}
    stat_file = dict(line.split() for line in kernel_root.read("web", "memory.stat").splitlines())
    assert set(stat_file) <= set(shown)  # every counter of memory.stat
    file_key = "file" if kernel_root.version == 2 else "cache"
    assert " MiB  page cache" in shown[file_key]
    fields = f"usage,stat.{file_key}"
    table = run_process(kernel_root.path, "stat", "web", "--fields", fields, "--csv")
    assert table.returncode == 0, table.stderr
    header, values = table.stdout.splitlines()
    usage, file = (int(value) for value in values.split(","))
    usage_file = "memory.current" if kernel_root.version == 2 else "memory.usage_in_bytes"
    assert header == fields and abs(usage - int(kernel_root.read("web", usage_file))) < MIB
    assert 16 * MIB <= file <= usage


def documented_fields_examples() -> list[list[str]]:
    """The `stat ... --fields ...` lines of README.md's tour and the man page's examples."""
    import re
    import shlex
    from pathlib import Path

    project = Path(__file__).resolve().parent.parent
    readme = (project / "README.md").read_text()
    manual = (project / "man" / "memcgctl.1").read_text().replace("\\-", "-")
    lines = re.findall(r"^memcgctl (stat [^#\n]*--fields[^#\n]*)", readme + "\n" + manual, re.MULTILINE)
    return [shlex.split(line) for line in lines]


def test_the_documented_fields_examples_work_on_either_cgroup_version(fake_root):
    """The tour's --fields line must not name a counter only one version's
    memory.stat has (stat.anon is v2 only: on a v1 host it was exit 2)."""
    examples = documented_fields_examples()
    assert len(examples) == 2  # README and man page
    assert run_cli(fake_root, "create", "-p", "batch/job1", "--limit", "100M").exit_code == 0
    for example in examples:
        result = run_cli(fake_root, *example)
        assert result.exit_code == 0, (example, result.stderr)
        table = list(csv.DictReader(io.StringIO(result.stdout)))
        assert [row["group"] for row in table] == ["batch", "batch/job1"]
        assert table[1]["limit"] == str(100 * MIB)
