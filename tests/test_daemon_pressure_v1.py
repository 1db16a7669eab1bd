"""The pressure policy on this machine's cgroup v1 (no per-group PSI): its
signal is the group's refault rate.  Page cache nobody reads again is taken
step by step; a group that reads its pages back (refaults) makes it back off.
Both groups live under the test's own kernel_root, watched by one daemon."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

MIB = 1 << 20
V1_UNLIMITED = "9223372036854771712"
STEP_LINE = re.compile(r"memcgctl daemon: (\w+): pressure: refaults ([0-9.]+)%/s of its size .*: reclaim .*: "
                       r"([0-9.]+ [KMG]iB) -> ([0-9.]+ [KMG]iB) in")

# Reads FILE from start to end every 0.1 s, for ever: pages the daemon takes
# come back as refaults.
REREADER = """
import sys, time
path = sys.argv[1]
while True:
    with open(path, "rb") as file:
        while file.read(1 << 20):
            pass
    time.sleep(0.1)
"""


@pytest.fixture(autouse=True)
def v1_only(kernel_root):
    if kernel_root.version != 1:
        pytest.skip("the refault path is cgroup v1's (v2 has PSI: tests/test_daemon_pressure_vm.py)")


def usage(kernel_root, group: str) -> int:
    return int(kernel_root.read(group, "memory.usage_in_bytes"))


def refaults(kernel_root, group: str) -> int:
    stat = dict(line.split() for line in kernel_root.read(group, "memory.stat").splitlines())
    return int(stat["total_workingset_refault_file"]) + int(stat["total_workingset_refault_anon"])


def test_cold_page_cache_goes_step_by_step_and_rereading_makes_it_back_off(kernel_root, tmp_path):
    for group in ("cold", "reread"):
        (kernel_root.path / group).mkdir()
        # Clean page cache (conv=fsync): a limit dip reclaims it without writeback.
        completed = subprocess.run([sys.executable, "-m", "memcgctl", "--root", str(kernel_root.path), "run", group,
                                    "--", "dd", "if=/dev/zero", f"of={tmp_path / group}", "bs=1M", "count=128",
                                    "conv=fsync", "status=none"], capture_output=True, text=True, timeout=120)
        assert completed.returncode == 0, completed.stderr
    kernel_root.start("reread", sys.executable, "-c", REREADER, str(tmp_path / "reread"))
    before = {group: usage(kernel_root, group) for group in ("cold", "reread")}
    refaults_before = refaults(kernel_root, "reread")
    assert min(before.values()) >= 120 * MIB

    config = tmp_path / "daemon.toml"
    # hold = 30: once backed off, the re-read group is left alone for the
    # rest of the test.  host_target = 50: the host is shared, and its
    # pressure guard (unit-tested in test_pressure_policy.py) must not make
    # this test depend on what other processes do.
    config.write_text('interval = 0.25\n\n[[group]]\nmatch = "*"\npolicy = "pressure"\nmax_step = "10%"\n'
                      "hold = 30\nhost_target = 50\n")
    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log_file:
        daemon = subprocess.Popen([sys.executable, "-m", "memcgctl", "--root", str(kernel_root.path), "-v", "daemon",
                                   "--config", str(config)], stderr=log_file, start_new_session=True)
    kernel_root.processes.append(daemon)
    # Until the cold group is under half its size (the policy takes at most
    # 10% a pass, 4 passes a second), within 30 s on a busy host.
    deadline = time.monotonic() + 30
    while usage(kernel_root, "cold") > before["cold"] // 2 and time.monotonic() < deadline:
        time.sleep(0.25)
    time.sleep(2)  # a few more passes on the re-read group
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0
    log = log_path.read_text()
    steps = [match.groups() for match in STEP_LINE.finditer(log)]
    cold_steps = [step for step in steps if step[0] == "cold"]
    reread_steps = [step for step in steps if step[0] == "reread"]

    # The cold group: step after step, none larger than max_step, no refaults.
    assert usage(kernel_root, "cold") <= before["cold"] // 2, log
    assert len(cold_steps) >= 4, log
    assert all(float(rate) == 0.0 for _, rate, _, _ in cold_steps), log
    assert not re.search(r"cold: pressure: .*backing off for", log), log

    # The re-read group: its pages came back as refaults, and the policy backed
    # off after at most a couple of steps instead of following the cold one down.
    assert refaults(kernel_root, "reread") > refaults_before, log
    assert re.search(r"reread: pressure: refaults [0-9.]+%/s of its size \(target 0.1\), host pressure "
                     r"[0-9.]+% \(guard 50%\): backing off for 30 s", log), log
    assert len(reread_steps) <= 2, log
    assert usage(kernel_root, "reread") > before["reread"] * 3 // 4, log

    # Each step was a limit dip, restored: no limit is left lowered.
    for group in ("cold", "reread"):
        assert kernel_root.read(group, "memory.limit_in_bytes") == V1_UNLIMITED
    assert "stopped short" not in log, log
