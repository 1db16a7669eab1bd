"""The recover unit under a real systemd on cgroup v1 (`tests/vm/run.py
--init systemd-v1`; skipped anywhere else): a v1 shrink killed while the
limit is lowered leaves an undo record in /run/memcgctl, and
memcgctl-recover.service, as systemd starts it at boot, writes the limit
back.  Only v1 lowers a limit to shrink, so only v1 leaves such a record.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from test_units_vm import MEMCGCTL, journal, run, show, systemctl, wait_for

from conftest import let_the_units_see_this_checkout

MEMORY = Path("/sys/fs/cgroup/memory")
JOURNAL = Path("/run/memcgctl")
MIB, GIB = 1024**2, 1024**3
RECOVER = "memcgctl-recover.service"

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


def test_recover_unit_restores_a_record_left_by_a_killed_shrink(web, tmp_path):
    run(MEMCGCTL, "units", "--install")
    let_the_units_see_this_checkout(MEMCGCTL)
    systemctl("daemon-reload")
    name, limit = str(web.relative_to(MEMORY)), web / "memory.limit_in_bytes"
    limit.write_text(str(GIB))
    run(MEMCGCTL, "run", name, "--", "dd", "if=/dev/zero", f"of={tmp_path / 'cache'}", "bs=1M", "count=40",
        "status=none")
    # strace holds the shrink's second write to the limit (the restore) for
    # 20 s: the kill lands with the limit lowered and the record written.
    tracer = subprocess.Popen(
        ["strace", "-f", "-qq", "-o", "/dev/null", "-P", str(limit), "-e", "trace=write",
         "-e", "inject=write:delay_enter=20000000:when=2", MEMCGCTL, "shrink", name, "10M"],
        env={**os.environ, "MEMCGCTL_JOURNAL_DIR": str(JOURNAL)}, stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    wait_for(lambda: limit.read_text().strip() == str(10 * MIB), 60, "the shrink to lower the limit", RECOVER)
    shrinker = int(Path(f"/proc/{tracer.pid}/task/{tracer.pid}/children").read_text().split()[0])
    os.kill(shrinker, signal.SIGKILL)
    tracer.communicate(timeout=60)
    assert tracer.returncode == -signal.SIGKILL, tracer.returncode
    assert limit.read_text().strip() == str(10 * MIB) and list(JOURNAL.glob("*.restore"))

    systemctl("start", RECOVER)  # what the boot does (WantedBy=multi-user.target)
    assert (show(RECOVER, "ActiveState"), show(RECOVER, "Result")) == ("active", "success")
    assert limit.read_text().strip() == str(GIB)
    assert f"restored {GIB} to {limit}" in journal(RECOVER)
    assert not list(JOURNAL.glob("*.restore"))
