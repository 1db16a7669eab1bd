"""The systemd units in systemd/ pass `systemd-analyze verify`, and say what
the daemon needs: its journal directory kept across restarts, hardening that
still lets it write cgroup files, a restart on failure, a reload by SIGHUP.

systemd looks up a bare ExecStart= name in its own fixed path (/usr/bin,
/usr/local/bin, ...), not in $PATH; so the copies verified here name this
environment's memcgctl by its absolute path, and man(1) finds the page of
Documentation=man:memcgctl(1) through MANPATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECT

UNITS = PROJECT / "systemd"
UNIT_NAMES = ["memcgctl-daemon.service", "memcgctl-recover.service", "memcgctl-shrink@.service",
              "memcgctl-shrink@.timer"]
MEMCGCTL = Path(sys.executable).parent / "memcgctl"

needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                           reason="systemd-analyze is not installed (apt-get install systemd)")


def settings(name: str) -> dict[str, list[str]]:
    """{key: [values]} of a unit file, sections merged."""
    found: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def verify(directory: Path, names: list[str], man_directory: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MANPATH": str(man_directory), "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(["systemd-analyze", "verify", *names], cwd=directory, capture_output=True, text=True,
                          env=env, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture
def verifiable_units(tmp_path) -> tuple[Path, Path]:
    """Copies of the units naming this environment's memcgctl by absolute path,
    and a man directory holding memcgctl(1)."""
    assert MEMCGCTL.is_file(), MEMCGCTL
    units = tmp_path / "units"
    units.mkdir()
    for name in UNIT_NAMES:
        text = (UNITS / name).read_text()
        (units / name).write_text(re.sub(r"^(Exec\w+=)memcgctl ", rf"\g<1>{MEMCGCTL} ", text, flags=re.MULTILINE))
    man = tmp_path / "man" / "man1"
    man.mkdir(parents=True)
    shutil.copy(PROJECT / "man" / "memcgctl.1", man)
    return units, man.parent


def test_the_units_are_all_there():
    assert sorted(path.name for path in UNITS.iterdir()) == sorted(UNIT_NAMES)


@needs_systemd_analyze
@pytest.mark.parametrize("name", UNIT_NAMES)
def test_systemd_analyze_verify_passes(verifiable_units, name):
    units, man = verifiable_units
    completed = verify(units, [name], man)
    assert (completed.returncode, completed.stdout + completed.stderr) == (0, "")


@needs_systemd_analyze
def test_systemd_analyze_verify_catches_a_broken_unit(verifiable_units):
    """The check above can fail: a misspelt option and a missing binary are reported."""
    units, man = verifiable_units
    broken = units / "memcgctl-recover.service"
    broken.write_text(broken.read_text().replace("RemainAfterExit=yes", "RemainAfterExits=yes")
                      .replace(str(MEMCGCTL), str(units / "no-such-memcgctl")))
    completed = verify(units, [broken.name], man)
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0
    assert "RemainAfterExits" in output and "no-such-memcgctl" in output


def test_daemon_unit_keeps_its_journal_and_may_write_cgroup_files():
    daemon = settings("memcgctl-daemon.service")
    assert daemon["ExecStart"] == ["memcgctl daemon --config /etc/memcgctl/daemon.toml"]
    assert daemon["ExecReload"] == ["kill -HUP $MAINPID"]
    assert daemon["Restart"] == ["on-failure"]
    assert daemon["RuntimeDirectory"] == ["memcgctl"] and daemon["RuntimeDirectoryPreserve"] == ["yes"]
    assert "MEMCGCTL_JOURNAL_DIR=/run/memcgctl" in daemon["Environment"]
    assert daemon["ProtectSystem"] == ["strict"] and daemon["ReadWritePaths"] == ["/sys/fs/cgroup"]
    assert daemon["NoNewPrivileges"] == ["yes"] and daemon["ProtectHome"] == ["yes"]
    # Either would make /sys/fs/cgroup read-only for the daemon.
    assert "ProtectControlGroups" not in daemon and "ReadOnlyPaths" not in daemon


def test_recover_runs_once_at_boot_before_the_daemon():
    recover = settings("memcgctl-recover.service")
    assert recover["Type"] == ["oneshot"] and recover["ExecStart"] == ["memcgctl recover"]
    assert recover["Before"] == ["memcgctl-daemon.service"] and recover["WantedBy"] == ["multi-user.target"]
    assert recover["ReadWritePaths"] == ["/sys/fs/cgroup"]


def test_shrink_timer_runs_the_shrink_of_its_instance():
    service, timer = settings("memcgctl-shrink@.service"), settings("memcgctl-shrink@.timer")
    assert service["ExecStart"] == ["memcgctl shrink -v %I ${MEMCGCTL_SHRINK_TARGET} --timeout 60"]
    assert "MEMCGCTL_SHRINK_TARGET=80%" in service["Environment"]
    assert timer["OnUnitActiveSec"] == ["5min"] and timer["WantedBy"] == ["timers.target"]
