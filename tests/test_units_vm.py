"""The units of `memcgctl units --install`, started by a real systemd: PID 1
in the VM of tests/vm (`run.py --init systemd`; skipped anywhere else, the
host's hierarchy is v1 and its PID 1 is not ours to drive).

One boot runs them all, in order: the daemon reclaims by its config in
/etc/memcgctl, tells systemd when it is ready and how it does (READY=1,
STATUS=, around a reload too), a reload with a broken config fails and the
old rules stay, SIGKILL is restarted by systemd, `systemctl stop` (STOPPING=1)
leaves every knob as it was, a config error is not restarted in a loop, the
recover unit runs sandboxed, the shrink timer fires, the exporter serves
/metrics on loopback, with the groups a drop-in's MEMCGCTL_EXPORT_OPTIONS
selects.
The groups live beside the test's own leaf, in the delegated group run.py
gives the command (system.slice/memcgctl-vm-command.service).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import let_the_units_see_this_checkout

# This environment's memcgctl (.ci/run's venv), else the one on PATH.
MEMCGCTL = Path(sys.executable).parent / "memcgctl"
if not MEMCGCTL.exists():
    MEMCGCTL = Path(shutil.which("memcgctl") or MEMCGCTL)
CGROUP = Path("/sys/fs/cgroup")
CONFIG = Path("/etc/memcgctl/daemon.toml")
KNOBS = ("memory.high", "memory.max", "memory.low", "memory.min", "memory.swap.max")
MIB = 1024**2
DAEMON = "memcgctl-daemon.service"
EXPORTER = "memcgctl-export.service"
# The daemon's STATUS= (render/daemon_status.py status_line), as systemctl shows it.
STATUS_TEXT = re.compile(r"\d+ group\(s\) watched by (\d+) rule\(s\); [\d.]+ \w+ reclaimed in \d+ step\(s\)")

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.environ.get("MEMCGCTL_IN_VM") != "1" or Path("/proc/1/comm").read_text().strip() != "systemd"
                       or not (CGROUP / "cgroup.controllers").exists(),
                       reason="systemd as PID 1 on cgroup v2: runs in the VM (tests/vm/run.py --init systemd)"),
]


def run(*argv, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    completed = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL)
    if check:
        assert completed.returncode == 0, f"{argv}: {completed.stdout}{completed.stderr}"
    return completed


def systemctl(*args, check: bool = True) -> subprocess.CompletedProcess:
    return run("systemctl", *args, check=check)


def show(unit: str, prop: str) -> str:
    return systemctl("show", "-p", prop, "--value", unit).stdout.strip()


def journal(unit: str) -> str:
    return run("journalctl", "-b", "-o", "cat", "--no-pager", "-u", unit).stdout


def wait_for(condition, seconds: float, what: str, unit: str = DAEMON) -> None:
    """Wait until CONDITION(); on timeout, fail with the end of UNIT's journal."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; {unit}: {show(unit, 'ActiveState')}, journal:\n"
                        + "\n".join(journal(unit).splitlines()[-15:]))
        time.sleep(0.25)


class Groups:
    """Groups made for the test beside its own leaf group, removed at the end."""

    def __init__(self):
        own = Path(Path("/proc/self/cgroup").read_text().strip().partition("::")[2])
        self.base = CGROUP / own.parent.relative_to("/") / "units-test"
        self.base.mkdir()
        (self.base / "cgroup.subtree_control").write_text("+memory")

    def name(self, group: str) -> str:
        """GROUP as memcgctl names it (relative to /sys/fs/cgroup)."""
        return str((self.base / group).relative_to(CGROUP))

    def make(self, group: str) -> Path:
        (self.base / group).mkdir()
        return self.base / group

    def current(self, group: str) -> int:
        return int((self.base / group / "memory.current").read_text())

    def knobs(self, group: str) -> dict:
        return {knob: (self.base / group / knob).read_text() for knob in KNOBS}

    def fill_page_cache(self, group: str, file: str, mebibytes: int) -> None:
        run(MEMCGCTL, "run", self.name(group), "--", "dd", "if=/dev/zero", f"of=/tmp/{file}", "bs=1M",
            f"count={mebibytes}", "status=none")

    def remove(self) -> None:
        for directory in sorted(self.base.glob("*/"), key=lambda p: -len(p.parts)):
            directory.rmdir()
        self.base.rmdir()


@pytest.fixture(scope="module")
def groups():
    installed = run(MEMCGCTL, "units", "--install")
    assert f"{CONFIG}: written" in installed.stdout and "systemctl daemon-reload" in installed.stdout
    let_the_units_see_this_checkout(MEMCGCTL)
    systemctl("daemon-reload")
    made = Groups()
    yield made
    for unit in (DAEMON, "memcgctl-export.service"):
        systemctl("stop", unit, check=False)
    made.remove()


def write_config(groups: Groups, high: str = "100M", low: str = "40M") -> None:
    CONFIG.write_text(f'interval = 0.5\n\n[[group]]\nmatch = "{groups.name("web")}"\npolicy = "watermark"\n'
                      f'high = "{high}"\nlow = "{low}"\n')


def test_units_install_names_this_memcgctl(groups):
    unit = Path("/etc/systemd/system") / DAEMON
    assert f"ExecStart={MEMCGCTL.resolve()} daemon --config {CONFIG}\n" in unit.read_text()
    assert show(DAEMON, "LoadState") == "loaded"


def test_daemon_reclaims_by_its_config(groups):
    groups.make("web")
    write_config(groups)
    groups.before = groups.knobs("web")
    systemctl("start", DAEMON)
    groups.fill_page_cache("web", "cache1", 150)
    wait_for(lambda: groups.current("web") <= 100 * MIB, 60, "the daemon to reclaim web")
    wait_for(lambda: f"{groups.name('web')}: watermark: usage" in journal(DAEMON), 30, "the action in the journal")
    assert show(DAEMON, "ActiveState") == "active"


def test_the_daemon_tells_systemd_when_it_is_ready_and_how_it_does(groups):
    """Type=notify: `systemctl restart` returns once READY=1 came (after the
    first pass), with a one-line STATUS=; a reload is RELOADING=1, READY=1
    and a fresh STATUS= for the new rules."""
    systemctl("restart", DAEMON)
    status = show(DAEMON, "StatusText")
    assert show(DAEMON, "ActiveState") == "active"
    assert STATUS_TEXT.fullmatch(status) and STATUS_TEXT.fullmatch(status)[1] == "1", status
    CONFIG.write_text(CONFIG.read_text() + f'\n[[group]]\nmatch = "{groups.name("batch")}"\npolicy = "watermark"\n'
                                           'high = "100M"\nlow = "40M"\n')
    systemctl("reload", DAEMON)
    assert show(DAEMON, "ActiveState") == "active"
    wait_for(lambda: (STATUS_TEXT.fullmatch(show(DAEMON, "StatusText")) or [0, 0])[1] == "2", 30,
             "a fresh STATUS= naming the reloaded rules")
    assert "\n" not in show(DAEMON, "StatusText")
    assert f"reloaded {CONFIG}" in journal(DAEMON)


def test_reload_with_a_broken_config_fails_and_the_old_rules_stay(groups):
    pid = show(DAEMON, "MainPID")
    CONFIG.write_text('[[group]]\nmatch = "web"\npolicy = "watermark"\nhigh = "lots"\n')
    completed = systemctl("reload", DAEMON, check=False)
    assert completed.returncode != 0
    assert (show(DAEMON, "ActiveState"), show(DAEMON, "MainPID")) == ("active", pid)
    groups.fill_page_cache("web", "cache2", 150)  # the old rules still reclaim
    wait_for(lambda: groups.current("web") <= 100 * MIB, 60, "the old rules to reclaim web")


def test_sigkill_of_the_daemon_is_restarted(groups):
    write_config(groups)
    systemctl("reload", DAEMON)
    pid = show(DAEMON, "MainPID")
    systemctl("kill", "--kill-whom=main", "--signal=KILL", DAEMON)
    wait_for(lambda: show(DAEMON, "MainPID") not in ("0", pid) and show(DAEMON, "ActiveState") == "active", 60,
             "systemd to restart the daemon")
    assert show(DAEMON, "NRestarts") == "1"
    groups.fill_page_cache("web", "cache3", 150)  # the new daemon reclaims too
    wait_for(lambda: groups.current("web") <= 100 * MIB, 60, "the restarted daemon to reclaim web")


def test_stop_leaves_every_knob_as_it_was(groups):
    # PID 1 logs each notification it gets at debug level: STOPPING=1 shows there.
    run("systemd-analyze", "set-log-level", "debug")
    try:
        systemctl("stop", DAEMON)
    finally:
        run("systemd-analyze", "set-log-level", "info")
    assert show(DAEMON, "ActiveState") == "inactive"
    said = journal(DAEMON)
    assert "SIGTERM: stopping" in said
    assert re.search(r"Got notification message from PID \d+ \(STOPPING=1\)", said), said[-3000:]
    assert groups.knobs("web") == groups.before


def test_a_config_error_is_not_restarted_in_a_loop(groups):
    systemctl("reset-failed", DAEMON, check=False)
    CONFIG.write_text("interval = \n")  # not TOML
    systemctl("start", DAEMON, check=False)
    wait_for(lambda: show(DAEMON, "ActiveState") == "failed", 60, "the daemon to fail")
    time.sleep(5)  # RestartSec=2s: a restart would have come by now
    assert (show(DAEMON, "ActiveState"), show(DAEMON, "ExecMainStatus")) == ("failed", "78")
    assert show(DAEMON, "NRestarts") == "0"


def test_recover_unit_runs_sandboxed(groups):
    systemctl("start", "memcgctl-recover.service")
    assert (show("memcgctl-recover.service", "ActiveState"), show("memcgctl-recover.service", "Result")) \
        == ("active", "success")


def test_shrink_timer_fires_and_shrinks_its_group(groups):
    groups.make("batch")
    groups.fill_page_cache("batch", "batch", 100)
    before = groups.current("batch")
    timer = run("systemd-escape", "--template", "memcgctl-shrink@.timer", groups.name("batch")).stdout.strip()
    service = timer.removesuffix(".timer") + ".service"
    dropin = Path("/etc/systemd/system") / f"{timer}.d"
    dropin.mkdir()
    (dropin / "soon.conf").write_text("[Timer]\nOnActiveSec=1s\nRandomizedDelaySec=0\n")
    systemctl("daemon-reload")
    systemctl("start", timer)
    wait_for(lambda: show(service, "Result") == "success" and show(service, "ExecMainExitTimestampMonotonic") != "0",
             90, "the timer's shrink to run", service)
    assert groups.current("batch") <= 0.8 * before
    assert f"{groups.name('batch')}: " in journal(service)
    systemctl("stop", timer)


def scrape() -> str | None:
    """The exporter unit's /metrics, or None while it does not answer."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:9101/metrics", timeout=10) as response:
            return response.read().decode()
    except OSError:
        return None


def test_exporter_serves_metrics_on_loopback(groups):
    systemctl("start", "memcgctl-export.service")
    wait_for(lambda: scrape() is not None, 60, "the exporter to listen", "memcgctl-export.service")
    assert f'memcgctl_memory_usage_bytes{{group="{groups.name("web")}"}}' in scrape()


def test_the_exporters_selection_is_set_in_a_drop_in(groups):
    """MEMCGCTL_EXPORT_OPTIONS in a drop-in (systemctl edit) gives the unit's
    export --include and --exclude: /metrics has the groups they select."""
    base = str(groups.base.relative_to(CGROUP))
    drop_in = Path("/etc/systemd/system") / f"{EXPORTER}.d" / "selection.conf"
    drop_in.parent.mkdir(exist_ok=True)
    drop_in.write_text(f'[Service]\nEnvironment="MEMCGCTL_EXPORT_OPTIONS=--include {base}/* --exclude */batch"\n')
    try:
        systemctl("daemon-reload")
        systemctl("restart", EXPORTER)
        wait_for(lambda: scrape() is not None, 60, "the exporter to listen", EXPORTER)
        exported = set(re.findall(r'^memcgctl_memory_usage_bytes\{group="([^"]*)"\}', scrape(), re.MULTILINE))
        assert exported == {groups.name("web")}, exported
    finally:
        drop_in.unlink()
        systemctl("daemon-reload")
        systemctl("restart", EXPORTER)
    wait_for(lambda: scrape() is not None and groups.name("batch") in scrape(), 60, "every group again", EXPORTER)


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus is not installed")
def test_prometheus_scrapes_the_exporter(groups, tmp_path):
    systemctl("start", "memcgctl-export.service")
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 5s\n  scrape_timeout: 5s\nscrape_configs:\n  - job_name: memcgctl\n"
        "    static_configs:\n      - targets: ['127.0.0.1:9101']\n")
    log = tmp_path / "prometheus.log"
    with log.open("w") as output:
        server = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={tmp_path / 'data'}", "--web.listen-address=127.0.0.1:9190"],
                                  stdout=output, stderr=output, stdin=subprocess.DEVNULL)
    try:
        def answer(path: str) -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:9190{path}", timeout=10) as response:
                    return response.read().decode()
            except OSError:
                return ""
        deadline = time.monotonic() + 180
        query = "/api/v1/query?query=memcgctl_memory_usage_bytes"
        while groups.name("web") not in answer(query):
            assert time.monotonic() < deadline and server.poll() is None, \
                f"targets: {answer('/api/v1/targets')[:1500]}\nprometheus:\n{log.read_text()[-1500:]}"
            time.sleep(1)
    finally:
        server.terminate()
        server.wait(timeout=30)
