"""One behaviour, proven on every backend: fake v1, fake v2 and the real kernel.

What differs between them (page rounding, reclaim) is in test_kernel.py and
test_fake.py; what is here must hold everywhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import run_cli

MIB = 1024**2
STAT_KEYS = {"group", "path", "cgroup_version", "usage", "limit", "soft_limit", "high", "low", "min",
             "swap_limit", "peak", "failcnt", "events", "stat", "pids"}


@pytest.fixture(params=["fake-v1", "fake-v2", "kernel"])
def root(request, tmp_path) -> Path:
    """A cgroup root of each kind, empty of groups."""
    if request.param == "kernel":
        return request.getfixturevalue("kernel_root").path
    from memcgctl.kernel.discovery import build_fake_root

    path = tmp_path / "cgroup"
    build_fake_root(path, 1 if request.param == "fake-v1" else 2)
    return path


# Files the kernel changes by itself (counters), left out of snapshots.
COUNTER_WORDS = ("usage", "failcnt", "peak", "stat", "events", "current", "slabinfo", "pressure")


def snapshot(root: Path) -> dict:
    """Every directory and settings file under ROOT, with the file's content."""
    state = {}
    for directory, _, files in os.walk(root):
        state[directory] = None
        for name in files:
            if any(word in name for word in COUNTER_WORDS):
                continue
            path = os.path.join(directory, name)
            try:
                state[path] = Path(path).read_bytes()
            except OSError:
                state[path] = "unreadable"  # write-only kernel files
    return state


def stat_json(root: Path, *groups: str) -> list[dict]:
    result = run_cli(root, "stat", "--json", *groups)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_create_is_quiet_and_the_group_appears(root):
    result = run_cli(root, "create", "web")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert [row["group"] for row in stat_json(root)] == ["web"]


def test_create_existing_group_is_73_unless_exist_ok(root):
    run_cli(root, "create", "web")
    result = run_cli(root, "create", "web")
    assert result.exit_code == 73
    assert result.stderr.startswith("memcgctl: create group web: the group exists (")
    assert run_cli(root, "create", "--exist-ok", "web").exit_code == 0


def test_create_exist_ok_with_another_limit_is_73_and_leaves_the_limit(root):
    """`create --exist-ok web --limit 1G` means "web exists with 1G": an
    existing web with another limit is said, and left as it was."""
    assert run_cli(root, "create", "web", "--limit", "500M").exit_code == 0
    result = run_cli(root, "create", "--exist-ok", "web", "--limit", "1G")
    assert (result.exit_code, result.stdout) == (73, "")
    assert result.stderr.startswith("memcgctl: create group web: the group exists with a limit of 500 MiB, not "
                                    "1 GiB; nothing was changed (`memcgctl limit` changes it) (")
    assert stat_json(root, "web")[0]["limit"] == 500 * 1024**2
    again = run_cli(root, "create", "--exist-ok", "web", "--limit", "500M")  # the same limit: done already
    assert (again.exit_code, again.stdout, again.stderr) == (0, "", "")
    assert stat_json(root, "web")[0]["limit"] == 500 * 1024**2
    assert run_cli(root, "create", "unlimited").exit_code == 0
    refused = run_cli(root, "create", "--exist-ok", "unlimited", "--limit", "1G")
    assert refused.exit_code == 73 and "exists with no limit, not 1 GiB" in refused.stderr
    assert stat_json(root, "unlimited")[0]["limit"] is None


def test_a_dry_run_of_a_limit_the_group_holds_is_nothing_to_do(root):
    assert run_cli(root, "create", "web", "--limit", "500M").exit_code == 0
    same = run_cli(root, "-n", "limit", "web", "500M")
    assert (same.exit_code, same.stdout, same.stderr) == (0, "# nothing to do\n", "")
    other = run_cli(root, "-n", "limit", "web", "600M")
    assert other.exit_code == 0 and str(600 * 1024**2) in other.stdout
    assert stat_json(root, "web")[0]["limit"] == 500 * 1024**2


def test_create_with_missing_parent_is_66_and_parents_makes_it(root):
    result = run_cli(root, "create", "batch/job1")
    assert result.exit_code == 66
    assert "use -p" in result.stderr
    assert run_cli(root, "create", "-p", "batch/job1").exit_code == 0
    assert [row["group"] for row in stat_json(root)] == ["batch", "batch/job1"]


def test_create_with_limit_sets_it(root):
    assert run_cli(root, "create", "web", "--limit", "400M").exit_code == 0
    assert stat_json(root, "web")[0]["limit"] == 400 * MIB


def test_limit_set_then_shown_in_bytes(root):
    run_cli(root, "create", "web")
    result = run_cli(root, "limit", "web", "256M")
    assert (result.exit_code, result.stdout) == (0, "")
    shown = run_cli(root, "limit", "web")
    assert "limit" in shown.stdout and "256 MiB (268435456 bytes)" in shown.stdout
    assert stat_json(root, "web")[0]["limit"] == 256 * MIB


@pytest.mark.parametrize("word", ["max", "unlimited", "-1"])
def test_unlimited_is_null_in_json(root, word):
    run_cli(root, "create", "web", "--limit", "1G")
    assert run_cli(root, "limit", "web", word).exit_code == 0
    assert stat_json(root, "web")[0]["limit"] is None


def test_verbose_limit_reports_what_the_kernel_holds(root):
    run_cli(root, "create", "web")
    result = run_cli(root, "limit", "-v", "web", "1G")
    assert "limit" in result.stdout and "1 GiB (1073741824 bytes)" in result.stdout


def test_stat_json_has_the_documented_keys(root):
    run_cli(root, "create", "web")
    (row,) = stat_json(root, "web")
    assert set(row) == STAT_KEYS
    assert row["group"] == "web"
    assert isinstance(row["usage"], int) and isinstance(row["stat"], dict) and row["pids"] == 0


def test_stat_recursive_and_plain_table_when_piped(root):
    run_cli(root, "create", "-p", "a/b", "c")
    assert [row["group"] for row in stat_json(root)] == ["a", "a/b", "c"]
    recursive = run_cli(root, "stat", "-r", "a")
    lines = recursive.stdout.splitlines()
    assert lines[0].split()[:3] == ["GROUP", "USAGE", "LIMIT"]
    assert [line.split()[0] for line in lines[1:]] == ["a", "a/b"]


def test_bad_size_is_usage_error_and_nothing_changes(root):
    run_cli(root, "create", "web")
    before = snapshot(root)
    result = run_cli(root, "limit", "web", "10X")
    assert result.exit_code == 2
    assert "'10X'" in result.stderr
    assert snapshot(root) == before


@pytest.mark.parametrize("name", ["..", "../x", "a/../../x", "/../etc", "web/.."])
def test_names_that_leave_the_root_are_refused(root, name):
    before = snapshot(root)
    result = run_cli(root, "create", "-p", name)
    assert result.exit_code == 2
    assert snapshot(root) == before


def test_option_of_the_other_version_is_69(root):
    run_cli(root, "create", "web")
    version = stat_json(root, "web")[0]["cgroup_version"]
    option = "--high" if version == 1 else "--soft"
    result = run_cli(root, "limit", "web", option, "100M")
    assert result.exit_code == 69
    assert f"not available on cgroup v{version}" in result.stderr


def test_delete_removes_and_missing_group_is_66(root):
    run_cli(root, "create", "web")
    assert run_cli(root, "delete", "web").exit_code == 0
    assert stat_json(root) == []
    result = run_cli(root, "delete", "web")
    assert result.exit_code == 66
    assert "no such group" in result.stderr


def test_delete_with_children_needs_recursive(root):
    run_cli(root, "create", "-p", "batch/job1/step")
    result = run_cli(root, "delete", "batch")
    assert result.exit_code == 75
    assert "child group" in result.stderr
    assert run_cli(root, "delete", "-r", "batch").exit_code == 0
    assert stat_json(root) == []


def test_dry_run_prints_shell_lines_and_changes_nothing(root):
    run_cli(root, "create", "web", "--limit", "1G")
    before = snapshot(root)
    created = run_cli(root, "-n", "create", "-p", "batch/job1", "--limit", "400M")
    limited = run_cli(root, "limit", "--dry-run", "web", "400M")
    deleted = run_cli(root, "-n", "delete", "web")
    assert snapshot(root) == before
    assert created.exit_code == limited.exit_code == deleted.exit_code == 0
    assert f"mkdir {root}/batch\n" in created.stdout and f"mkdir {root}/batch/job1\n" in created.stdout
    assert "echo 419430400 > " in limited.stdout
    assert deleted.stdout == f"rmdir {root}/web\n"


def test_attach_missing_process_is_66(root):
    run_cli(root, "create", "web")
    result = run_cli(root, "attach", "web", "4194304")  # pid_max is at most 4194304: no process has it
    assert result.exit_code == 66
    assert "no such process" in result.stderr


def test_shrink_already_under_target_is_success(root):
    run_cli(root, "create", "web")
    result = run_cli(root, "shrink", "-v", "web", "1G")
    assert result.exit_code == 0
    assert result.stdout.startswith("web: ") and "(target 1 GiB)" in result.stdout


def test_missing_group_is_66_for_every_command(root):
    for args in (["limit", "nope", "1G"], ["shrink", "nope", "1M"], ["stat", "nope"], ["empty", "nope"]):
        result = run_cli(root, *args)
        assert result.exit_code == 66, args
        assert result.stderr.startswith("memcgctl: ")


def test_tree_of_the_root_names_it_and_indents_its_children(root):
    """`tree /`: the root as "/" with its children one level in (v1, or a
    delegated v2 root); a v2 hierarchy's own root has no memory.current, so
    there the groups below it are shown, as by `tree` alone."""
    assert run_cli(root, "create", "-p", "batch/job1", "web").exit_code == 0
    plain = run_cli(root, "tree")
    assert [line.split()[0] for line in plain.stdout.splitlines()] == ["batch", "job1", "web"]
    result = run_cli(root, "tree", "/")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    root_is_a_group = (root / "memory.limit_in_bytes").exists() or (root / "memory.current").exists()
    assert root_is_a_group == ((root / "memory.limit_in_bytes").exists() or root.is_relative_to("/sys"))
    if root_is_a_group:
        assert lines[0].startswith("/  ") and [line[:8] for line in lines[1:]] == [
            "    batc", "        ", "    web "]
        assert lines[2].startswith("        job1  ")
    else:
        assert result.stdout == plain.stdout
# --- one reader: stat, top, export and the daemon agree ----------------------------------


def top_json(root: Path, *groups: str) -> dict:
    result = run_cli(root, "top", "--json", "-n", "1", *groups)
    assert result.exit_code == 0, result.stderr
    frame = json.loads(result.stdout)
    return {row["group"]: row for row in frame["groups"]}


def exported(root: Path, metric: str) -> dict:
    """{group: value} of METRIC in `memcgctl export` (absent: unlimited)."""
    from prometheus_client.parser import text_string_to_metric_families

    result = run_cli(root, "export")
    assert result.exit_code == 0, result.stderr
    values = {}
    for family in text_string_to_metric_families(result.stdout):
        for sample in family.samples:
            if sample.name == f"memcgctl_{metric}":
                values[sample.labels["group"]] = int(sample.value)
    return values


def daemon_reading(root: Path, name: str, directory: Path):
    """The daemon's snapshot of group NAME (Engine.read), as a rule of any
    policy gets it; its configuration file goes in DIRECTORY."""
    from memcgctl.daemon.config import load_config
    from memcgctl.daemon.engine import Engine
    from memcgctl.daemon.log import DaemonLog
    from memcgctl.kernel.discovery import open_hierarchy

    config = directory / "daemon.toml"
    config.write_text(f'[[group]]\nmatch = "{name}"\npolicy = "watermark"\nhigh = "900M"\nlow = "800M"\n')
    engine = Engine(open_hierarchy(root), load_config(config), DaemonLog(verbose=False), dry_run=True)
    try:
        engine.discover(0.0)
        return engine.read(engine.watched[name], 0.0)
    finally:
        engine.poller.close()


@pytest.mark.parametrize("word", ["300M", "max"])
def test_stat_top_export_and_the_daemon_agree_on_usage_and_limit(root, tmp_path, word):
    """A fake v1 tree once showed `"limit": -1` and -104857600 percent in
    top --json after `limit db max`, where stat and export said unlimited."""
    assert run_cli(root, "create", "db", "--limit", "1G").exit_code == 0
    created = stat_json(root, "db")[0]
    if created["path"].startswith(str(tmp_path)):  # a fake tree: 100M in use, as its file says
        usage_file = "memory.usage_in_bytes" if created["cgroup_version"] == 1 else "memory.current"
        (root / "db" / usage_file).write_text(str(100 * MIB))
    assert run_cli(root, "limit", "db", word).exit_code == 0
    limit = None if word == "max" else 300 * MIB

    stat = stat_json(root, "db")[0]
    top = top_json(root, "db")["db"]
    usages, limits = exported(root, "memory_usage_bytes"), exported(root, "memory_limit_bytes")
    reading = daemon_reading(root, "db", tmp_path)

    assert stat["limit"] == top["limit"] == limits.get("db") == reading.limit == limit
    if limit is None:
        assert "db" not in limits and top["percent_of_limit"] is None
    else:
        assert top["percent_of_limit"] == round(100 * top["usage"] / limit, 1)
    # The kernel's usage moves a little between two readers: a page or so.
    assert abs(stat["usage"] - top["usage"]) <= MIB and abs(stat["usage"] - usages["db"]) <= MIB
    assert abs(stat["usage"] - reading.usage) <= MIB


def test_stat_top_and_export_agree_on_v1_oom_kills_and_v2_events(root):
    """memory.oom_control's oom_kill is v1's events figure, in all three."""
    run_cli(root, "create", "db")
    stat = stat_json(root, "db")[0]
    top = top_json(root, "db")["db"]
    kills = exported(root, "memory_events_oom_kill_total")
    assert stat["events"]["oom_kill"] == top["events"]["oom_kill"] == kills["db"] == 0
