"""Commands that do not render for a person never import rich or humanfriendly.

Start-up time is most of what `stat --json`, `limit` and a TAB completion
cost, and rich and humanfriendly together take longer to import than click.
This checks which modules get imported (python -X importtime), not how long
anything takes, so it cannot flake on a busy machine.  bench/startup.py has
the timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_cli

PERSON_ONLY = ("rich", "humanfriendly")
# What only the daemon, `top` and the fleet export need: never loaded by a command
# a script runs every few seconds.  Checked by name, before and after they exist.
LATER_ONLY = ("memcgctl.daemon", "memcgctl.export", "memcgctl.render.live")
# Standard modules memcgctl's start-up avoids on purpose: json (its decoder
# compiles regular expressions; render/json_text.py writes the JSON) and
# signal (enums made at import; safety/signals.py uses _signal).
AVOIDED_STDLIB = ("json", "signal")

# The same start as the console script pip generates (memcgctl.cli:main).
CONSOLE_SCRIPT = "import sys; from memcgctl.cli import main; sys.argv[0] = 'memcgctl'; sys.exit(main())"
ENTRY_POINTS = {"python -m memcgctl": ["-m", "memcgctl"], "console script": ["-c", CONSOLE_SCRIPT]}


def imported_modules(entry: str, args: list[str], env: dict | None = None) -> tuple[set[str], str]:
    """The modules memcgctl ARGS imports (started as ENTRY), and its stdout."""
    environment = {**os.environ, **(env or {})}
    environment.pop("PYTHONPROFILEIMPORTTIME", None)
    completed = subprocess.run([sys.executable, "-X", "importtime", *ENTRY_POINTS[entry], *args],
                               capture_output=True, text=True, env=environment, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    modules = {line.rsplit("|", 1)[-1].strip() for line in completed.stderr.splitlines()
               if line.startswith("import time:")}
    assert "click" in modules, "no -X importtime output: the check below would prove nothing"
    return modules, completed.stdout


def person_only(modules: set[str]) -> list[str]:
    return sorted(name for name in modules if name.split(".")[0] in PERSON_ONLY)


def later_only(modules: set[str]) -> list[str]:
    return sorted(name for name in modules if name.startswith(LATER_ONLY))


@pytest.fixture
def root_with_web(fake_root):
    """A fake root (v1 and v2) holding the group web."""
    assert run_cli(fake_root, "create", "web").exit_code == 0
    return fake_root


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("args", [
    ["limit", "web", "400M"],
    ["stat", "--json", "web"],
    ["stat", "--json"],
    ["-n", "limit", "web", "1G"],
    ["top", "--json", "-n", "1"],
], ids=lambda args: " ".join(args) if isinstance(args, list) else args)
def test_machine_readable_commands_do_not_import_rich_or_humanfriendly(root_with_web, entry, args):
    modules, _ = imported_modules(entry, ["--root", str(root_with_web), *args])
    assert person_only(modules) == []


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("args", [["limit", "web", "400M"], ["stat", "--json", "web"], ["stat", "web"]],
                         ids=" ".join)
def test_stat_and_limit_load_nothing_of_the_daemon_top_or_export(root_with_web, entry, args):
    modules, stdout = imported_modules(entry, ["--root", str(root_with_web), *args])
    assert later_only(modules) == []
    if args[0] == "stat":
        assert "web" in stdout  # it ran
    if "--json" in args or args[0] == "limit":
        assert [name for name in AVOIDED_STDLIB if name in modules] == []
        assert "memcgctl.operations.shrink" not in modules  # a v1 limit and a stat never shrink


def test_the_package_loads_its_parts_only_when_used():
    script = ("import sys, memcgctl; before = set(sys.modules); from memcgctl import shrink, read_stats; "
              "print(sorted(m for m in set(sys.modules) - before if m.startswith('memcgctl')))")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    loaded = completed.stdout
    assert "'memcgctl.operations.shrink'" in loaded and "'memcgctl.operations.stats'" in loaded


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_completing_a_group_name_does_not_import_rich_or_humanfriendly(root_with_web, entry):
    modules, stdout = imported_modules(entry, [], env={
        "MEMCGCTL_ROOT": str(root_with_web),
        "COMP_WORDS": "memcgctl stat we",
        "COMP_CWORD": "2",
        "_MEMCGCTL_COMPLETE": "bash_complete",
    })
    assert "plain,web" in stdout.splitlines()
    assert person_only(modules) == []


@pytest.mark.parametrize("args", [["shrink", "web", "100M"], ["empty", "web"]], ids=" ".join)
def test_quiet_changes_do_not_import_rich_or_humanfriendly(root_with_web, args):
    # On a fake root usage is 0: the shrink succeeds at once and says nothing.
    modules, stdout = imported_modules("python -m memcgctl", ["--root", str(root_with_web), *args])
    assert stdout == ""
    assert person_only(modules) == []


def test_the_library_does_not_import_rich_or_humanfriendly(fake_v1):
    script = ("import sys; from memcgctl import open_hierarchy, read_stats, select_groups; "
              "backend = open_hierarchy(sys.argv[1]); read_stats(backend, select_groups(backend, []))")
    completed = subprocess.run([sys.executable, "-X", "importtime", "-c", script, str(fake_v1)],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    modules = {line.rsplit("|", 1)[-1].strip() for line in completed.stderr.splitlines()
               if line.startswith("import time:")}
    assert "memcgctl.operations.stats" in modules
    assert person_only(modules) == []


# --- `stat --json` is written without the json package, to the same text -------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, st.integers(0, 3))
def test_the_json_text_is_what_json_dumps_writes(value, level):
    from memcgctl.render.json_text import to_json_text

    assert to_json_text(value, level) == json.dumps(value, indent=2).replace("\n", "\n" + "  " * level)


def test_json_text_hands_what_it_does_not_write_to_json():
    from memcgctl.render.json_text import to_json_text

    for value in ({"ratio": 0.5}, {1: "a"}, [float("nan")]):
        assert to_json_text(value) == json.dumps(value, indent=2)


# --- the end of a command: no interpreter shutdown, the same exit status and output ---

EXIT_NOW = """
import atexit, sys, threading, time
from pathlib import Path
from memcgctl.cli.output import exit_now
marker = Path(sys.argv[1])
atexit.register(lambda: marker.with_suffix(".atexit").write_text("ran"))
if sys.argv[2] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.3), marker.write_text("thread done"))).start()
sys.stdout.write("printed, not flushed by hand")
sys.stderr.write("said")
exit_now(int(sys.argv[3]))
"""


def test_exit_now_keeps_the_status_and_the_output_and_skips_the_shutdown(tmp_path):
    marker = tmp_path / "marker"
    completed = subprocess.run([sys.executable, "-c", EXIT_NOW, str(marker), "alone", "3"], capture_output=True,
                               text=True, timeout=60)
    # stdout is flushed by main() before exit_now; here, by nobody: only stderr is said.
    assert (completed.returncode, completed.stderr) == (3, "said")
    assert not marker.with_suffix(".atexit").exists()  # the interpreter's shutdown did not run


def test_exit_now_waits_for_another_thread_as_python_does(tmp_path):
    marker = tmp_path / "marker"
    completed = subprocess.run([sys.executable, "-c", EXIT_NOW, str(marker), "thread", "4"], capture_output=True,
                               text=True, timeout=60)
    assert completed.returncode == 4
    assert marker.read_text() == "thread done"
    assert completed.stdout == "printed, not flushed by hand"  # the normal exit flushed it


@pytest.mark.parametrize("args", [["stat", "--json"], ["limit", "web", "400M"], ["stat"]], ids=" ".join)
def test_only_export_imports_prometheus_client(root_with_web, args):
    modules, _ = imported_modules("console script", ["--root", str(root_with_web), *args])
    assert not any(name.split(".")[0] == "prometheus_client" for name in modules)
    exported, stdout = imported_modules("console script", ["--root", str(root_with_web), "export"])
    assert "prometheus_client" in exported and "memcgctl_memory_usage_bytes" in stdout

@pytest.mark.parametrize("args", [["stat", "web"], ["stat", "--json"], ["limit", "web", "400M"], ["limit", "web"]],
                         ids=" ".join)
def test_stat_and_limit_do_not_import_top(root_with_web, args):
    modules, _ = imported_modules("console script", ["--root", str(root_with_web), *args])
    assert "memcgctl.kernel.v1" in modules or "memcgctl.kernel.v2" in modules  # it did read the group
    assert {"memcgctl.render.live", "rich.live", "memcgctl.operations.sampling", "memcgctl.cli.top"} & modules == set()


def test_top_in_batch_mode_does_not_import_the_live_display(root_with_web):
    modules, stdout = imported_modules("console script", ["--root", str(root_with_web), "top", "-b", "-n", "1"])
    assert "\nweb " in stdout
    assert "memcgctl.operations.sampling" in modules
    assert {"memcgctl.render.live", "rich.live", "rich"} & modules == set()
