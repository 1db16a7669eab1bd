"""memcgctl daemon on fake trees: the configuration and what --check says
of it, --dry-run, the pool's arithmetic, the counters file.  The kernel
behaviour is in tests/test_daemon.py (v1) and tests/test_daemon_v2.py (VM)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_daemon import wait_for

import memcgctl.kernel.fs
from memcgctl.daemon.counters import counters_file_name
from memcgctl.daemon.lock import root_key
from memcgctl.daemon.policies import PoolPolicy, Reading
from memcgctl.daemon.policies.pool import water_level
from memcgctl.safety.journal import Journal

from conftest import PROJECT, run_cli

MIB = 1024**2


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "daemon.toml"
    path.write_text(text)
    return path


WATERMARK = '[[group]]\nmatch = "web"\npolicy = "watermark"\nhigh = "900M"\nlow = "800M"\n'


@pytest.mark.parametrize(("text", "message"), [
    ("interval = 0\n" + WATERMARK,
     "configuration line 1, key 'interval': expected a number of seconds above 0, not 0"),
    ("intreval = 1\n", "configuration line 1, key 'intreval': unknown key (known: interval, rescan_interval, "
                       "max_cpu_percent, [[group]], [[pool]])"),
    (WATERMARK.replace('"800M"', '"8OOM"'), "configuration line 5, key 'low': bad size '8OOM': expected bytes"),
    (WATERMARK.replace('"800M"', '"950M"'), "configuration line 5, key 'low': low (950M) must be below high"),
    (WATERMARK.replace('"900M"', '"190%"'), "configuration line 4, key 'high': a percentage must be from 0% "
                                            "to 100%, not '190%'"),
    (WATERMARK + "hihg = 1\n", "configuration line 6, key 'hihg': unknown key in [[group]] with policy "
                               "'watermark'"),
    (WATERMARK.replace("watermark", "senpai"), "configuration line 3, key 'policy': unknown policy 'senpai' "
                                               "(known: pressure, watermark"),
    (WATERMARK.replace('match = "web"', 'match = "/"'), "configuration line 2, key 'match': the root is not a "
                                                        "group the daemon may change"),
    (WATERMARK.replace('match = "web"\n', ''), "configuration line 1, key 'match': [[group]] 1 needs 'match'"),
    ('[[pool]]\ngroups = ["a"]\nbudget = "1G"\nshare = { a = -1 }\n',
     "configuration line 4, key 'share': expected a number above 0, not -1"),
    ('[[pool]]\ngroups = []\nbudget = "1G"\n', "configuration line 2, key 'groups': expected a list of group"),
    ("[[group]\n", "configuration: not valid TOML: "),
    # Legal TOML that passed without a word, and surely is not what was meant:
    ('[[pool]]\ngroups = ["a", "b"]\nbudget = "1G"\nshare = { a = 2, c = 3 }\n',
     "configuration line 4, key 'share': 'c' is not in the pool's groups (a, b)"),
    (WATERMARK + 'max_bytes_per_second = "0"\n', "configuration line 6, key 'max_bytes_per_second': 0 would never "
                                                 "reclaim: to turn a rule off, remove or comment out its table"),
    (WATERMARK + 'min = "850M"\n', "configuration line 6, key 'min': min (850 MiB) is above low (800M): the group "
                                   "could never get down to low"),
    (WATERMARK + "\n" + WATERMARK.replace('"900M"', '"2G"'),
     "configuration line 8, key 'match': 'web' is matched by [[group]] 1 (line 1) already: one rule per group"),
    (WATERMARK.replace('"900M"', "200").replace('"800M"', "100"),
     "configuration line 4, key 'high': 200 is 200 bytes, surely not what is meant: write the unit (\"200M\", "
     "or \"200B\" if bytes are meant)"),
    (WATERMARK.replace('"800M"', '"512"'), "configuration line 5, key 'low': '512' is 512 bytes, surely not"),
    ("", "configuration: empty: nothing for the daemon to do"),
    ("# nothing yet\ninterval = 2\n", "configuration: no [[group]] or [[pool]] table: nothing for the daemon to do"),
    ("interval = 1e-9\n" + WATERMARK, "configuration line 1, key 'interval': expected at least 0.01 s, not 1e-09: "
                                      "each pass reads every polled group"),
    ("rescan_interval = 0.001\n" + WATERMARK, "configuration line 1, key 'rescan_interval': expected at least 0.01 s"),
    # A kernel file's name is no group: 78 with the line (it was exit 2 at the
    # first pass, restarted by systemd, and a reload to it dropped the rules).
    # Values that passed --check without a word:
    (WATERMARK.replace('"900M"', "99999999999999999999"),
     "configuration line 4, key 'high': 99999999999999999999 is larger than 2^63 - 1 bytes, the most a kernel file "
     "holds"),
    (WATERMARK + "min = 9223372036854775808\n", "configuration line 6, key 'min': 9223372036854775808 is larger "
                                                "than 2^63 - 1 bytes"),
    ("interval = 1e300\n" + WATERMARK, "configuration line 1, key 'interval': expected at most 86400 s (a day), "
                                       "not 1e+300"),
    (WATERMARK + "step_seconds = 1e300\n", "configuration line 6, key 'step_seconds': expected at most 86400 s"),
    (WATERMARK + "backoff_max = 86401\n", "configuration line 6, key 'backoff_max': expected at most 86400 s"),
    ('[[pool]]\ngroups = ["a", "b"]\nbudget = "0"\n', "configuration line 3, key 'budget': 0 would take every group "
                                                     "of the pool down to its min, as far as the kernel can: to turn "
                                                     "a pool off, remove or comment out its table"),
    (WATERMARK.replace('"900M"', '"80%"').replace('"800M"', '"90%"'),
     "configuration line 5, key 'low': low (90%) must be below high (80%)"),
    ('[[pool]]\ngroups = ["a", "b"]\nbudget = "1G"\n\n[[pool]]\ngroups = ["c", "b"]\nbudget = "2G"\n',
     "configuration line 6, key 'groups': 'b' is in [[pool]] 1 (line 1) already: a group in two pools would be "
     "shrunk for both budgets; one pool per group"),
    ('[[pool]]\ngroups = ["batch/*"]\nbudget = "1G"\n\n[[pool]]\ngroups = ["batch/a"]\nbudget = "2G"\n',
     "configuration line 6, key 'groups': 'batch/a' is in [[pool]] 1 (line 1) already (as 'batch/*'): a group in "
     "two pools"),
    (WATERMARK.replace('"web"', '"web/memory.max"'), "configuration line 2, key 'match': 'memory.max' is the name "
                                                     "of a kernel file of a cgroup, not of a group"),
    ('[[pool]]\ngroups = ["a/cgroup.procs"]\nbudget = "1G"\n',
     "configuration line 2, key 'groups': 'cgroup.procs' is the name of a kernel file of a cgroup, not of a group"),
])
def test_check_names_the_line_and_key_at_fault_and_exits_78(fake_v1, tmp_path, text, message):
    config = write(tmp_path, text)
    result = run_cli(fake_v1, "daemon", "--config", str(config), "--check")
    assert result.exit_code == 78
    assert result.stderr.startswith(f"memcgctl: {message}"), result.stderr
    assert result.stderr.endswith(f" ({config})\n") and result.stderr.count("\n") == 1
    assert result.stdout == ""


@pytest.mark.parametrize("groups, outer, inner", [
    ('["batch", "batch/a"]', "batch", "batch/a"),
    ('["batch/a", "b*"]', "b*", "batch/a"),
    ('["*", "web/x"]', "*", "web/x"),
])
def test_a_pool_whose_groups_nest_is_refused_at_check_and_at_load(fake_v1, tmp_path, journal_directory, groups,
                                                                  outer, inner):
    """Issue 17, finding 4: a group's usage includes its children's, so a pool
    of batch and batch/a counted batch/a twice and reclaimed under budget."""
    for name in ("batch/a", "web/x"):
        assert run_cli(fake_v1, "create", "-p", name, "--limit", "1G").exit_code == 0
    (fake_v1 / "batch" / "memory.usage_in_bytes").write_text(str(150 * MIB))
    (fake_v1 / "batch" / "a" / "memory.usage_in_bytes").write_text(str(150 * MIB))
    limits = {name: (fake_v1 / name / "memory.limit_in_bytes").read_text() for name in ("batch", "batch/a")}
    config = write(tmp_path, f'[[pool]]\ngroups = {groups}\nbudget = "200M"\n')
    message = (f"memcgctl: configuration line 2, key 'groups': {inner!r} may name groups inside {outer!r}: a "
               "group's usage includes its children's (on both cgroup versions), so the pool would count their "
               f"memory twice; list the parent or its children, not both ({config})\n")
    for args in (["--check"], ["--once"]):
        result = run_cli(fake_v1, "daemon", "--config", str(config), *args)
        assert (result.exit_code, result.stdout, result.stderr) == (78, "", message)
    assert {name: (fake_v1 / name / "memory.limit_in_bytes").read_text() for name in limits} == limits
    assert not list(journal_directory.glob("daemon-counters*"))


def test_pool_groups_that_cannot_nest_are_taken(fake_v1, tmp_path):
    for name in ("batch/a", "web/x", "ab"):
        assert run_cli(fake_v1, "create", "-p", name).exit_code == 0
    config = write(tmp_path, '[[pool]]\ngroups = ["batch/a", "web/x", "a*", "w*/y"]\nbudget = "200M"\n')
    result = run_cli(fake_v1, "daemon", "--config", str(config), "--check")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == "[[pool]] 1 (line 1): pool: ab batch/a web/x\n"
@pytest.mark.parametrize("text", [
    WATERMARK.replace('"900M"', '"1G"').replace('"800M"', "1048576"),  # a bare number of 1 MiB and up is bytes
    WATERMARK + 'min = "800M"\nmax_bytes_per_second = "200B"\n',  # a unit says bytes are meant
    '[[pool]]\ngroups = ["batch/*", "web"]\nbudget = "1G"\nshare = { "batch/a" = 2, "b*" = 3 }\n',
    "interval = 0.01\n" + WATERMARK,
    "interval = 86400\n" + WATERMARK.replace('"900M"', "9223372036854775807") + "step_seconds = 86400\n",
    '[[pool]]\ngroups = ["a", "b"]\nbudget = "1M"\n\n[[pool]]\ngroups = ["c", "ab"]\nbudget = "2G"\n',
])
def test_values_near_the_new_checks_still_pass(fake_v1, tmp_path, text):
    result = run_cli(fake_v1, "daemon", "--config", str(write(tmp_path, text)), "--check")
    assert (result.exit_code, result.stderr) == (0, "")


def test_a_missing_file_is_78_too(fake_v1, tmp_path):
    result = run_cli(fake_v1, "daemon", "--config", str(tmp_path / "nothing.toml"), "--check")
    assert (result.exit_code, result.stderr) == (
        78, f"memcgctl: read configuration: no such file or directory (ENOENT) ({tmp_path / 'nothing.toml'})\n")


@pytest.mark.parametrize("args", [["--check"], ["--once"]])
def test_a_file_that_is_not_utf8_is_78_in_memcgctl_words(fake_v1, tmp_path, args):
    assert run_cli(fake_v1, "create", "web", "--limit", "1G").exit_code == 0
    config = tmp_path / "daemon.toml"
    config.write_bytes(b'[[group]]\nmatch = "w\xffeb"\npolicy = "watermark"\nhigh = "20M"\nlow = "10M"\n')
    result = run_cli(fake_v1, "daemon", "--config", str(config), *args)
    assert (result.exit_code, result.stdout) == (78, "")
    assert result.stderr == ("memcgctl: read configuration: not UTF-8 text (as TOML must be): byte 0xff at offset 20 "
                             f"(line 2) ({config})\n")
    assert (fake_v1 / "web" / "memory.limit_in_bytes").read_text().strip() == str(1024**3)


def test_the_example_configuration_checks(fake_root):
    for name in ("batch/one", "batch/two", "a", "b"):
        assert run_cli(fake_root, "create", "-p", name).exit_code == 0
    assert run_cli(fake_root, "create", "web", "--limit", "1G").exit_code == 0  # its rule is in percent of it
    result = run_cli(fake_root, "daemon", "--config", str(PROJECT / "examples" / "daemon.toml"), "--check")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "[[group]] 1 (line 10): watermark: batch/one batch/two",
        "[[group]] 2 (line 21): watermark: web",
        "[[pool]] 1 (line 29): pool: a b",
    ]


def test_check_warns_of_a_percentage_on_a_group_without_a_hard_limit_and_exits_0(fake_root, tmp_path):
    for name, limit in (("web", "1G"), ("batch", None)):
        assert run_cli(fake_root, "create", name, *(["--limit", limit] if limit else [])).exit_code == 0
    config = write(tmp_path, WATERMARK.replace('"web"', '"*"').replace('"900M"', '"90%"').replace('"800M"', '"80%"'))
    result = run_cli(fake_root, "daemon", "--config", str(config), "--check")
    assert result.exit_code == 0
    assert result.stdout == "[[group]] 1 (line 1): watermark: batch web\n"
    assert result.stderr == (
        'memcgctl: warning: batch: [[group]] 1 (line 1): high = "90%", low = "80%": a percentage of the hard limit, '
        f"and the group has none: the rule does nothing for it until it gets one ({config})\n")
    assert run_cli(fake_root, "limit", "batch", "2G").exit_code == 0  # given a limit, the rule works: no word
    assert run_cli(fake_root, "daemon", "--config", str(config), "--check").stderr == ""


def test_check_warns_of_two_rules_on_one_group_through_globs_and_exits_0(fake_v1, tmp_path):
    for name in ("batch/a", "batch/b"):
        assert run_cli(fake_v1, "create", "-p", name).exit_code == 0
    config = write(tmp_path, WATERMARK.replace('"web"', '"batch/*"') + "\n"
                   + WATERMARK.replace('"web"', '"batch/a"').replace('"900M"', '"2G"'))
    result = run_cli(fake_v1, "daemon", "--config", str(config), "--check")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["[[group]] 1 (line 1): watermark: batch/a batch/b",
                                          "[[group]] 2 (line 7): watermark: batch/a"]
    assert result.stderr == ("memcgctl: warning: batch/a: matched by [[group]] 1 (line 1) and [[group]] 2 (line 7): "
                             "each rule acts on it on its own (one rule per group is what the daemon is made for) "
                             f"({config})\n")


def test_check_warns_of_a_group_two_pools_take_through_globs_and_exits_0(fake_v1, tmp_path):
    for name in ("batch", "bulk", "web"):
        assert run_cli(fake_v1, "create", name).exit_code == 0
    config = write(tmp_path, '[[pool]]\ngroups = ["b*h"]\nbudget = "1G"\n\n[[pool]]\ngroups = ["ba*", "web"]\n'
                             'budget = "2G"\n')
    result = run_cli(fake_v1, "daemon", "--config", str(config), "--check")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["[[pool]] 1 (line 1): pool: batch", "[[pool]] 2 (line 5): pool: batch web"]
    assert result.stderr == ("memcgctl: warning: batch: in [[pool]] 1 (line 1) and [[pool]] 2 (line 5): each pool "
                             "counts it in its budget and shrinks it for that budget (one pool per group is what the "
                             f"daemon is made for) ({config})\n")


def test_check_warns_of_a_low_size_above_a_high_percentage_for_a_group_and_exits_0(fake_v1, tmp_path):
    for name, limit in (("web", "1G"), ("big", "4G")):
        assert run_cli(fake_v1, "create", name, "--limit", limit).exit_code == 0
    config = write(tmp_path, WATERMARK.replace('"web"', '"*"').replace('"900M"', '"50%"'))
    result = run_cli(fake_v1, "daemon", "--config", str(config), "--check")
    assert result.exit_code == 0
    assert result.stderr == ('memcgctl: warning: web: [[group]] 1 (line 1): high = "50%" is 512 MiB and low = "800M" '
                             "is 800 MiB of its hard limit (1 GiB): low is not below high for this group "
                             f"({config})\n")


def test_names_are_cleaned_and_globs_match_one_level_each(fake_v2, tmp_path):
    for name in ("batch/a", "batch/b/deeper", "batchy", "web"):
        assert run_cli(fake_v2, "create", "-p", name).exit_code == 0
    config = write(tmp_path, WATERMARK.replace('match = "web"', 'match = "/batch//*/"') + WATERMARK.replace(
        'match = "web"', 'match = "b*"'))
    result = run_cli(fake_v2, "daemon", "--config", str(config), "--check")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.splitlines() == ["[[group]] 1 (line 1): watermark: batch/a batch/b",
                                          "[[group]] 2 (line 6): watermark: batch batchy"]


def test_dry_run_logs_the_writes_it_would_make_and_writes_nothing(fake_v1, tmp_path, journal_directory):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    (fake_v1 / "web" / "memory.usage_in_bytes").write_text(str(950 * MIB))
    config = write(tmp_path, WATERMARK)
    result = run_cli(fake_v1, "-n", "daemon", "--config", str(config), "--once")
    assert result.exit_code == 0
    limit = fake_v1 / "web" / "memory.limit_in_bytes"
    assert result.stderr == (f"memcgctl daemon: web: watermark: usage 950 MiB >= high 900 MiB: would run: "
                             f"echo {800 * MIB} > {limit}; echo {1024 * MIB} > {limit}\n")
    assert limit.read_text() == str(1024 * MIB)
    assert list(journal_directory.glob("daemon-counters*")) == []


def test_once_counts_what_it_did_in_the_counters_file(fake_v1, tmp_path, journal_directory):
    run_cli(fake_v1, "create", "web")
    run_cli(fake_v1, "create", "idle")
    (fake_v1 / "web" / "memory.usage_in_bytes").write_text(str(950 * MIB))
    config = write(tmp_path, WATERMARK.replace('"web"', '"*"'))
    result = run_cli(fake_v1, "daemon", "--config", str(config), "--once")
    assert result.exit_code == 0
    # A fake tree does not reclaim: the step ends where it began.
    assert "web: watermark: usage 950 MiB >= high 900 MiB: 950 MiB -> 950 MiB in " in result.stderr
    document = json.loads((journal_directory / counters_file_name(fake_v1)).read_text())
    assert set(document) == {"pid", "started", "root", "root_device", "root_inode", "rows"}
    assert (document["root"], document["root_device"], document["root_inode"]) == (
        str(fake_v1), fake_v1.stat().st_dev, fake_v1.stat().st_ino)
    assert document["rows"] == [
        {"group": "idle", "policy": "watermark", "reclaimed_bytes": 0, "actions": 0, "backoffs": 0, "errors": 0},
        {"group": "web", "policy": "watermark", "reclaimed_bytes": 0, "actions": 1, "backoffs": 0, "errors": 0},
    ]


def test_a_group_another_memcgctl_holds_is_skipped_not_waited_for(fake_v1, tmp_path, journal_directory):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    (fake_v1 / "web" / "memory.usage_in_bytes").write_text(str(950 * MIB))
    config = write(tmp_path, WATERMARK)
    with Journal(journal_directory).locked(fake_v1 / "web"):  # as a `memcgctl shrink web` holds it
        started = time.monotonic()
        result = run_cli(fake_v1, "-v", "daemon", "--config", str(config), "--once")
        took = time.monotonic() - started
    assert result.exit_code == 0
    assert "web: watermark: another memcgctl holds the group; skipped this pass" in result.stderr
    assert took < 2, "the daemon must not wait for the lock"
    assert (fake_v1 / "web" / "memory.limit_in_bytes").read_text() == str(1024 * MIB)
    assert counters(journal_directory)[("web", "watermark")]["actions"] == 0


@pytest.mark.parametrize(("usage_after", "backs_off"), [(700, False), (900, True)], ids=["got-there", "did-not"])
def test_ebusy_backs_off_only_when_usage_stayed_above_the_target(fake_v1, tmp_path, journal_directory,
                                                                  monkeypatch, usage_after, backs_off):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    usage = fake_v1 / "web" / "memory.usage_in_bytes"
    usage.write_text(str(950 * MIB))
    real_write = os.write

    def busy_lowering(fd, data):
        if data == str(800 * MIB).encode():  # the lowered limit: the kernel says EBUSY
            usage.write_text(str(usage_after * MIB))  # what the group holds meanwhile
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        return real_write(fd, data)

    monkeypatch.setattr(memcgctl.kernel.fs.os, "write", busy_lowering)
    result = run_cli(fake_v1, "daemon", "--config", str(write(tmp_path, WATERMARK)), "--once")
    assert result.exit_code == 0
    assert f"web: watermark: usage 950 MiB >= high 900 MiB: 950 MiB -> {usage_after} MiB in " in result.stderr
    assert ("backing off: the kernel could reclaim no more" in result.stderr) == backs_off
    assert counters(journal_directory)[("web", "watermark")]["backoffs"] == int(backs_off)
    assert list(journal_directory.glob("*.restore")) == []  # EBUSY: the kernel kept the limit, nothing to undo


def counters(journal_directory: Path) -> dict:
    document = json.loads(next(journal_directory.glob("daemon-counters-*.json")).read_text())  # one root
    return {(row["group"], row["policy"]): row for row in document["rows"]}


def test_watermark_goes_on_to_low_after_a_crossing_until_a_step_gets_there():
    from memcgctl.daemon.policies import WatermarkPolicy
    from memcgctl.daemon.values import size_or_percent

    policy = WatermarkPolicy({"high": size_or_percent("100M"), "low": size_or_percent("50%")})
    state: dict = {}
    limited = reading("web", 80)._replace(limit=100 * MIB)  # high 100M, low 50M
    assert policy.plan(limited, state) is None  # between the two, never crossed
    step = policy.plan(limited._replace(usage=100 * MIB), state)
    assert step.target == 50 * MIB and step.why == "usage 100 MiB >= high 100 MiB"
    policy.stepped(limited._replace(usage=70 * MIB), state)  # held back by the rate cap: not there yet
    assert policy.plan(limited._replace(usage=70 * MIB), state).why == (
        "usage 70 MiB (crossed high 100 MiB at 100 MiB)")
    policy.stepped(limited._replace(usage=50 * MIB), state)
    assert policy.plan(limited._replace(usage=90 * MIB), state) is None  # refilled, not crossed again
    assert policy.plan(limited._replace(limit=None, usage=900 * MIB), state) is None  # 50% of unlimited


# --- the pool's arithmetic ---------------------------------------------------------


def reading(name: str, mebibytes: int) -> Reading:
    return Reading(name, 0.0, mebibytes * MIB, None, 0, {}, None)


def test_pool_takes_from_the_furthest_above_share_until_they_are_level():
    pool = PoolPolicy({"groups": ("*",), "budget": 300 * MIB})
    # Shares 100M each: a is 200M above, b 100M above, c 100M under; excess
    # 200M: a gives 150M, b 50M, and both end 50M above their share.
    steps = dict(pool.plan([reading("a", 300), reading("b", 200), reading("c", 0)], {}))
    assert set(steps) == {"a", "b"}
    assert (steps["a"].target, steps["b"].target) == (150 * MIB, 150 * MIB)
    assert "pool total 500 MiB > budget 300 MiB" in steps["a"].why


def test_pool_weights_shift_the_shares_and_under_budget_does_nothing():
    pool = PoolPolicy({"groups": ("*",), "budget": 300 * MIB, "share": {"a": 2.0}})
    # Shares: a 150M, b 75M, c 75M.  a is 50M above, b 75M above; excess 60M.
    steps = dict(pool.plan([reading("a", 200), reading("b", 150), reading("c", 10)], {}))
    assert list(steps) == ["a", "b"]
    assert steps["b"].target - 75 * MIB == steps["a"].target - 150 * MIB  # equally far above their shares
    assert (200 * MIB - steps["a"].target) + (150 * MIB - steps["b"].target) == pytest.approx(60 * MIB, abs=2)
    assert pool.plan([reading("a", 100), reading("b", 100)], {}) == []


@pytest.mark.parametrize(("above", "excess", "level"), [
    ([100.0], 60.0, 40.0),
    ([100.0, 50.0, -150.0], 0.0, 100.0),
    ([100.0, 100.0], 100.0, 50.0),
    ([30.0, 20.0, 10.0], 60.0, 0.0),
])
def test_water_level(above, excess, level):
    assert water_level(above, excess) == pytest.approx(level)
    assert sum(max(0.0, amount - level) for amount in above) == pytest.approx(min(excess, sum(
        a for a in above if a > 0)))


def test_a_dry_run_daemon_keeps_making_passes_and_stops_on_sigterm(fake_v2, tmp_path):
    """A dry run writes no counters file; its loop must still wake at each
    interval (it once waited forever after the first pass)."""
    import signal
    import subprocess
    import sys
    import time

    run_cli(fake_v2, "create", "web")
    (fake_v2 / "web" / "memory.current").write_text(str(950 * MIB))
    config = write(tmp_path, "interval = 0.2\n" + WATERMARK)
    daemon = subprocess.Popen([sys.executable, "-m", "memcgctl", "--root", str(fake_v2), "-n", "daemon",
                               "--config", str(config)], stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    daemon.send_signal(signal.SIGTERM)
    _, stderr = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, stderr
    # A fake tree does not reclaim: every interval pass plans the same step again.
    assert stderr.count("web: watermark: usage 950 MiB >= high 900 MiB: would run: ") >= 3, stderr
    assert (fake_v2 / "web" / "memory.current").read_text() == str(950 * MIB)


# --- rows and lock files of vanished groups are forgotten (issue 17, finding 7) ---------


def test_rows_of_vanished_groups_are_forgotten_after_a_grace_period_and_capped():
    from memcgctl.daemon import counters as module

    counters = module.Counters(Path("/cg"), (1, 2))
    counters.add("stays", "watermark")
    counters.add("goes", "watermark", actions=3)
    counters.add("back", "watermark")
    counters.gone("goes", 100.0)
    counters.gone("back", 100.0)
    counters.add("back", "watermark")  # made again before the grace period ended
    counters.forget_expired(100.0 + module.FORGET_AFTER_SECONDS - 1)
    assert counters.get("goes", "watermark")["actions"] == 3  # still exported for a while
    counters.forget_expired(100.0 + module.FORGET_AFTER_SECONDS)
    assert sorted(group for group, _ in counters.rows) == ["back", "stays"]
    for number in range(module.MAX_GONE_ROWS + 50):
        counters.add(f"job{number}", "watermark")
        counters.gone(f"job{number}", 200.0 + number)
    gone = [group for group, _ in counters.rows if group.startswith("job")]
    assert len(gone) == module.MAX_GONE_ROWS and "job0" not in gone and f"job{module.MAX_GONE_ROWS + 49}" in gone
    assert json.loads(counters.encode())["rows"][0]["group"] == "back"


def test_500_short_lived_groups_leave_neither_500_rows_nor_500_lock_files(fake_v1, tmp_path, journal_directory):
    from memcgctl.daemon.counters import MAX_GONE_ROWS

    names = [f"job{number}" for number in range(500)]
    config = write(tmp_path, 'rescan_interval = 0.5\n\n[[group]]\nmatch = "job*"\npolicy = "watermark"\n'
                             'high = "900M"\nlow = "800M"\n')
    log = (tmp_path / "log").open("w")
    daemon = subprocess.Popen([sys.executable, "-m", "memcgctl", "--root", str(fake_v1), "daemon", "--config",
                               str(config)], stdout=subprocess.DEVNULL, stderr=log)
    counters_file = journal_directory / counters_file_name(fake_v1)

    def rows() -> list:
        try:
            return json.loads(counters_file.read_text())["rows"]
        except (OSError, ValueError):
            return []

    try:
        for start in range(0, 500, 50):  # groups come (every tenth over its watermark: a step, a lock file)...
            batch = set(names[start:start + 50])
            for name in batch:
                assert run_cli(fake_v1, "create", name).exit_code == 0
                if name.endswith("0"):
                    (fake_v1 / name / "memory.usage_in_bytes").write_text(str(950 * MIB))
            assert wait_for(lambda batch=batch: batch <= {row["group"] for row in rows()}, seconds=60), len(rows())
            for name in batch:  # ...and go
                shutil.rmtree(fake_v1 / name)
        assert wait_for(lambda: len(rows()) <= MAX_GONE_ROWS, seconds=60), len(rows())
        daemon_lock = [f"daemon-{root_key(fake_v1)}.lock"]  # only the daemon's own stays
        assert wait_for(lambda: [path.name for path in journal_directory.glob("*.lock")] == daemon_lock, 30), \
            sorted(path.name for path in journal_directory.glob("*.lock"))
        assert daemon.poll() is None
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    assert len(rows()) <= MAX_GONE_ROWS
