"""memcgctl export: the groups' figures as Prometheus metrics, read back with
prometheus_client's own parser, with promtool, and through a real Prometheus
server scraping real v1 groups."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from memcgctl.daemon.counters import counters_file_name

from conftest import run_cli, run_process

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
NOT_INSTALLED = "{} is not installed (apt-get install prometheus)"
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason=NOT_INSTALLED.format("promtool"))
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None, reason=NOT_INSTALLED.format("prometheus"))
MIB = 1024**2


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, frozenset of labels): value} of an exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict, name: str, **labels) -> float | None:
    return found.get((name, frozenset(labels.items())))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_get(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def wait_for(condition, seconds: float, what: str):
    """CONDITION() until it returns something true, at most SECONDS."""
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(OSError):
            result = condition()
            if result:
                return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.2)


def stop(process: subprocess.Popen) -> int:
    """SIGTERM to a process this test started (by its PID), then its exit status."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        raise


# --- fake trees ------------------------------------------------------------------


def test_v1_figures_are_exported_in_base_units_with_one_group_label(fake_v1):
    assert run_cli(fake_v1, "create", "-p", "batch/job1", "--limit", "1G").exit_code == 0
    assert run_cli(fake_v1, "create", "web").exit_code == 0
    (fake_v1 / "web" / "memory.usage_in_bytes").write_text("52428800\n")
    (fake_v1 / "web" / "memory.failcnt").write_text("7\n")
    (fake_v1 / "web" / "memory.stat").write_text("cache 4096\nrss 8192\npgmajfault 3\ntotal_cache 12288\n")
    result = run_cli(fake_v1, "export")
    assert result.exit_code == 0, result.stderr
    found = samples(result.stdout)
    assert value(found, "memcgctl_memory_usage_bytes", group="web") == 50 * MIB
    assert value(found, "memcgctl_memory_limit_bytes", group="batch/job1") == 1024 * MIB
    assert value(found, "memcgctl_memory_limit_bytes", group="web") is None  # unlimited: left out
    assert value(found, "memcgctl_memory_failcnt_total", group="web") == 7
    # v1: the hierarchical total_ figure where there is one, as usage_in_bytes and v2 count.
    assert value(found, "memcgctl_memory_stat_cache_bytes", group="web") == 12288
    assert value(found, "memcgctl_memory_stat_rss_bytes", group="web") == 8192
    assert value(found, "memcgctl_memory_stat_pgmajfault_total", group="web") == 3
    assert value(found, "memcgctl_scrape_groups") == 3
    assert value(found, "memcgctl_scrape_errors") == 0
    assert 0 < value(found, "memcgctl_scrape_duration_seconds") < 10
    # One label, the group: no label per memory.stat key, nothing from total_* lines.
    assert {label for name, labels in found for label, _ in labels} == {"group"}
    assert not any("total" in name.removesuffix("_total") for name, _ in found)


def test_v2_events_and_pressure_totals_in_seconds(fake_v2):
    assert run_cli(fake_v2, "create", "web").exit_code == 0
    assert run_cli(fake_v2, "limit", "web", "400M", "--high", "300M").exit_code == 0
    (fake_v2 / "web" / "memory.events").write_text("low 0\nhigh 12\nmax 2\noom 1\noom_kill 1\noom_group_kill 0\n")
    (fake_v2 / "web" / "memory.pressure").write_text(
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=250\n")
    result = run_cli(fake_v2, "export", "web")
    assert result.exit_code == 0, result.stderr
    found = samples(result.stdout)
    assert value(found, "memcgctl_memory_limit_bytes", group="web") == 400 * MIB
    assert value(found, "memcgctl_memory_high_bytes", group="web") == 300 * MIB
    assert value(found, "memcgctl_memory_events_high_total", group="web") == 12
    assert value(found, "memcgctl_memory_events_oom_kill_total", group="web") == 1
    assert value(found, "memcgctl_memory_pressure_some_seconds_total", group="web") == 1.5
    assert value(found, "memcgctl_memory_pressure_full_seconds_total", group="web") == 0.00025
    assert value(found, "memcgctl_memory_failcnt_total", group="web") is None  # v1 only


def test_a_group_that_does_not_exist_is_an_error(fake_root):
    result = run_cli(fake_root, "export", "nosuch")
    assert result.exit_code == 66
    assert result.stderr.startswith("memcgctl: group nosuch: no such group (")
    assert result.stdout == ""


@needs_promtool
def test_promtool_accepts_the_exposition(fake_v1, journal_directory):
    assert run_cli(fake_v1, "create", "web", "batch", "--limit", "1G").exit_code == 0
    write_daemon_counters(journal_directory, fake_v1, os.getpid())
    exposition = run_process(fake_v1, "export").stdout
    assert "memcgctl_daemon_reclaimed_bytes_total" in exposition
    completed = subprocess.run([PROMTOOL, "check", "metrics"], input=exposition, capture_output=True, text=True,
                               timeout=60)
    assert (completed.returncode, completed.stdout + completed.stderr) == (0, "")


# --- the textfile ----------------------------------------------------------------


def test_textfile_is_replaced_atomically_and_leaves_no_temporary_file(fake_v1, tmp_path):
    assert run_cli(fake_v1, "create", "web", "--limit", "100M").exit_code == 0
    target = tmp_path / "textfile" / "memcgctl.prom"
    target.parent.mkdir()
    target.write_text("old content\n")
    before = target.stat().st_ino
    result = run_cli(fake_v1, "export", "--textfile", str(target))
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert value(samples(target.read_text()), "memcgctl_memory_limit_bytes", group="web") == 100 * MIB
    assert target.stat().st_ino != before  # a new file renamed over the old one, not rewritten in place
    assert [path.name for path in target.parent.iterdir()] == ["memcgctl.prom"]


def test_textfile_in_a_missing_directory_is_one_line_and_nothing_written(fake_v1, tmp_path):
    target = tmp_path / "missing" / "memcgctl.prom"
    result = run_process(fake_v1, "export", "--textfile", str(target))
    assert result.returncode == 66
    assert result.stderr.startswith("memcgctl: write metrics: no such file or directory (ENOENT) (")
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    assert not target.parent.exists()


# --- the daemon's counters -------------------------------------------------------


def write_daemon_counters(directory: Path, root: Path, pid: int, rows: list | None = None, started: float = 0,
                          root_identity: tuple | None = None) -> Path:
    """The counters file a daemon on ROOT would write (ROOT_IDENTITY: the
    device and inode it names, ROOT's own by default); its path."""
    rows = rows if rows is not None else [
        {"group": "web", "policy": "senpai", "reclaimed_bytes": 3 * MIB, "actions": 4, "backoffs": 1, "errors": 0},
        {"group": "batch", "policy": "limit-guard", "reclaimed_bytes": 0, "actions": 2, "backoffs": 0, "errors": 5},
    ]
    device, inode = root_identity or (root.stat().st_dev, root.stat().st_ino)
    counters = {"pid": pid, "started": started or time.time(), "root": str(root), "root_device": device,
                "root_inode": inode, "rows": rows}
    path = directory / counters_file_name(root)
    path.write_text(json.dumps(counters))
    return path


def test_the_working_set_of_a_group_with_a_backslash_shares_its_label_with_the_other_series(
        fake_v1, journal_directory):
    name = "system-a\\x2db.slice"  # as systemd names units: a backslash, shown doubled
    rows = [{"group": name, "policy": "pressure", "reclaimed_bytes": MIB, "actions": 1, "backoffs": 0,
             "errors": 0, "working_set_bytes": 250 * MIB, "working_set_updated": time.time()}]
    write_daemon_counters(journal_directory, fake_v1, os.getpid(), rows)
    found = samples(run_cli(fake_v1, "export").stdout)
    shown = "system-a\\\\x2db.slice"
    assert value(found, "memcgctl_daemon_reclaimed_bytes_total", group=shown, policy="pressure") == MIB
    assert value(found, "memcgctl_daemon_working_set_bytes", group=shown, policy="pressure") == 250 * MIB


def test_daemon_counters_of_a_running_daemon_are_exported(fake_v1, journal_directory):
    started = time.time()
    # This process stands for the daemon.
    write_daemon_counters(journal_directory, fake_v1, os.getpid(), started=started)
    found = samples(run_cli(fake_v1, "export").stdout)
    assert value(found, "memcgctl_daemon_up") == 1
    assert value(found, "memcgctl_daemon_start_time_seconds") == started
    assert value(found, "memcgctl_daemon_reclaimed_bytes_total", group="web", policy="senpai") == 3 * MIB
    assert value(found, "memcgctl_daemon_actions_total", group="web", policy="senpai") == 4
    assert value(found, "memcgctl_daemon_backoffs_total", group="web", policy="senpai") == 1
    assert value(found, "memcgctl_daemon_errors_total", group="batch", policy="limit-guard") == 5


def test_the_working_set_estimate_is_exported_with_its_age(fake_v1, journal_directory):
    rows = [{"group": "web", "policy": "pressure", "reclaimed_bytes": 3 * MIB, "actions": 4, "backoffs": 1,
             "errors": 0, "working_set_bytes": 250 * MIB, "working_set_updated": time.time() - 30},
            {"group": "batch", "policy": "watermark", "reclaimed_bytes": 0, "actions": 0, "backoffs": 0, "errors": 0}]
    write_daemon_counters(journal_directory, fake_v1, os.getpid(), rows)
    found = samples(run_cli(fake_v1, "export").stdout)
    assert value(found, "memcgctl_daemon_working_set_bytes", group="web", policy="pressure") == 250 * MIB
    assert 30 <= value(found, "memcgctl_daemon_working_set_age_seconds", group="web", policy="pressure") < 40
    # A policy without an estimate has none.
    assert value(found, "memcgctl_daemon_working_set_bytes", group="batch", policy="watermark") is None


def test_a_working_set_that_is_not_a_size_is_a_scrape_error(fake_v1, journal_directory):
    rows = [{"group": "web", "policy": "pressure", "reclaimed_bytes": 0, "actions": 0, "backoffs": 0, "errors": 0,
             "working_set_bytes": "lots", "working_set_updated": 0}]
    write_daemon_counters(journal_directory, fake_v1, os.getpid(), rows)
    found = samples(run_cli(fake_v1, "export").stdout)
    assert value(found, "memcgctl_daemon_up") is None and value(found, "memcgctl_scrape_errors") == 1


def test_daemon_counters_of_a_dead_daemon_are_not_exported(fake_v1, journal_directory):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # reaped: its pid names no process now
    write_daemon_counters(journal_directory, fake_v1, finished.pid)
    found = samples(run_cli(fake_v1, "export").stdout)
    assert value(found, "memcgctl_daemon_up") == 0
    assert not any(name.startswith("memcgctl_daemon_reclaimed") for name, _ in found)


def test_daemon_counters_whose_pid_now_names_a_newer_process_are_not_exported(fake_v1, journal_directory):
    # This process began after the "daemon" started an hour ago: its pid was reused.
    write_daemon_counters(journal_directory, fake_v1, os.getpid(), started=time.time() - 3600)
    found = samples(run_cli(fake_v1, "export").stdout)
    assert value(found, "memcgctl_daemon_up") == 0
    assert not any(name.startswith("memcgctl_daemon_actions") for name, _ in found)


def test_unreadable_daemon_counters_count_as_a_scrape_error(fake_v1, journal_directory):
    (journal_directory / counters_file_name(fake_v1)).write_text('{"pid": "x"')
    result = run_cli(fake_v1, "export")
    assert result.exit_code == 0, result.stderr
    found = samples(result.stdout)
    assert value(found, "memcgctl_daemon_up") is None  # not known: not said to be 0
    assert value(found, "memcgctl_scrape_errors") == 1


# --- serving ---------------------------------------------------------------------


@pytest.mark.parametrize("address", ["9101", "127.0.0.1:", "127.0.0.1:99999", ":9101", "localhost:http"])
def test_a_bad_listen_address_is_a_usage_error(fake_v1, address):
    result = run_cli(fake_v1, "export", "--listen", address)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"memcgctl: listen address {address!r}: ")


def test_listen_and_textfile_together_is_a_usage_error(fake_v1, tmp_path):
    result = run_cli(fake_v1, "export", "--listen", "127.0.0.1:9101", "--textfile", str(tmp_path / "m.prom"))
    assert result.exit_code == 2
    assert "--listen and --textfile cannot be used together" in result.stderr


def start_exporter(root: Path, port: int, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "memcgctl", "--root", str(root), "export", *args,
                             "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_a_port_in_use_is_one_line_on_stderr(fake_v1):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        exporter = start_exporter(fake_v1, taken.getsockname()[1])
        _, stderr = exporter.communicate(timeout=60)
    assert exporter.returncode == 74
    assert stderr.startswith("memcgctl: listen for scrapes: address already in use (EADDRINUSE) (127.0.0.1:")
    assert len(stderr.splitlines()) == 1


def test_served_metrics_follow_the_groups_and_sigterm_stops_cleanly(fake_v1):
    assert run_cli(fake_v1, "create", "web", "--limit", "100M").exit_code == 0
    port = free_port()
    exporter = start_exporter(fake_v1, port)
    try:
        text = wait_for(lambda: http_get(f"http://127.0.0.1:{port}/metrics"), 30, "the exporter")
        assert value(samples(text), "memcgctl_memory_limit_bytes", group="web") == 100 * MIB
        assert run_cli(fake_v1, "limit", "web", "200M").exit_code == 0
        assert run_cli(fake_v1, "create", "batch").exit_code == 0
        found = samples(http_get(f"http://127.0.0.1:{port}/metrics"))  # each scrape reads afresh
        assert value(found, "memcgctl_memory_limit_bytes", group="web") == 200 * MIB
        assert value(found, "memcgctl_memory_usage_bytes", group="batch") == 0
    finally:
        status = stop(exporter)
    assert status == 0
    assert exporter.stderr.read() == ""


# --- the real kernel, scraped by a real Prometheus ---------------------------------


PROMETHEUS_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: memcgctl
    static_configs:
      - targets: ["127.0.0.1:{exporter_port}"]
"""


def query_prometheus(port: int, expression: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    answer = json.loads(http_get(url))
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


@needs_prometheus
@needs_promtool
def test_prometheus_scrapes_real_groups_and_reads_back_the_kernel_figures(kernel_root, tmp_path):
    assert kernel_root.version == 1, "this host test is for cgroup v1"
    assert run_process(kernel_root.path, "create", "-p", "web", "batch/job1", "--limit", "300M").returncode == 0
    assert run_process(kernel_root.path, "limit", "web", "123M").returncode == 0
    kernel_root.fill_page_cache("batch/job1", tmp_path / "cache-file", 8)
    exporter_port, prometheus_port = free_port(), free_port()
    (tmp_path / "prometheus.yml").write_text(PROMETHEUS_CONFIG.format(exporter_port=exporter_port))
    exporter = start_exporter(kernel_root.path, exporter_port)
    prometheus = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{prometheus_port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        exposition = wait_for(lambda: http_get(f"http://127.0.0.1:{exporter_port}/metrics"), 30, "the exporter")
        checked = subprocess.run([PROMTOOL, "check", "metrics"], input=exposition, capture_output=True, text=True,
                                 timeout=60)
        assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")

        limit = wait_for(lambda: query_prometheus(prometheus_port, 'memcgctl_memory_limit_bytes{group="web"}'),
                         60, "Prometheus to scrape the exporter")
        assert limit[0]["metric"]["job"] == "memcgctl"
        assert int(float(limit[0]["value"][1])) == int(kernel_root.read("web", "memory.limit_in_bytes"))
        assert int(float(limit[0]["value"][1])) == 123 * MIB
        cache = query_prometheus(prometheus_port, 'memcgctl_memory_stat_cache_bytes{group="batch"}')
        kernel_cache = next(int(line.split()[1]) for line in kernel_root.read("batch", "memory.stat").splitlines()
                            if line.startswith("total_cache "))  # batch/job1's page cache, counted in batch
        assert int(float(cache[0]["value"][1])) == kernel_cache >= 4 * MIB
        up = query_prometheus(prometheus_port, 'up{job="memcgctl"}')
        assert up[0]["value"][1] == "1"
    finally:
        prometheus_status = stop(prometheus)
        exporter_status = stop(exporter)
    assert exporter_status == 0
    assert prometheus_status == 0, prometheus.stderr.read()[-2000:]


def test_a_full_standard_output_is_one_error_line(fake_v1):
    assert run_cli(fake_v1, "create", "web").exit_code == 0
    with open("/dev/full", "w") as full:
        completed = subprocess.run([sys.executable, "-m", "memcgctl", "--root", str(fake_v1), "export"],
                                   stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert completed.returncode == 74
    assert completed.stderr == "memcgctl: write metrics: no space left on device (ENOSPC) (standard output)\n"


def test_a_reader_that_went_away_is_quiet_exit_141_as_for_every_command(fake_v1):
    """`export | head -0`: not click's own exit 1 for EPIPE (undocumented)."""
    assert run_cli(fake_v1, "create", "web", "--limit", "1G").exit_code == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader exited before memcgctl wrote
    try:
        completed = subprocess.run([sys.executable, "-m", "memcgctl", "--root", str(fake_v1), "export"],
                                   stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert (completed.returncode, completed.stderr) == (141, "")
    assert (fake_v1 / "web" / "memory.limit_in_bytes").read_text().strip() == str(1 << 30)


def kernel_counters(kernel_root, group: str, name: str) -> dict:
    return {line.split()[0]: int(line.split()[1]) for line in kernel_root.read(group, name).splitlines()}


def test_real_group_figures_match_the_kernel_files(kernel_root, tmp_path):
    """On the real kernel (v1 here, v2 in the VM): what export says is what
    the kernel files hold."""
    assert run_process(kernel_root.path, "create", "web", "--limit", "300M").returncode == 0
    kernel_root.fill_page_cache("web", tmp_path / "cache-file", 8)
    completed = run_process(kernel_root.path, "export", "web")
    assert completed.returncode == 0, completed.stderr
    found = samples(completed.stdout)
    assert value(found, "memcgctl_memory_limit_bytes", group="web") == 300 * MIB
    stat = kernel_counters(kernel_root, "web", "memory.stat")
    if kernel_root.version == 1:
        assert value(found, "memcgctl_memory_stat_cache_bytes", group="web") == stat["total_cache"] >= 4 * MIB
        assert value(found, "memcgctl_memory_failcnt_total", group="web") == int(kernel_root.read("web",
                                                                                                  "memory.failcnt"))
        assert value(found, "memcgctl_memory_peak_bytes", group="web") >= 8 * MIB
    else:
        assert value(found, "memcgctl_memory_stat_file_bytes", group="web") == stat["file"] >= 4 * MIB
        for key, count in kernel_counters(kernel_root, "web", "memory.events").items():
            assert value(found, f"memcgctl_memory_events_{key}_total", group="web") == count, key
        pressure = {line.split()[0]: int(line.rsplit("total=", 1)[1])
                    for line in kernel_root.read("web", "memory.pressure").splitlines()}
        assert value(found, "memcgctl_memory_pressure_some_seconds_total", group="web") == pressure["some"] / 1e6
        assert value(found, "memcgctl_memory_pressure_full_seconds_total", group="web") == pressure["full"] / 1e6


def test_an_empty_textfile_is_exit_2_not_a_scrape_on_stdout(fake_v1, tmp_path):
    """`--textfile "$FILE"` with FILE unset in a cron line: an error, not the
    metrics printed (and mailed) with no file written."""
    assert run_cli(fake_v1, "create", "web").exit_code == 0
    result = run_cli(fake_v1, "export", "--textfile", "")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "memcgctl: export --textfile: empty (is the variable that names it unset?)\n"
    assert not any(path.suffix == ".prom" for path in tmp_path.rglob("*"))


def test_v1_oom_kills_and_processes_are_exported(fake_v1):
    assert run_cli(fake_v1, "create", "web").exit_code == 0
    (fake_v1 / "web" / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    (fake_v1 / "web" / "cgroup.procs").write_text("101\n102\n")
    found = samples(run_cli(fake_v1, "export").stdout)
    assert value(found, "memcgctl_memory_events_oom_kill_total", group="web") == 3
    assert value(found, "memcgctl_processes", group="web") == 2
    assert (fake_v1 / "web" / "memory.oom_control").read_text().endswith("oom_kill 3\n")  # read, not reset


def test_v2_processes_are_exported(fake_v2):
    assert run_cli(fake_v2, "create", "web").exit_code == 0
    (fake_v2 / "web" / "cgroup.procs").write_text("7\n")
    found = samples(run_cli(fake_v2, "export").stdout)
    assert value(found, "memcgctl_processes", group="web") == 1


def exported_groups(root: Path, *args: str) -> list[str]:
    result = run_cli(root, "export", *args)
    assert result.exit_code == 0, result.stderr
    found = samples(result.stdout)
    return sorted(dict(labels)["group"] for name, labels in found if name == "memcgctl_memory_usage_bytes")


@pytest.fixture
def slices(fake_v1) -> Path:
    for group in ("system.slice/cron.service", "system.slice/ssh.service/extra", "user.slice/user-1000.slice",
                  "web"):
        assert run_cli(fake_v1, "create", "-p", group).exit_code == 0
    return fake_v1


def test_depth_counts_levels_below_the_root_or_below_each_group(slices):
    assert exported_groups(slices, "--depth", "1") == ["system.slice", "user.slice", "web"]
    assert exported_groups(slices, "--depth", "2") == [
        "system.slice", "system.slice/cron.service", "system.slice/ssh.service", "user.slice",
        "user.slice/user-1000.slice", "web"]
    # Below a GROUP: the group is level 0, and --depth walks below it without -r.
    assert exported_groups(slices, "--depth", "1", "system.slice") == [
        "system.slice", "system.slice/cron.service", "system.slice/ssh.service"]
    assert exported_groups(slices, "--depth", "0", "system.slice") == ["system.slice"]
    found = samples(run_cli(slices, "export", "--depth", "1").stdout)
    assert value(found, "memcgctl_scrape_groups") == 3  # what was read, not what was walked


def test_include_and_exclude_globs_match_the_name_under_the_root(slices):
    assert exported_groups(slices, "--include", "*.service") == ["system.slice/cron.service",
                                                                 "system.slice/ssh.service"]
    assert exported_groups(slices, "--include", "system.slice/*", "--exclude", "*/ssh.service*") == [
        "system.slice/cron.service"]
    assert exported_groups(slices, "--exclude", "user.slice*", "--exclude", "system.slice*") == ["web"]
    assert exported_groups(slices, "--include", "web", "--include", "user.slice") == ["user.slice", "web"]
    assert exported_groups(slices, "--include", "nothing*") == []


def test_an_empty_glob_is_a_usage_error(slices):
    result = run_cli(slices, "export", "--exclude", "")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == ("memcgctl: export --include/--exclude: an empty glob "
                             "(is the variable that names it unset?)\n")


def test_a_real_oom_kill_is_exported(kernel_root, tmp_path):
    """A process that outgrows its group's limit is OOM-killed by the kernel
    (no swap on this host; none allowed in the VM); export counts it as the
    kernel's file does: v1 memory.oom_control, v2 memory.events."""
    assert run_process(kernel_root.path, "create", "tight", "--limit", "20M").returncode == 0
    if kernel_root.version == 2:
        assert run_process(kernel_root.path, "limit", "tight", "--swap", "0").returncode == 0
    killed = kernel_root.start("tight", sys.executable, "-c", "bytearray(200 * 1024 * 1024)")
    assert killed.wait(timeout=60) == -signal.SIGKILL
    holder = kernel_root.start("tight", "sleep", "600")
    wait_for(lambda: kernel_root.read("tight", "cgroup.procs").split(), 10, "a process in tight")
    completed = run_process(kernel_root.path, "export", "tight")
    assert completed.returncode == 0, completed.stderr
    found = samples(completed.stdout)
    events = "memory.oom_control" if kernel_root.version == 1 else "memory.events"
    oom_kills = kernel_counters(kernel_root, "tight", events)["oom_kill"]
    assert oom_kills >= 1
    assert value(found, "memcgctl_memory_events_oom_kill_total", group="tight") == oom_kills
    assert value(found, "memcgctl_processes", group="tight") == 1 == len(
        kernel_root.read("tight", "cgroup.procs").split())
    assert holder.poll() is None
