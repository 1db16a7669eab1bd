"""kernel/psi.py: reading memory pressure files and PSI triggers.

Parsing is checked on files laid out in a temp directory (the kernel's text,
copied), the host file on this machine's /proc/pressure/memory, triggers on
the host file (root can register one there) and on a v1 group, which has no
memory.pressure.  The v2 side (a group's own file, POLLERR when it goes) runs
in the VM: tests/test_daemon_pressure_vm.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from memcgctl.errors import InvalidValue, MemcgError, NotAvailable, NotFound, UsageError
from memcgctl.kernel import psi
from memcgctl.kernel.fs import CgroupFS, Group

KERNEL_TEXT = ("some avg10=1.50 avg60=0.25 avg300=0.05 total=123456\n"
               "full avg10=0.75 avg60=0.10 avg300=0.00 total=65432\n")


def write_pressure(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / psi.GROUP_PRESSURE).write_text(text)
    return directory


def test_group_pressure_gives_both_lines(tmp_path):
    group = write_pressure(tmp_path / "web", KERNEL_TEXT)
    pressure = psi.read_group_pressure(CgroupFS(tmp_path, is_kernel=False), group)
    assert pressure.some == psi.StallFigures(1.5, 0.25, 0.05, 123456)
    assert pressure.full == psi.StallFigures(0.75, 0.10, 0.0, 65432)
    assert pressure.scope == "group"
    assert pressure.path == str(group / "memory.pressure")


def test_host_file_without_full_line(tmp_path):
    # Kernels before 5.13 (and the cpu file) may lack a full line.
    host = tmp_path / "memory"
    host.write_text(KERNEL_TEXT.splitlines()[0] + "\n")
    pressure = psi.read_host_pressure(host)
    assert pressure.full is None and pressure.some.total_us == 123456 and pressure.scope == "host"


def test_garbage_is_an_error_not_a_traceback(tmp_path):
    group = write_pressure(tmp_path / "web", "nonsense\n")
    with pytest.raises(MemcgError) as caught:
        psi.read_group_pressure(CgroupFS(tmp_path, is_kernel=False), group)
    assert "unexpected text 'nonsense'" in str(caught.value) and str(group) in str(caught.value)


def test_group_without_pressure_file_falls_back_to_host(tmp_path):
    group = tmp_path / "v1-group"
    group.mkdir()
    host = tmp_path / "host-memory"
    host.write_text(KERNEL_TEXT)
    with pytest.raises(NotAvailable):
        psi.read_group_pressure(CgroupFS(tmp_path, is_kernel=False), group)
    pressure = psi.read_pressure(CgroupFS(tmp_path, is_kernel=False), group, host)
    assert pressure.scope == "host" and pressure.path == str(host)
    assert psi.read_pressure(CgroupFS(tmp_path, is_kernel=False), group, tmp_path / "no-psi-here") is None


def test_vanished_group_is_not_found(tmp_path):
    with pytest.raises(NotFound) as caught:
        psi.read_pressure(CgroupFS(tmp_path, is_kernel=False), tmp_path / "gone", tmp_path / "host")
    assert caught.value.exit_code == 66 and "no such group" in str(caught.value)


def test_stalled_percent_is_the_difference_of_totals_over_wall_time(tmp_path):
    before = psi.parse_pressure("some avg10=9.00 avg60=0 avg300=0 total=1000000\n", "group", "x")
    after = psi.parse_pressure("some avg10=9.00 avg60=0 avg300=0 total=1050000\n", "group", "x")
    # 50 ms stalled in 2 s: 2.5%, whatever avg10 says.
    assert psi.stalled_percent(before, after, 2.0) == pytest.approx(2.5)
    assert psi.stalled_percent(after, after, 2.0) == 0.0


def test_host_pressure_of_this_machine():
    if not psi.HOST_PRESSURE.exists():
        pytest.skip("no /proc/pressure/memory on this kernel")
    pressure = psi.read_host_pressure()
    assert pressure.scope == "host" and pressure.some.total_us >= 0
    assert 0.0 <= pressure.some.avg10 <= 100.0


@pytest.mark.parametrize(("stall", "window", "kind", "message"), [
    (1000, 100_000, "some", "must be from 500000 us"),
    (1000, 20_000_000, "some", "must be from 500000 us"),
    (0, 1_000_000, "some", "must be more than 0"),
    (2_000_000, 1_000_000, "some", "at most the window"),
    (1000, 1_000_000, "half", "must be some or full"),
])
def test_trigger_values_are_checked_before_anything_is_opened(tmp_path, stall, window, kind, message):
    with pytest.raises(UsageError) as caught:
        psi.PressureTrigger(tmp_path / "never-created", stall, window, kind)
    assert message in str(caught.value) and caught.value.exit_code == 2
    assert not (tmp_path / "never-created").exists()


def test_trigger_on_a_v1_group_says_not_available(kernel_root):
    if kernel_root.version != 1:
        pytest.skip("v1 groups have no memory.pressure; v2 is tested in the VM")
    group = kernel_root.path / "g"
    group.mkdir()
    with pytest.raises(NotAvailable) as caught:
        psi.PressureTrigger.for_group(CgroupFS(kernel_root.path, is_kernel=True), Group("g", group), 10_000,
                                      1_000_000)
    assert caught.value.exit_code == 69 and "memory.pressure" in str(caught.value)
    assert group.is_dir() and not (group / "memory.pressure").exists()


def test_trigger_on_the_host_file_waits_and_closes():
    if not psi.HOST_PRESSURE.exists():
        pytest.skip("no /proc/pressure/memory on this kernel")
    # 200 ms of stall within 2 s: not on this idle-enough host in 0.3 s.  A
    # 2 s window also suits a writer without CAP_SYS_RESOURCE (6.4+).
    with psi.PressureTrigger(psi.HOST_PRESSURE, 200_000, psi.DEFAULT_WINDOW_US) as trigger:
        descriptor = trigger.fileno()
        assert descriptor >= 0
        started = time.monotonic()
        fired = trigger.wait(0.3)
        waited = time.monotonic() - started
    assert trigger.fileno() == -1
    assert fired is False or psi.read_host_pressure().some.total_us > 0
    assert waited >= 0.25 or fired


def has_capability(number: int) -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> number & 1)
    return False


def test_window_the_kernel_refuses_is_one_clear_error():
    CAP_SYS_RESOURCE = 24
    if not psi.HOST_PRESSURE.exists() or has_capability(CAP_SYS_RESOURCE):
        pytest.skip("needs /proc/pressure/memory and a writer without CAP_SYS_RESOURCE")
    # Since 6.4 such a writer needs a window that is a multiple of 2 s.
    with pytest.raises(InvalidValue) as caught:
        psi.PressureTrigger(psi.HOST_PRESSURE, 100_000, 1_000_000)
    assert caught.value.exit_code == 65
    assert str(caught.value) == ("write 'some 100000 1000000' to memory: the kernel refused the trigger (window "
                                 "500 ms to 10 s, a multiple of 2 s without CAP_SYS_RESOURCE since 6.4; stall no "
                                 "longer than the window) (/proc/pressure/memory)")
