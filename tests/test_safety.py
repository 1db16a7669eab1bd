"""Never leave a group worse than it was: crash-safe v1 shrink, serialised
writers, hostile names and sizes, and every errno mapped to its exit code."""

from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import memcgctl.kernel.fs
from memcgctl.errors import ENOTSUPP, NotFound
from memcgctl.kernel.backend import Restore, RestoreOutcome
from memcgctl.kernel.discovery import open_hierarchy
from memcgctl.operations.shrink import shrink as shrink_group
from memcgctl.safety.journal import Journal
from memcgctl.sizes import MAX_BYTES, ShrinkTarget, format_size, parse_size

from conftest import HOLD_AFTER_LOWERING, HOLD_THE_RESTORE, run_cli, run_process

MIB = 1024**2
GIB = 1024**3


# --- faults injected at the filesystem layer only -----------------------------------


class FilesystemOsWithFaults:
    """The os module as memcgctl's filesystem layer (memcgctl.kernel.fs) sees
    it, where write() to a file under ROOT first asks FAULT(path, data) for an
    errno to fail with (None: write it).  Nothing else in the process, pytest's
    own output included, goes through it.  WRITTEN: every (path, data) tried."""

    def __init__(self, root: Path, fault):
        self._under = os.path.realpath(root) + os.sep
        self._fault = fault
        self.written = []

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd: int, data: bytes) -> int:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if path.startswith(self._under):
            self.written.append((path, data))
            number = self._fault(path, data)
            if number is not None:
                raise OSError(number, os.strerror(number))
        return os.write(fd, data)


def inject_write_faults(monkeypatch, root: Path, fault) -> FilesystemOsWithFaults:
    hook = FilesystemOsWithFaults(root, fault)
    monkeypatch.setattr(memcgctl.kernel.fs, "os", hook)
    return hook


# --- the journal, on a fake v1 tree -----------------------------------------------


def leave_a_dead_shrink(root: Path, journal_directory: Path, lowered: int = 10 * MIB) -> Path:
    """What a v1 shrink killed between lowering and restoring leaves behind."""
    backend = open_hierarchy(root)
    group = backend.group("web")
    limit_path = group.path / "memory.limit_in_bytes"
    Journal(journal_directory).record(group.path, limit_path, limit_path.read_text().strip(), (str(lowered),),
                                      identity=backend.fs.identity(group))
    limit_path.write_text(str(lowered))
    return limit_path


def test_the_next_command_restores_what_a_dead_shrink_left(fake_v1, journal_directory):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    limit_path = leave_a_dead_shrink(fake_v1, journal_directory)
    result = run_cli(fake_v1, "stat", "--json", "web")
    assert result.exit_code == 0
    assert result.stderr.startswith(f"memcgctl: restored {GIB} to {limit_path}, left behind by a memcgctl (pid ")
    assert limit_path.read_text() == str(GIB)
    assert list(journal_directory.glob("*.restore")) == []
    assert run_cli(fake_v1, "stat", "web").stderr == ""  # said once


def test_recover_command_restores_and_is_quiet_when_nothing_is_left(fake_v1, journal_directory):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    limit_path = leave_a_dead_shrink(fake_v1, journal_directory)
    assert "memcgctl: restored" in run_cli(fake_v1, "recover").stderr
    assert limit_path.read_text() == str(GIB)
    again = run_cli(fake_v1, "recover")
    assert (again.exit_code, again.stdout, again.stderr) == (0, "", "")


def test_recover_dry_run_prints_the_restore_and_writes_nothing(fake_v1, journal_directory):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    limit_path = leave_a_dead_shrink(fake_v1, journal_directory)
    result = run_cli(fake_v1, "-n", "recover")
    assert (result.exit_code, result.stdout) == (0, f"echo {GIB} > {limit_path}\n")
    assert limit_path.read_text() == str(10 * MIB)
    assert len(list(journal_directory.glob("*.restore"))) == 1


def test_recover_dry_run_leaves_out_a_limit_changed_since(fake_v1, journal_directory):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    limit_path = leave_a_dead_shrink(fake_v1, journal_directory)
    limit_path.write_text(str(768 * MIB))  # by hand, after the shrink died
    result = run_cli(fake_v1, "-n", "recover")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "# nothing to do\n", "")
    assert limit_path.read_text() == str(768 * MIB)
    assert len(list(journal_directory.glob("*.restore"))) == 1


def without_the_lowered_value(journal_directory: Path) -> None:
    """Make the one record in JOURNAL_DIRECTORY look like an older memcgctl's."""
    [record] = journal_directory.glob("*.restore")
    data = json.loads(record.read_text())
    del data["lowered"]
    record.write_text(json.dumps(data))


def test_an_older_memcgctls_record_is_dropped_unreplayed_naming_both_values(fake_v1, journal_directory):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    limit_path = leave_a_dead_shrink(fake_v1, journal_directory)
    without_the_lowered_value(journal_directory)
    result = run_cli(fake_v1, "stat", "web")
    assert result.exit_code == 0
    assert re.fullmatch(
        rf"memcgctl: dropped a journal record that would restore {GIB} to {re.escape(str(limit_path))}, which holds "
        rf"{10 * MIB} \(pid \d+\): it is from an older memcgctl, which did not note what it wrote; nothing was "
        rf"written \(if {10 * MIB} is the limit it lowered: echo {GIB} > {re.escape(str(limit_path))}\)\n",
        result.stderr), result.stderr
    assert limit_path.read_text() == str(10 * MIB)
    assert list(journal_directory.glob("*.restore")) == []


def test_an_older_memcgctls_record_whose_limit_is_back_goes_quietly(fake_v1, journal_directory):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    limit_path = leave_a_dead_shrink(fake_v1, journal_directory)
    without_the_lowered_value(journal_directory)
    limit_path.write_text(str(GIB))  # it died after its restore, before clearing the record
    result = run_cli(fake_v1, "recover")
    assert (result.exit_code, result.stderr) == (0, "")
    assert limit_path.read_text() == str(GIB)
    assert list(journal_directory.glob("*.restore")) == []


def test_the_library_keeps_a_limit_written_while_it_was_lowered_and_says_so_as_data(fake_v1, journal_directory):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    (fake_v1 / "web" / "memory.usage_in_bytes").write_text(str(500 * MIB))
    limit_path = fake_v1 / "web" / "memory.limit_in_bytes"
    backend = open_hierarchy(fake_v1, journal=Journal(journal_directory))
    read_usage = backend.read_usage

    def someone_else_writes_the_limit_after_the_lowering(group):
        if limit_path.read_text() == str(MIB):
            limit_path.write_text(str(768 * MIB))
        return read_usage(group)

    backend.read_usage = someone_else_writes_the_limit_after_the_lowering
    shrink_group(backend, backend.group("web"), ShrinkTarget(bytes=MIB))
    assert backend.kept == [Restore(RestoreOutcome.CHANGED_SINCE, limit_path, str(GIB), (str(MIB),), str(768 * MIB))]
    assert limit_path.read_text() == str(768 * MIB)
    assert list(journal_directory.glob("*.restore")) == []


def test_a_corrupt_record_does_not_stop_other_commands(fake_v1, journal_directory):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    (journal_directory / "0123456789abcdef0123456789abcdef.restore").write_text("{not json")
    result = run_cli(fake_v1, "stat", "--json", "web")
    assert (result.exit_code, result.stderr) == (0, "")


def test_a_planted_record_cannot_write_outside_its_group(fake_v1, journal_directory, tmp_path):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    victim = tmp_path / "victim"
    victim.write_text("precious")
    # Keyed as web's record, but naming a file elsewhere.
    Journal(journal_directory).record(fake_v1 / "web", victim, "PWNED", ("1",))
    result = run_cli(fake_v1, "limit", "web", "2G")
    assert result.exit_code == 74
    assert "does not match its group" in result.stderr
    assert victim.read_text() == "precious"
    # Filed under a name of its own, it is not taken for any group's record.
    (journal_directory / "ffffffffffffffffffffffffffffffff.restore").write_text(
        json.dumps({"path": str(fake_v1 / "web" / "memory.limit_in_bytes"), "value": "1", "pid": 1, "started": 0}))
    assert run_cli(fake_v1, "recover").stderr.count("restored") == 0


def test_a_journal_directory_others_can_write_is_refused(fake_v1, tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    monkeypatch.setenv("MEMCGCTL_JOURNAL_DIR", str(shared))
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    (fake_v1 / "web" / "memory.usage_in_bytes").write_text(str(500 * MIB))
    result = run_cli(fake_v1, "shrink", "web", "1M")
    assert result.exit_code == 77
    assert "no one else can write" in result.stderr
    assert (fake_v1 / "web" / "memory.limit_in_bytes").read_text() == str(GIB)


def test_a_lowering_write_the_kernel_refuses_leaves_nothing_to_restore(fake_v1, journal_directory, monkeypatch):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    (fake_v1 / "web" / "memory.usage_in_bytes").write_text(str(500 * MIB))
    hook = inject_write_faults(monkeypatch, fake_v1, lambda path, data: errno.EINVAL if data == str(MIB).encode()
                               else None)
    result = run_cli(fake_v1, "shrink", "web", "1M")
    assert result.exit_code == 65
    assert result.stderr.startswith("memcgctl: write 1048576 to memory.limit_in_bytes: ")
    limit_path = str(fake_v1 / "web" / "memory.limit_in_bytes")
    assert hook.written == [(limit_path, str(MIB).encode())]  # no restore was needed, none was written
    assert list(journal_directory.glob("*.restore")) == []


def test_a_live_shrinks_record_is_left_alone(fake_v1, journal_directory):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    limit_path = leave_a_dead_shrink(fake_v1, journal_directory)
    with Journal(journal_directory).locked(fake_v1 / "web"):  # as a live shrink holds it
        result = run_cli(fake_v1, "stat", "web")
    assert result.stderr == ""
    assert limit_path.read_text() == str(10 * MIB)


def test_a_second_writer_waits_up_to_timeout_then_75(fake_v1, journal_directory):
    run_cli(fake_v1, "create", "web", "--limit", "1G")
    (fake_v1 / "web" / "memory.usage_in_bytes").write_text(str(500 * MIB))
    with Journal(journal_directory).locked(fake_v1 / "web"):
        started = time.monotonic()
        result = run_cli(fake_v1, "shrink", "--timeout", "0.3", "web", "1M")
        waited = time.monotonic() - started
        limited = run_cli(fake_v1, "limit", "--timeout", "0.1", "web", "2G")
    assert result.exit_code == limited.exit_code == 75
    assert "another memcgctl is changing it (waited 0.3 s)" in result.stderr
    assert waited >= 0.3
    assert (fake_v1 / "web" / "memory.limit_in_bytes").read_text() == str(GIB)


# --- crash safety and races on the real kernel ------------------------------------


def v1_only(kernel_root):
    if kernel_root.version != 1:
        pytest.skip("only v1 lowers a limit for a shrink; v2 never touches memory.max")


def wait_for(predicate, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace")
def test_sigkill_with_the_limit_lowered_is_undone_by_the_next_memcgctl(kernel_root, tmp_path):
    v1_only(kernel_root)
    run_cli(kernel_root.path, "create", "web", "--limit", "1G")
    limit_path = kernel_root.path / "web" / "memory.limit_in_bytes"
    for round_number in range(5):
        kernel_root.fill_page_cache("web", tmp_path / f"cache{round_number}", 40)
        tracer = kernel_root.traced_shrink("web", "10M", HOLD_THE_RESTORE)
        assert wait_for(lambda: limit_path.read_text().strip() == str(10 * MIB)), "the shrink never lowered"
        shrinker_pid = int(Path(f"/proc/{tracer.pid}/task/{tracer.pid}/children").read_text().split()[0])
        os.kill(shrinker_pid, signal.SIGKILL)
        tracer.communicate(timeout=30)
        # strace ends the way its tracee did: killed by SIGKILL, in the window, not exited.
        assert tracer.returncode == -signal.SIGKILL, tracer.returncode
        assert limit_path.read_text().strip() == str(10 * MIB), "the kill should leave the limit lowered"
        recovered = run_process(kernel_root.path, *(["recover"] if round_number % 2 else ["limit", "web"]))
        assert recovered.returncode == 0, recovered.stderr
        assert f"memcgctl: restored {GIB} to {limit_path}" in recovered.stderr
        assert limit_path.read_text().strip() == str(GIB)


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace")
@pytest.mark.parametrize("command", [["stat", "web"], ["recover"], ["limit", "web"]])
def test_a_limit_set_by_hand_after_a_killed_shrink_is_not_restored_over(kernel_root, tmp_path, journal_directory,
                                                                        command):
    """Issue 17, finding 1: a shrink of web (1G) to 10M killed with the limit
    lowered; the admin then sets 768M; the next memcgctl keeps 768M, says so
    naming both values, and drops the record."""
    v1_only(kernel_root)
    run_cli(kernel_root.path, "create", "web", "--limit", "1G")
    limit_path = kernel_root.path / "web" / "memory.limit_in_bytes"
    kernel_root.kill_a_shrink_with_the_limit_lowered("web", tmp_path / "cache", str(10 * MIB))
    kernel_root.write("web", "memory.limit_in_bytes", str(768 * MIB))
    assert len(list(journal_directory.glob("*.restore"))) == 1
    result = run_process(kernel_root.path, *command)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(
        rf"memcgctl: left {re.escape(str(limit_path))} at {768 * MIB}, written by someone else since a memcgctl "
        rf"\(pid \d+\) that died in the middle of a change lowered it to {10 * MIB}; dropped its journal record, "
        rf"which would restore {GIB}\n", result.stderr), result.stderr
    assert limit_path.read_text().strip() == str(768 * MIB)
    assert list(journal_directory.glob("*.restore")) == []
    assert run_process(kernel_root.path, "stat", "web").stderr == ""  # said once


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace")
def test_a_killed_shrink_to_a_size_the_kernel_rounds_is_still_restored(kernel_root, tmp_path, journal_directory):
    """The kernel keeps the lowered limit in pages (10000001 reads 9998336):
    that is still what memcgctl wrote, and the next memcgctl restores."""
    v1_only(kernel_root)
    run_cli(kernel_root.path, "create", "web", "--limit", "1G")
    limit_path = kernel_root.path / "web" / "memory.limit_in_bytes"
    kernel_root.kill_a_shrink_with_the_limit_lowered("web", tmp_path / "cache", "10000001")
    result = run_process(kernel_root.path, "stat", "web")
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"memcgctl: restored {GIB} to {limit_path}, left behind by a memcgctl (pid ")
    assert limit_path.read_text().strip() == str(GIB)
    assert list(journal_directory.glob("*.restore")) == []


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace")
def test_a_limit_written_while_a_shrink_runs_is_not_overwritten_by_its_restore(kernel_root, tmp_path,
                                                                              journal_directory):
    """Issue 17, finding 1, the end-of-shrink restore: a limit someone else
    writes while the shrink has it lowered stays, and the shrink says so."""
    v1_only(kernel_root)
    run_cli(kernel_root.path, "create", "web", "--limit", "1G")
    limit_path = kernel_root.path / "web" / "memory.limit_in_bytes"
    kernel_root.fill_page_cache("web", tmp_path / "cache", 40)
    tracer = kernel_root.traced_shrink("web", "10M", HOLD_AFTER_LOWERING)
    assert wait_for(lambda: limit_path.read_text().strip() == str(10 * MIB)), "the shrink never lowered"
    kernel_root.write("web", "memory.limit_in_bytes", str(768 * MIB))  # systemd, an admin, a container runtime
    _, stderr = tracer.communicate(timeout=60)
    assert tracer.returncode == 0, stderr
    assert stderr == (f"memcgctl: left {limit_path} at {768 * MIB}, written by someone else while this shrink had "
                      f"it lowered to {10 * MIB}; {GIB} was not restored\n")
    assert limit_path.read_text().strip() == str(768 * MIB)
    assert list(journal_directory.glob("*.restore")) == []


def test_sigkill_at_random_moments_never_leaves_a_changed_limit(kernel_root, tmp_path):
    # Only v1 changes a limit to shrink; on v2 this could not fail (memory.max is
    # never written), and what v2 promises is checked in test_kernel.py.
    v1_only(kernel_root)
    run_cli(kernel_root.path, "create", "web", "--limit", "4G")
    limit_file = "memory.limit_in_bytes"
    kernel_root.keep_dirtying("web", tmp_path / "dirty")
    chance = random.Random(20081118)
    for _ in range(10):
        shrinker = subprocess.Popen([sys.executable, "-m", "memcgctl", "--root", str(kernel_root.path),
                                     "shrink", "web", "1M"], stderr=subprocess.DEVNULL)
        time.sleep(chance.uniform(0.1, 0.5))
        shrinker.kill()
        shrinker.wait()
        run_process(kernel_root.path, "stat", "web")  # any later memcgctl recovers
        assert kernel_root.read("web", limit_file) == str(4096 * MIB)


def test_concurrent_shrinks_never_restore_each_others_limit(kernel_root, tmp_path):
    v1_only(kernel_root)
    run_cli(kernel_root.path, "create", "web", "--limit", "1G")
    for round_number in range(20):
        kernel_root.fill_page_cache("web", tmp_path / f"cache{round_number}", 30)
        shrinks = [subprocess.Popen([sys.executable, "-m", "memcgctl", "--root", str(kernel_root.path),
                                     "shrink", "web", target], stderr=subprocess.PIPE, text=True)
                   for target in ("5M", "10M")]
        for shrink in shrinks:
            _, stderr = shrink.communicate(timeout=60)
            assert shrink.returncode == 0, stderr
        assert kernel_root.read("web", "memory.limit_in_bytes") == str(GIB)
        (tmp_path / f"cache{round_number}").unlink()


# --- hostile group names ------------------------------------------------------------

NAME_PIECES = st.sampled_from(["..", ".", "/", "//", "a", "web", "escape", "memory.max", "memory.limit_in_bytes",
                               "cgroup.procs", "\0", "\n", "é", "\U0001f600", "x" * 300, " ", "-", "\\", "*"])
HOSTILE_NAMES = st.one_of(st.lists(NAME_PIECES, max_size=6).map("".join),
                          st.text(max_size=20), st.just("/" + "a/" * 2100))  # past PATH_MAX


@pytest.fixture
def trapped_root(tmp_path):
    """A fake v2 root with a group, next to a folder it must never touch, and a
    symlink inside that points there."""
    from memcgctl.kernel.discovery import build_fake_root

    root = tmp_path / "root"
    build_fake_root(root, 2)
    run_cli(root, "create", "web", "a")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "memory.max").write_text("canary")
    (root / "escape").symlink_to(outside)
    (root / "a" / "up").symlink_to("../..")
    return root, outside


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=HOSTILE_NAMES, command=st.sampled_from(["stat", "limit", "create", "delete", "shrink"]))
def test_hostile_names_never_reach_outside_the_root(trapped_root, name, command):
    root, outside = trapped_root
    args = {"stat": ["stat", name], "limit": ["limit", name, "1G"], "create": ["create", "-p", name],
            "delete": ["delete", "-r", name], "shrink": ["shrink", name, "1M"]}[command]
    result = run_cli(root, *args)
    allowed = {"stat": {0, 2, 66}, "limit": {0, 2, 66}, "create": {0, 2, 73}, "delete": {0, 2, 66, 75},
               "shrink": {0, 2, 66}}[command]
    assert result.exit_code in allowed, (name, result.stderr)
    assert sorted(p.name for p in outside.iterdir()) == ["memory.max"]
    assert (outside / "memory.max").read_text() == "canary"
    assert sorted(p.name for p in root.parent.iterdir()) == ["outside", "root"]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["escape", "escape/web", "a/up", "a/up/outside", "/../outside", "a/../../x"])
def test_known_escapes_are_usage_errors(trapped_root, name):
    root, outside = trapped_root
    for args in (["stat", name], ["create", "-p", name], ["limit", name, "1G"]):
        result = run_cli(root, *args)
        assert result.exit_code == 2, (args, result.stderr)


# --- hostile sizes --------------------------------------------------------------------

UNIT_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}


def reference_size(text: str) -> int | None:
    """An independent reading of the grammar (README, "Sizes"): None if invalid."""
    text = text.strip()
    number = re.match(r"[0-9]+(\.[0-9]+)?", text)  # ASCII only: the kernel reads no other digits
    if not number:
        return None
    rest = text[number.end():]
    rest = rest[1:] if rest.startswith(" ") else rest
    lowered = rest.lower()
    if lowered in ("", "b", "byte", "bytes"):
        unit = ""
    elif lowered[:1] in "kmgtpe" and lowered[1:] in ("", "b", "ib"):
        unit = lowered[:1]
    else:
        return None
    whole, _, fraction = number.group().partition(".")
    scale = 1024 ** UNIT_POWERS[unit]
    value = int(whole) * scale + (int(fraction) * scale // 10 ** len(fraction) if fraction else 0)
    return value if value <= MAX_BYTES else None


SIZE_LIKE = st.builds(
    lambda whole, fraction, space, unit, suffix, junk: f"{whole}{fraction}{space}{unit}{suffix}{junk}",
    st.integers(0, 10**20).map(str) | st.sampled_from(["", "-1", "0x10", "+3"]),
    st.sampled_from(["", ".5", ".25", ".", ".0001"]),
    st.sampled_from(["", " ", "  "]),
    st.sampled_from(["", "K", "m", "G", "t", "P", "E", "X", "k"]),
    st.sampled_from(["", "B", "iB", "ib", "bytes", "byte", "BB"]),
    st.sampled_from(["", "", "", "x", ".3", "%"]),
)


@settings(max_examples=500, deadline=None)
@given(SIZE_LIKE | st.text(max_size=15))
@example("\U0001e2f0")  # a decimal digit of another script: int() reads it, the grammar does not
def test_parser_agrees_with_a_reference_model_of_the_grammar(text):
    expected = reference_size(text)
    try:
        value = parse_size(text)
    except memcgctl.errors.UsageError:
        assert expected is None, text
        return
    assert value == expected, text
    assert 0 <= value <= MAX_BYTES


@settings(max_examples=500, deadline=None)
@given(st.integers(0, MAX_BYTES * 99 // 100))  # just under 8 EiB, which prints rounded up to "8 EiB"
def test_what_memcgctl_prints_parses_back(value):
    printed = format_size(value)
    parsed = parse_size(printed)
    assert abs(parsed - value) <= value * 0.005 + 1, (value, printed, parsed)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 1023), st.sampled_from(["K", "M", "G", "T", "P", "E"]))
def test_whole_units_round_trip_exactly(number, unit):
    value = number * 1024 ** "BKMGTPE".index(unit)
    if value <= MAX_BYTES:
        assert parse_size(format_size(value)) == value


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(2**63, 2**70))
def test_nothing_over_two_to_the_63_reaches_the_kernel(fake_v1, value):
    run_cli(fake_v1, "create", "--exist-ok", "web")
    before = (fake_v1 / "web" / "memory.limit_in_bytes").read_text()
    result = run_cli(fake_v1, "limit", "web", str(value))
    assert result.exit_code == 2
    assert (fake_v1 / "web" / "memory.limit_in_bytes").read_text() == before


# --- every errno a memcg file returns, mapped to its exit code ---------------------

ERRNO_EXIT_CODES = {
    errno.EINVAL: 65, errno.ERANGE: 65, errno.ENOENT: 66, errno.ESRCH: 66, errno.EOPNOTSUPP: 69, ENOTSUPP: 69,
    errno.EEXIST: 73, errno.EBADF: 74, errno.EIO: 74, errno.ENOMEM: 74, errno.EBUSY: 75, errno.EAGAIN: 75,
    errno.EINTR: 75, errno.EACCES: 77, errno.EPERM: 77,
}


@pytest.mark.parametrize(("number", "exit_code"), ERRNO_EXIT_CODES.items(),
                         ids=[errno.errorcode.get(n, str(n)) for n in ERRNO_EXIT_CODES])
def test_injected_errno_on_a_write_maps_to_its_exit_code(fake_root, monkeypatch, number, exit_code):
    run_cli(fake_root, "create", "web")
    limit_path = fake_root / "web" / ("memory.max" if (fake_root / "web" / "memory.max").exists()
                                      else "memory.limit_in_bytes")
    hook = inject_write_faults(monkeypatch, fake_root, lambda path, data: number)
    result = run_cli(fake_root, "limit", "web", "1G")
    assert result.exit_code == exit_code
    assert result.stderr.startswith(f"memcgctl: write 1073741824 to {limit_path.name}: ")
    assert result.stderr.count("\n") == 1
    assert hook.written == [(str(limit_path), b"1073741824")]  # one attempt, nothing after the failure


def test_kernel_esrch_for_a_process_gone_is_66(kernel_root):
    run_cli(kernel_root.path, "create", "web")
    backend = open_hierarchy(kernel_root.path)
    pid = 2**22 + 1  # above the largest pid_max: never a process
    with pytest.raises(NotFound) as caught:
        backend.fs.apply(backend.attach_action(backend.group("web"), pid))
    assert caught.value.exit_code == 66 and "no such process" in str(caught.value)


# --- systemd owns its units' groups on v2 -----------------------------------------


def test_changing_a_systemd_unit_warns_unless_it_is_delegated(fake_v2):
    run_cli(fake_v2, "create", "-p", "app.slice/web.service", "app.slice/web.service/worker")
    warned = run_cli(fake_v2, "limit", "app.slice/web.service", "1G")
    assert warned.exit_code == 0
    assert warned.stderr.startswith("memcgctl: warning: web.service is a systemd unit that is not delegated")
    assert run_cli(fake_v2, "limit", "app.slice/web.service/worker", "1G").stderr == ""
    try:
        os.setxattr(fake_v2 / "app.slice" / "web.service", "user.delegate", b"1")
    except OSError:
        pytest.skip("this filesystem has no user extended attributes")
    assert run_cli(fake_v2, "limit", "app.slice/web.service", "1G").stderr == ""


@pytest.mark.parametrize("journal", ["nobody's", "a file"])
def test_recover_with_a_journal_it_cannot_use_says_so_instead_of_nothing(fake_v1, attacker_dir, journal):
    """recover (the boot unit) must not exit 0 without having looked: a
    journal directory nobody owns, or a file in its place, is 77 or 74 with
    the reason; the record planted there is not replayed."""
    assert run_cli(fake_v1, "create", "web", "--limit", "1G").exit_code == 0
    directory = attacker_dir if journal == "nobody's" else fake_v1.parent / "journal-file"
    if journal == "a file":
        directory.write_text("not a directory\n")
    else:
        (directory / "planted.restore").write_text(json.dumps({"path": str(fake_v1 / "web" / "memory.limit_in_bytes"),
                                                               "value": "4096", "pid": 1}))
    result = run_process(fake_v1, "--journal-dir", str(directory), "recover")
    assert result.returncode == (77 if journal == "nobody's" else 74), result
    assert result.stdout == "" and result.stderr.startswith("memcgctl: use journal directory: ")
    assert str(directory) in result.stderr and "Traceback" not in result.stderr
    assert (fake_v1 / "web" / "memory.limit_in_bytes").read_text() == str(1 << 30)
