"""Commands that do not render for a person never import rich or humanfriendly.

Start-up time is most of what `stat --json`, `limit` and a TAB completion
cost, and rich and humanfriendly together take longer to import than click.
This checks which modules get imported (python -X importtime), not how long
anything takes, so it cannot flake on a busy machine.  bench/startup.py has
the timings.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import run_cli

PERSON_ONLY = ("rich", "humanfriendly")

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
