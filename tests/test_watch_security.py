"""One opener for the daemon's kernel watches, and a cap on them.

The attacker is `nobody` (setpriv), who owns the `batch` subtree of a fake
tree root owns, while a root daemon watches `batch/*`.  Kernel watches (v1
usage thresholds, v2 memory.events, PSI triggers) open their files through
the filesystem layer (CgroupFS.open_for_watch), which refuses on a fake root:
nothing planted in a fake group is opened to register a watch, and the
daemon reads such groups at every interval instead.

The cap: one fd per watch, at most the soft RLIMIT_NOFILE less a reserve;
groups beyond it are polled, and a group over its watermark is still
reclaimed (on a fake tree, with a low RLIMIT_NOFILE in the daemon's process).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from unprivileged import NOBODY, as_nobody, needs_root_and_setpriv

from memcgctl.errors import NotAvailable
from memcgctl.kernel.discovery import build_fake_root
from memcgctl.kernel.fs import CgroupFS

from conftest import run_cli

MIB = 1024**2
WATERMARK = '[[group]]\nmatch = "batch/*"\npolicy = "watermark"\nhigh = "200M"\nlow = "100M"\n'


@pytest.fixture
def shared_tree():
    """A fake tree root owns, in a directory nobody may search, whose batch
    subtree (batch, batch/job) nobody owns; (root, version) per test."""
    base = Path(tempfile.mkdtemp(prefix="memcgctl-watch-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def make_tree(base: Path, version: int) -> Path:
    root = base / f"cgroup-v{version}"
    build_fake_root(root, version)
    assert run_cli(root, "create", "-p", "batch/job").exit_code == 0
    for path in [root / "batch", *(root / "batch").rglob("*")]:
        os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid, follow_symlinks=False)
    return root


def start_daemon(root: Path, config: Path, *options: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "memcgctl", "--root", str(root), "-v", *options, "daemon",
                             "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(daemon: subprocess.Popen, within: float = 10.0) -> tuple[int, str]:
    """SIGTERM, then (exit status, log); a daemon that does not stop is killed and fails the test."""
    daemon.send_signal(signal.SIGTERM)
    try:
        _, log = daemon.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.communicate()
        pytest.fail("the daemon did not stop on SIGTERM")
    return daemon.returncode, log


def wait_for_log_line(daemon: subprocess.Popen, text: str, timeout: float = 20.0) -> list[str]:
    """The daemon's stderr lines up to the first holding TEXT."""
    os.set_blocking(daemon.stderr.fileno(), True)
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = daemon.stderr.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    pytest.fail(f"the daemon never said {text!r}: {lines}")


def plant_and_run_daemon(base: Path, version: int, name: str, plant: str, tmp_path: Path) -> tuple[int, str, Path]:
    """As nobody, replace batch/job/NAME by what the shell command PLANT
    (`{path}` for its path) makes; run a root daemon on batch/* for a few
    passes and stop it: (exit status, log, the planted path)."""
    planted_path = make_tree(base, version) / "batch" / "job" / name
    planted = as_nobody(["sh", "-c", f"rm -f '{planted_path}' && " + plant.format(path=f"'{planted_path}'")])
    assert planted.returncode == 0, planted.stderr
    config = tmp_path / "daemon.toml"
    config.write_text(WATERMARK)
    daemon = start_daemon(planted_path.parents[2], config)
    wait_for_log_line(daemon, "batch/job: watched by")
    time.sleep(2.5)  # passes at the 1 s interval: the old daemon registered its watch at the first
    status, log = stop(daemon, within=5)
    assert "Traceback" not in log
    return status, log, planted_path


@needs_root_and_setpriv()
def test_a_link_planted_at_cgroup_event_control_is_never_written_through(shared_tree, tmp_path):
    victim = tmp_path / "root-only"
    victim.write_text("root's secret\n")
    victim.chmod(0o600)
    status, log, control = plant_and_run_daemon(shared_tree, 1, "cgroup.event_control", f"ln -s '{victim}' {{path}}",
                                                tmp_path)
    assert status == 0, log
    assert victim.read_text() == "root's secret\n" and victim.stat().st_mode & 0o777 == 0o600
    assert control.is_symlink()


@needs_root_and_setpriv()
def test_a_fifo_planted_at_cgroup_event_control_does_not_hang_the_daemon(shared_tree, tmp_path):
    status, log, _ = plant_and_run_daemon(shared_tree, 1, "cgroup.event_control", "mkfifo {path}", tmp_path)
    assert status == 0 and "SIGTERM: stopping" in log, log


@needs_root_and_setpriv()
def test_a_link_at_memory_events_of_a_fake_v2_group_is_no_crash(shared_tree, tmp_path):
    status, log, events = plant_and_run_daemon(shared_tree, 2, "memory.events", "ln -s /etc/hostname {path}",
                                               tmp_path)
    assert status == 0, log
    assert events.is_symlink()


def test_the_filesystem_layer_opens_no_watch_on_a_fake_root(fake_v1):
    fs = CgroupFS(fake_v1, is_kernel=False)
    assert run_cli(fake_v1, "create", "web").exit_code == 0
    with pytest.raises(NotAvailable) as caught:
        fs.open_for_watch(fs.group("web"), "cgroup.event_control", os.O_WRONLY)
    assert "a fake root has no kernel notifiers" in str(caught.value)
    assert not (fake_v1 / "web" / "cgroup.event_control").exists()


# --- the cap on watches (issue: one eventfd per watched group) -------------------------

RUN_WITH_LOW_LIMIT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2])))
sys.argv = ["memcgctl", *sys.argv[3:]]
from memcgctl.cli import main
main()
"""


def test_the_soft_file_limit_is_raised_to_the_hard_one_at_start(fake_v1, tmp_path):
    config = tmp_path / "daemon.toml"
    config.write_text(WATERMARK.replace("batch/*", "web"))
    assert run_cli(fake_v1, "create", "web").exit_code == 0
    probe = tmp_path / "limits"
    script = RUN_WITH_LOW_LIMIT.replace("main()", f"""
import memcgctl.daemon.engine as engine
original = engine.Engine.run
def run(self, once=False):
    open({str(probe)!r}, "w").write(" ".join(map(str, resource.getrlimit(resource.RLIMIT_NOFILE))) + " "
                                    + str(self.watch_cap))
    return original(self, once)
engine.Engine.run = run
main()""")
    done = subprocess.run([sys.executable, "-c", script, "200", "4096", "--root", str(fake_v1), "daemon",
                           "--config", str(config), "--once"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert probe.read_text().split() == ["4096", "4096", str(4096 - 64)]


def test_groups_beyond_the_watch_cap_are_polled_and_reclaimed(kernel_root, tmp_path):
    """150 idle groups take the 36 watches a limit of 100 fds leaves (64 in
    reserve); `victim`, over its watermark and not watched, is still
    reclaimed at the interval, and "not watched" is said once per group."""
    names = [f"g{index:03}" for index in range(150)]
    for name in [*names, "victim"]:
        (kernel_root.path / name).mkdir()
    kernel_root.fill_page_cache("victim", tmp_path / "cache", 96)
    assert int(kernel_root.read("victim", "memory.usage_in_bytes")) > 80 * MIB
    config = tmp_path / "daemon.toml"
    config.write_text('interval = 0.5\n[[group]]\nmatch = "*"\npolicy = "watermark"\nhigh = "64M"\nlow = "32M"\n')
    daemon = subprocess.Popen([sys.executable, "-c", RUN_WITH_LOW_LIMIT, "100", "100", "--root",
                               str(kernel_root.path), "daemon", "--config", str(config)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = wait_for_log_line(daemon, "victim: watermark: ", timeout=60)
    time.sleep(1.5)  # three more intervals: nothing is said again
    status, rest = stop(daemon)
    log = "".join(lines) + rest
    assert status == 0, log
    assert int(kernel_root.read("victim", "memory.usage_in_bytes")) <= 40 * MIB, log
    capped = [line for line in log.splitlines() if ": not watched: the daemon holds 36 kernel watches" in line]
    assert len(capped) == 151 - 36, log  # g036..g149 and victim, once each
    assert len({line.split(":")[1] for line in capped}) == len(capped)
    assert "Too many open files" not in log and "Traceback" not in log
