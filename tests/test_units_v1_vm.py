"""The units under a real systemd on cgroup v1 (`tests/vm/run.py --init
systemd-v1`; skipped anywhere else): a v1 shrink killed while the limit is
lowered leaves an undo record in /run/memcgctl, and memcgctl-recover.service
writes the limit back, at boot (the record of a shrink killed before systemd
started: run.py --before-boot, BEFORE_BOOT) and when started; the daemon's unit, SIGKILLed in the middle of a step,
is restarted by systemd and the new daemon writes the limit back.  Only v1
lowers a limit to shrink, so only v1 leaves such a record.

A v1 step holds the lowered limit only between the write that lowers it
(the kernel reclaims inside that write and sets the limit only once usage
is under it; with nothing to reclaim the write fails, EBUSY, the limit
unchanged) and the write that restores it: strace holds the restore, so
that the kill lands with the limit lowered.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_units_vm import MEMCGCTL, journal, run, show, systemctl, wait_for

from conftest import let_the_units_see_this_checkout

MEMORY = Path("/sys/fs/cgroup/memory")
JOURNAL = Path("/run/memcgctl")
MIB, GIB = 1024**2, 1024**3
RECOVER = "memcgctl-recover.service"
DAEMON = "memcgctl-daemon.service"
CONFIG = Path("/etc/memcgctl/daemon.toml")
UNITS = Path("/etc/systemd/system")
# Made before systemd starts (run.py --before-boot), at the top of the
# hierarchy: no service's group exists yet.
BOOT_GROUP = MEMORY / "units-v1-boot"
BEFORE_BOOT = "python3 tests/test_units_v1_vm.py --before-boot"

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.environ.get("MEMCGCTL_IN_VM") != "1" or Path("/proc/1/comm").read_text().strip() != "systemd"
                       or not (MEMORY / "memory.limit_in_bytes").exists(),
                       reason="systemd as PID 1 on cgroup v1: runs in the VM (tests/vm/run.py --init systemd-v1)"),
]


@pytest.fixture
def web():
    """A v1 group of the test's own, beside it in its service's memory group."""
    own = next(line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()
               if "memory" in line.split(":")[1].split(","))
    group = MEMORY / own.lstrip("/") / "units-v1-web"
    group.mkdir()
    yield group
    (group / "memory.force_empty").write_text("0")
    group.rmdir()


def install_units() -> None:
    run(MEMCGCTL, "units", "--install")
    let_the_units_see_this_checkout(MEMCGCTL)
    systemctl("daemon-reload")


def held(limit: Path, seconds: int) -> str:
    """strace's options that hold the second write to LIMIT (a step's
    restore) for SECONDS before it is made."""
    return f"-f -qq -o /dev/null -P {limit} -e trace=write -e inject=write:delay_enter={seconds * 1000000}:when=2"


def kill_a_shrink_with_the_limit_lowered(group: Path, cache: Path) -> None:
    """A `memcgctl shrink GROUP 10M` of 40 MiB of page cache, SIGKILLed with
    the limit lowered and its undo record in JOURNAL: strace holds the
    shrink's second write to the limit (the restore) for 20 s."""
    name, limit = str(group.relative_to(MEMORY)), group / "memory.limit_in_bytes"
    run(MEMCGCTL, "run", name, "--", "dd", "if=/dev/zero", f"of={cache}", "bs=1M", "count=40", "status=none")
    tracer = subprocess.Popen(["strace", *held(limit, 20).split(), MEMCGCTL, "shrink", name, "10M"],
                              env={**os.environ, "MEMCGCTL_JOURNAL_DIR": str(JOURNAL)}, stdin=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while limit.read_text().strip() != str(10 * MIB):
        assert time.monotonic() < deadline and tracer.poll() is None, "the shrink never lowered the limit"
        time.sleep(0.1)
    shrinker = int(Path(f"/proc/{tracer.pid}/task/{tracer.pid}/children").read_text().split()[0])
    os.kill(shrinker, signal.SIGKILL)
    tracer.communicate(timeout=60)
    assert tracer.returncode == -signal.SIGKILL, tracer.returncode
    assert limit.read_text().strip() == str(10 * MIB) and list(JOURNAL.glob("*.restore"))


def before_boot() -> None:
    """What BEFORE_BOOT runs, before systemd starts: the units installed and
    the recover unit enabled, as a sysadmin leaves them, then a shrink of
    BOOT_GROUP killed with its limit lowered (as by a crash just before a
    soft reboot, or a memcgctl killed early in the boot)."""
    run(MEMCGCTL, "units", "--install")
    let_the_units_see_this_checkout(MEMCGCTL)
    run("systemctl", "enable", RECOVER)  # offline: systemd does not run yet
    BOOT_GROUP.mkdir()
    (BOOT_GROUP / "memory.limit_in_bytes").write_text(str(GIB))
    kill_a_shrink_with_the_limit_lowered(BOOT_GROUP, Path("/tmp/units-v1-boot-cache"))


def test_the_recover_unit_restores_at_boot_what_a_killed_shrink_left():
    """First in the file: the boot's recover, before any test starts it."""
    assert BOOT_GROUP.is_dir(), f"no {BOOT_GROUP}: run this file under tests/vm/run.py --init systemd-v1 " \
                                f"--before-boot '{BEFORE_BOOT}' (as .ci/run does)"
    limit = BOOT_GROUP / "memory.limit_in_bytes"
    try:
        assert (show(RECOVER, "ActiveState"), show(RECOVER, "Result")) == ("active", "success")
        assert 0 < int(show(RECOVER, "ActiveEnterTimestampMonotonic")) \
            < int(show("memcgctl-vm-command.service", "ExecMainStartTimestampMonotonic")), "not at boot"
        said = journal(RECOVER)
        assert limit.read_text().strip() == str(GIB), said
        assert f"restored {GIB} to {limit}" in said
        assert not list(JOURNAL.glob("*.restore"))
    finally:
        (BOOT_GROUP / "memory.force_empty").write_text("0")
        BOOT_GROUP.rmdir()


def test_recover_unit_restores_a_record_left_by_a_killed_shrink(web, tmp_path):
    install_units()
    limit = web / "memory.limit_in_bytes"
    limit.write_text(str(GIB))
    kill_a_shrink_with_the_limit_lowered(web, tmp_path / "cache")
    systemctl("restart", RECOVER)  # what the boot does (WantedBy=multi-user.target), again
    assert (show(RECOVER, "ActiveState"), show(RECOVER, "Result")) == ("active", "success")
    assert limit.read_text().strip() == str(GIB)
    assert journal(RECOVER).count(f"restored {GIB} to {limit}") == 1
    assert not list(JOURNAL.glob("*.restore"))


def test_sigkill_of_the_daemon_mid_step_is_restarted_and_the_step_undone(web, tmp_path):
    install_units()
    name, limit = str(web.relative_to(MEMORY)), web / "memory.limit_in_bytes"
    limit.write_text(str(GIB))
    run(MEMCGCTL, "run", name, "--", "dd", "if=/dev/zero", f"of={tmp_path / 'cache'}", "bs=1M", "count=150",
        "status=none")
    CONFIG.write_text(f'interval = 0.5\n\n[[group]]\nmatch = "{name}"\npolicy = "watermark"\nhigh = "100M"\n'
                      'low = "10M"\nstep_seconds = 2\n')
    # The unit's daemon under strace, which holds its step's restore for
    # 120 s (--seccomp-bpf: only writes stop it, or Python's start under TCG
    # takes minutes).  NotifyAccess=all: READY=1 comes from strace's child;
    # ptrace is not in the unit's @system-service: the filter is emptied.
    traced = UNITS / f"{DAEMON}.d" / "held-restore.conf"
    traced.parent.mkdir(exist_ok=True)
    traced.write_text(f"[Service]\nExecStart=\nExecStart=strace --seccomp-bpf {held(limit, 120)} {MEMCGCTL} daemon "
                      f"--config {CONFIG}\nNotifyAccess=all\nSystemCallFilter=\n")
    systemctl("daemon-reload")
    systemctl("start", "--no-block", DAEMON)  # READY=1 comes after the first pass, whose step is held
    wait_for(lambda: limit.read_text().strip() == str(10 * MIB), 150, "the daemon's step to lower the limit", DAEMON)
    assert list(JOURNAL.glob("*.restore")), "the step is journaled before the limit is lowered"
    strace = show(DAEMON, "MainPID")
    traced.unlink()  # systemd restarts the unit as installed, without strace
    systemctl("daemon-reload")
    # The daemon and strace, its main process, at once (strace does not
    # always follow a tracee SIGKILLed inside a held write).
    systemctl("kill", "--kill-whom=all", "--signal=KILL", DAEMON)
    wait_for(lambda: show(DAEMON, "MainPID") not in ("0", strace) and show(DAEMON, "ActiveState") == "active", 150,
             "systemd to restart the daemon", DAEMON)
    assert show(DAEMON, "NRestarts") == "1"
    assert limit.read_text().strip() == str(GIB)
    assert f"restored {GIB} to {limit}" in journal(DAEMON)
    assert not list(JOURNAL.glob("*.restore"))
    systemctl("stop", DAEMON)
    assert limit.read_text().strip() == str(GIB)


if __name__ == "__main__" and sys.argv[1:] == ["--before-boot"]:
    before_boot()
