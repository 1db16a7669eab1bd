"""Fixtures: fake v1 and v2 roots, and a real memory cgroup to test in.

Real-kernel tests work only inside a uniquely named child of the test
process's OWN memory cgroup, kill only the processes they started, and
remove their groups afterwards (depth-first).  Without a writable memory
cgroup they skip, or fail when MEMCGCTL_REQUIRE_KERNEL=1 (as in CI).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from memcgctl.cli import cli
from memcgctl.kernel.discovery import build_fake_root, find_memory_root, read_cgroup_mounts

PROJECT = Path(__file__).resolve().parent.parent
# strace's delays of the writes to a memory.limit_in_bytes (KernelRoot.traced_shrink):
HOLD_THE_RESTORE = "inject=write:delay_enter=5000000:when=2"  # the second write, 5 s before it is made
HOLD_AFTER_LOWERING = "inject=write:delay_exit=3000000:when=1"  # the first write, 3 s once the kernel took it


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(root: Path | None, *args: str, env: dict | None = None) -> CliResult:
    """memcgctl ARGS in this process (click's CliRunner), on ROOT."""
    prefix = ["--root", str(root)] if root is not None else []
    result = CliRunner().invoke(cli, [*prefix, *args], env=env, prog_name="memcgctl")
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is a bug: let pytest show it
    return CliResult(result.exit_code, result.stdout, result.stderr)


def all_commands() -> dict:
    """{name: click command} of every memcgctl command (they load lazily)."""
    return {name: cli.get_command(None, name) for name in cli.list_commands(None)}


def run_process(root: Path | None, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """memcgctl ARGS as its own process, on ROOT (needed for run, signals)."""
    prefix = ["--root", str(root)] if root is not None else []
    return subprocess.run([sys.executable, "-m", "memcgctl", *prefix, *args],
                          capture_output=True, text=True, timeout=120, **kwargs)


def pytest_collection_modifyitems(items):
    """Mark the tests that run on the real kernel (`pytest -m kernel`), as the
    cgroup v2 VM does."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "kernel_root" in item.fixturenames or "kernel" in params.values():
            item.add_marker(pytest.mark.kernel)


@pytest.fixture(autouse=True)
def journal_directory(monkeypatch) -> Path:
    """Each test its own journal (locks and undo records), never /run/memcgctl.

    On tmpfs, like /run: on a disk, the journal's fsync would flush the dirty
    page cache that the signal tests rely on to keep the kernel reclaiming.
    """
    shm = Path("/dev/shm")
    directory = Path(tempfile.mkdtemp(prefix="memcgctl-journal-", dir=shm if shm.is_dir() else None))
    monkeypatch.setenv("MEMCGCTL_JOURNAL_DIR", str(directory))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(params=[1, 2], ids=["fake-v1", "fake-v2"])
def fake_root(request, tmp_path) -> Path:
    """An empty fake hierarchy of each version."""
    root = tmp_path / "cgroup"
    build_fake_root(root, request.param)
    return root


@pytest.fixture
def fake_v1(tmp_path) -> Path:
    root = tmp_path / "cgroup-v1"
    build_fake_root(root, 1)
    return root


@pytest.fixture
def fake_v2(tmp_path) -> Path:
    root = tmp_path / "cgroup-v2"
    build_fake_root(root, 2)
    return root


# --- the real kernel --------------------------------------------------------------


def own_memory_cgroup() -> tuple[Path, int] | None:
    """This process's memory cgroup directory and its cgroup version, if any."""
    try:
        mount, version = find_memory_root(read_cgroup_mounts())
    except Exception:  # noqa: BLE001 - no memory controller at all: no kernel tests
        return None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if (version == 2 and controllers == "") or (version == 1 and "memory" in controllers.split(",")):
            return mount / path.lstrip("/"), version
    return None


@dataclass
class KernelRoot:
    """A fresh memory cgroup of our own to use as --root, and what we started."""

    path: Path
    version: int
    processes: list = field(default_factory=list)

    def start(self, group: str, *argv: str) -> subprocess.Popen:
        """Start ARGV inside GROUP (through `memcgctl run`); it is killed at the end."""
        process = subprocess.Popen(
            [sys.executable, "-m", "memcgctl", "--root", str(self.path), "run", group, "--", *argv],
            stdout=subprocess.PIPE, text=True, start_new_session=True,
        )
        self.processes.append(process)
        return process

    def hold_anonymous_memory(self, group: str, size: int) -> subprocess.Popen:
        """A process in GROUP touching SIZE bytes of anonymous memory, which
        cannot be reclaimed without swap."""
        process = self.start(group, sys.executable, "-c", ANON_HOLDER, str(size))
        assert process.stdout.readline().strip() == "ready"
        return process

    def keep_dirtying(self, group: str, file: Path, mebibytes: int = 256) -> subprocess.Popen:
        """A process in GROUP rewriting MEBIBYTES of FILE in place, over and
        over: reclaim must wait for writeback and the pages come back at
        once, so a shrink below them keeps the kernel busy until stopped."""
        self.fill_page_cache(group, file, mebibytes)
        return self.start(group, "sh", "-c", f"while :; do dd if=/dev/zero of={file} bs=1M count={mebibytes} "
                                             "conv=notrunc status=none; done")

    def fill_page_cache(self, group: str, file: Path, mebibytes: int) -> None:
        """Charge MEBIBYTES of page cache to GROUP: dd writes FILE from inside it."""
        completed = run_process(self.path, "run", group, "--", "dd", "if=/dev/zero", f"of={file}",
                                "bs=1M", f"count={mebibytes}", "status=none")
        assert completed.returncode == 0, completed.stderr

    def traced_shrink(self, group: str, target: str, hold: str) -> subprocess.Popen:
        """`memcgctl shrink GROUP TARGET` under strace, whose HOLD (HOLD_THE_RESTORE,
        HOLD_AFTER_LOWERING) delays a write to GROUP's memory.limit_in_bytes."""
        limit_path = self.path / group / "memory.limit_in_bytes"
        return subprocess.Popen(
            ["strace", "-f", "-qq", "-o", "/dev/null", "-P", str(limit_path), "-e", "trace=write", "-e", hold,
             sys.executable, "-m", "memcgctl", "--root", str(self.path), "shrink", group, target],
            stderr=subprocess.PIPE, text=True)

    def kill_a_shrink_with_the_limit_lowered(self, group: str, cache: Path, target: str) -> None:
        """A `memcgctl shrink GROUP TARGET` SIGKILLed while the limit reads TARGET
        (rounded down to a page, as the kernel keeps it), before its restore."""
        limit_path = self.path / group / "memory.limit_in_bytes"
        lowered = str(int(target) - int(target) % os.sysconf("SC_PAGE_SIZE"))
        self.fill_page_cache(group, cache, 40)
        tracer = self.traced_shrink(group, target, HOLD_THE_RESTORE)
        deadline = time.monotonic() + 30
        while limit_path.read_text().strip() != lowered:
            assert time.monotonic() < deadline, "the shrink never lowered"
            time.sleep(0.005)
        shrinker_pid = int(Path(f"/proc/{tracer.pid}/task/{tracer.pid}/children").read_text().split()[0])
        os.kill(shrinker_pid, signal.SIGKILL)
        tracer.communicate(timeout=30)
        # strace ends the way its tracee did: killed by SIGKILL, in the window, not exited.
        assert tracer.returncode == -signal.SIGKILL, tracer.returncode
        assert limit_path.read_text().strip() == lowered, "the kill should leave the limit lowered"

    def read(self, group: str, name: str) -> str:
        return (self.path / group / name).read_text().strip()

    def write(self, group: str, name: str, value: str) -> None:
        """Set up a test situation by hand (only in groups under our own root)."""
        (self.path / group / name).write_text(value)

    def cleanup(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # its own session: what it started too
            process.wait()
        groups = sorted((p for p in self.path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for directory in groups:
            # Killed processes leave the group only once they are reaped.
            deadline = time.monotonic() + 10
            while (directory / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
                time.sleep(0.05)
            directory.rmdir()
        self.path.rmdir()


def _kernel_unavailable(reason: str):
    if os.environ.get("MEMCGCTL_REQUIRE_KERNEL") == "1":
        pytest.fail(f"MEMCGCTL_REQUIRE_KERNEL=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def kernel_root() -> KernelRoot:
    found = own_memory_cgroup()
    if found is None:
        _kernel_unavailable("no memory cgroup found for this process")
    own, version = found
    path = own / f"memcgctl-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        path.mkdir()
    except OSError as err:
        _kernel_unavailable(f"cannot create a memory cgroup under {own}: {err}")
    if version == 2:
        # Our test root has no processes, so its children may get +memory.
        (path / "cgroup.subtree_control").write_text("+memory")
    root = KernelRoot(path, version)
    yield root
    root.cleanup()



@pytest.fixture(scope="module")
def code() -> Path:
    """memcgctl and its dependencies copied where nobody can read them (see
    unprivileged.py), for the tests that run memcgctl as nobody."""
    from unprivileged import readable_copy, remove_tree

    directory = readable_copy()
    yield directory
    remove_tree(directory)


ANON_HOLDER = """
import sys, time
size = int(sys.argv[1])
memory = bytearray(size)
for i in range(0, size, 4096):
    memory[i] = 1
print("ready", flush=True)
time.sleep(600)
"""


@pytest.fixture
def attacker_dir() -> Path:
    """/tmp/memcgctl-nobody-XXXX, owned by nobody (the attacker's, or a user's
    /tmp/cg), removed afterwards whatever nobody left in it."""
    from unprivileged import nobody_directory, remove_tree

    directory = nobody_directory()
    yield directory
    remove_tree(directory)


def let_the_units_see_this_checkout(memcgctl: Path) -> None:
    """In the VM with systemd: where this checkout (and so the memcgctl the
    units name) lies under /tmp, which PrivateTmp=yes hides from them, a
    drop-in lets the installed units see it.  `memcgctl units` warns of this
    for a user; a test only needs its units to run."""
    from memcgctl.units import UNIT_NAMES, hidden_from_the_service

    if not hidden_from_the_service(memcgctl.resolve()):
        return
    for unit in UNIT_NAMES:
        if unit.endswith(".service"):
            drop_in = Path("/etc/systemd/system") / f"{unit}.d" / "checkout-under-tmp.conf"
            drop_in.parent.mkdir(parents=True, exist_ok=True)
            drop_in.write_text("[Service]\nPrivateTmp=no\n")
