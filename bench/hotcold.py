"""A workload with a hot and a cold part, and the experiment that runs it with
and without the pressure policy (cgroup v2, swap on: the VM).

The workload (`hotcold.py workload ...`) joins its cgroup, then holds ANON MiB
of anonymous memory and FILE MiB of page cache (a file on /tmp it writes and
reads in full); HOT (a quarter by default) of each is its working set, which
it sweeps over and over: it copies the hot anonymous bytes into a scratch
buffer and preads the hot part of the file.  The cold rest is never touched
again.  It prints `ready` once set up, then one line per second,
`progress <monotonic seconds> <bytes swept so far>`.

The experiment (run_experiment, in the VM) starts two such workloads at once,
each in a group of its own under one parent group, lets the daemon (or
nothing) manage one of them, and samples both every second: memory.current,
PSI some total, bytes swept.  Running both at the same time on the same guest
keeps a busy host from favouring either: the unmanaged twin is the baseline.

Standard library only, plus memcgctl for the daemon side.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

MIB = 1 << 20
PAGE = 4096
PROJECT = Path(__file__).resolve().parent.parent
CGROUP2 = Path("/sys/fs/cgroup")
REPORT_EVERY = 0.25  # seconds
SWAP_FILE = Path("/tmp/hotcold.swap")  # the guest's ext4 /tmp
DAEMON_CPU_PERCENT = 50


# --- the workload ----------------------------------------------------------------------------------------------


def fill_anonymous(size: int, compressible: bool = False) -> bytearray:
    """SIZE bytes of anonymous memory, every page written with content that no
    other page repeats nearby (a same-filled page would cost no swap I/O).
    COMPRESSIBLE: a quarter of each page random, the rest zeros (about 4:1, as
    zswap sees real heaps; random pages are incompressible, and zswap rejects them)."""
    memory = bytearray(size)
    block = bytearray(os.urandom(MIB))
    if compressible:
        for page in range(0, MIB, PAGE):
            block[page + PAGE // 4:page + PAGE] = bytes(PAGE - PAGE // 4)
    for offset in range(0, size, MIB):
        memory[offset:offset + MIB] = block[: min(MIB, size - offset)]
    return memory


def fill_file(path: Path, size: int) -> int:
    """Write SIZE bytes to PATH, sync them, read them back: clean page cache
    charged to our group.  Returns an fd open for reading."""
    block = os.urandom(MIB)
    with open(path, "wb") as file:
        for _ in range(size // MIB):
            file.write(block)
        file.flush()
        os.fsync(file.fileno())
    fd = os.open(path, os.O_RDONLY)
    scratch = bytearray(MIB)
    for offset in range(0, size, MIB):
        os.preadv(fd, [scratch], offset)
    return fd


def workload(cgroup: Path, anon_mib: int, file_mib: int, hot: float, path: Path, seconds: float,
             cpu: int | None, hot_anon_mib: int | None = None, hot_file_mib: int | None = None,
             move_at: float | None = None, compressible: bool = False) -> None:
    """HOT_ANON_MIB / HOT_FILE_MIB, when given, size the hot set instead of
    the HOT fraction.  MOVE_AT: seconds after `ready` at which the hot set
    moves to the pages right after it (cold until then): a second phase."""
    (cgroup / "cgroup.procs").write_text(str(os.getpid()))
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    anon = fill_anonymous(anon_mib * MIB, compressible)
    fd = fill_file(path, file_mib * MIB)
    hot_anon = (hot_anon_mib * MIB if hot_anon_mib is not None else int(anon_mib * MIB * hot)) // PAGE * PAGE
    hot_file = (hot_file_mib * MIB if hot_file_mib is not None else int(file_mib * MIB * hot)) // MIB * MIB
    view = memoryview(anon)
    scratch = bytearray(MIB)
    signalled = []  # SIGUSR1: move now (run_scenario sends it --move-at seconds after the controller's start)
    signal.signal(signal.SIGUSR1, lambda *_: signalled.append(True))
    print("ready", flush=True)
    swept, started, next_report = 0, time.monotonic(), 0.0
    anon_start = file_start = 0
    while time.monotonic() - started < seconds:
        if anon_start == 0 and (signalled or move_at is not None and time.monotonic() - started >= move_at):
            anon_start = min(hot_anon, anon_mib * MIB - hot_anon)
            file_start = min(hot_file, file_mib * MIB - hot_file)
            print("moved", flush=True)
        for offset in range(anon_start, anon_start + hot_anon, MIB):
            chunk = view[offset:min(offset + MIB, anon_start + hot_anon)]
            scratch[: len(chunk)] = chunk
            swept += len(chunk)
            next_report = report(swept, next_report)
        for offset in range(file_start, file_start + hot_file, MIB):
            os.preadv(fd, [scratch], offset)
            swept += MIB
            next_report = report(swept, next_report)
    print(f"progress {time.monotonic():.3f} {swept}", flush=True)


def report(swept: int, due: float) -> float:
    """Print the progress when it is DUE; the next time it is due."""
    now = time.monotonic()
    if now < due:
        return due
    print(f"progress {now:.3f} {swept}", flush=True)
    return now + REPORT_EVERY


# --- the experiment (cgroup v2, root) ----------------------------------------------------------------------------


def read_current(group: Path) -> int:
    return int((group / "memory.current").read_text())


def read_some_total_us(group: Path) -> int:
    first = (group / "memory.pressure").read_text().splitlines()[0]
    return int(first.rsplit("total=", 1)[1])


def read_refaults(group: Path) -> int:
    stat = dict(line.split() for line in (group / "memory.stat").read_text().splitlines())
    return int(stat.get("workingset_refault_anon", 0)) + int(stat.get("workingset_refault_file", 0))


def read_zswap_current(group: Path) -> int | None:
    """memory.zswap.current (6.x with zswap built): the group's compressed
    pool in bytes; None where the kernel has no such file."""
    try:
        return int((group / "memory.zswap.current").read_text())
    except FileNotFoundError:
        return None


def read_lru_gen(group: Path) -> int | None:
    """The multi-gen LRU's estimate of GROUP (memcgctl.kernel.lru_gen: the
    pages of its generations born in the last 30 s); None where the kernel
    cannot say (6.1: built but off; no debugfs)."""
    from memcgctl.kernel.lru_gen import estimate_of

    found = estimate_of(group)
    return None if found is None else found.size


def zswap_enabled() -> bool:
    """Whether zswap is on in this kernel (zswap.enabled=1 on its command line)."""
    try:
        return Path("/sys/module/zswap/parameters/enabled").read_text().strip() in ("Y", "1")
    except OSError:
        return False


def swap_on(path: Path, mebibytes: int, swappiness: int | None = None) -> None:
    """A swap file on PATH (ext4 /tmp in the VM); the host's /sbin tools.
    SWAPPINESS, if given, becomes vm.swappiness (the guest's, system-wide)."""
    if swappiness is not None:
        Path("/proc/sys/vm/swappiness").write_text(str(swappiness))
    if path.exists():
        return
    subprocess.run(["fallocate", "-l", f"{mebibytes}M", str(path)], check=True)
    path.chmod(0o600)
    subprocess.run(["/sbin/mkswap", str(path)], check=True, capture_output=True)
    subprocess.run(["/sbin/swapon", str(path)], check=True)


class Workload:
    """A workload process in GROUP, and the progress it reported."""

    def __init__(self, group: Path, anon_mib: int, file_mib: int, hot: float, seconds: float, cpu: int | None,
                 extra: tuple = ()):
        self.group = group
        group.mkdir()
        self.path = Path(f"/tmp/hotcold-{group.name}-{os.getpid()}")
        argv = [sys.executable, str(Path(__file__).resolve()), "workload", "--cgroup", str(group),
                "--anon", str(anon_mib), "--file", str(file_mib), "--hot", str(hot),
                "--path", str(self.path), "--seconds", str(seconds), *extra]
        if cpu is not None:
            argv += ["--cpu", str(cpu)]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.progress: list[tuple[float, int]] = []
        self.moved: float | None = None  # monotonic time the hot set moved
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            if line.startswith("ready"):
                self.ready.set()
            elif line.startswith("moved"):
                self.moved = time.monotonic()
            elif line.startswith("progress"):
                _, when, swept = line.split()
                self.progress.append((float(when), int(swept)))

    def swept_between(self, start: float, end: float) -> float:
        """Bytes swept from START to END (monotonic), interpolated."""
        return _interpolate(self.progress, end) - _interpolate(self.progress, start)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def _interpolate(points: list[tuple[float, int]], when: float) -> float:
    before = [p for p in points if p[0] <= when]
    after = [p for p in points if p[0] > when]
    if not before:
        return float(after[0][1]) if after else 0.0
    if not after:
        return float(before[-1][1])
    (t0, v0), (t1, v1) = before[-1], after[0]
    return v0 + (v1 - v0) * (when - t0) / (t1 - t0)


def run_experiment(parent: Path, seconds: float, anon_mib: int = 192, file_mib: int = 192, hot: float = 0.25,
                   target: float = 0.1, interval: float = 1.0, settle: float = 20.0, daemon: bool = True) -> dict:
    """Two twin workloads in new children of PARENT (a v2 group with +memory
    in its subtree_control), the daemon on one of them for SECONDS; the figures.
    Needs root and swap (swap_on)."""
    run_for = settle + seconds + 60
    # Both twins share one CPU (each gets half of it, whatever the host
    # does to that vCPU), the daemon and the reclaim it does run on another:
    # what the managed twin loses is what memory reclaim costs it, and the
    # daemon's own CPU time is measured apart.
    cpus = sorted(os.sched_getaffinity(0))
    twins_cpu, daemon_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    workloads = {}
    driver = None
    try:
        for name in ("control", "managed"):
            workloads[name] = Workload(parent / name, anon_mib, file_mib, hot, run_for, twins_cpu)
        for each in workloads.values():
            if not each.ready.wait(300):
                raise RuntimeError(f"workload {each.group.name} did not get ready")
        time.sleep(settle / 2)  # both sweeping: the hot pages become active
        calibration = time.monotonic()
        time.sleep(settle / 2)
        before = {name: each.swept_between(calibration, time.monotonic()) for name, each in workloads.items()}
        if daemon:
            driver = start_daemon(parent, "managed", target, interval, daemon_cpu)
        figures = sample(workloads, seconds, driver)
        # The twins need not run at the same speed (which pages, which THPs):
        # their ratio before the daemon started is the one to keep.
        figures["throughput_ratio_before"] = before["managed"] / before["control"]
        figures["throughput_loss"] = 1 - figures["throughput_ratio"] / figures["throughput_ratio_before"]
        return figures
    finally:
        if driver is not None and driver.poll() is None:
            driver.send_signal(signal.SIGTERM)
            driver.wait(60)
        for each in workloads.values():
            each.stop()
        for each in workloads.values():
            remove_group(each.group)


def remove_group(group: Path) -> None:
    # Killed processes leave the group only once reaped (Workload.stop waits).
    deadline = time.monotonic() + 10
    while (group / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    group.rmdir()


def own_parent_group() -> Path:
    """A fresh child of this process's own cgroup v2 group, +memory for its children."""
    own = next(line.split("::", 1)[1] for line in Path("/proc/self/cgroup").read_text().splitlines()
               if line.startswith("0::"))
    parent = CGROUP2 / own.lstrip("/") / f"memcgctl-hotcold-{os.getpid()}"
    parent.mkdir()
    (parent / "cgroup.subtree_control").write_text("+memory")
    return parent


def start_daemon(parent: Path, name: str, target: float, interval: float, cpu: int | None,
                 cpu_percent: float = DAEMON_CPU_PERCENT) -> subprocess.Popen:
    config = Path(f"/tmp/hotcold-{os.getpid()}.toml")
    # Under TCG the guest's CPU is many times slower than the host's (Python
    # about 15 times, tests/vm/README.md), and so is the kernel's reclaim the
    # daemon does in its writes: the daemon's
    # CPU budget (max_cpu_percent, default 10% of a core) would pause it for
    # seconds after each step.  Its CPU time is measured and reported instead.
    config.write_text(f'interval = {interval}\nmax_cpu_percent = {cpu_percent}\n\n[[group]]\n'
                      f'match = "{name}"\npolicy = "pressure"\ntarget = {target}\n')
    argv = [sys.executable, "-m", "memcgctl", "--root", str(parent), "-v", "daemon", "--config", str(config)]
    return subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, start_new_session=True, cwd="/",
                            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}) if cpu is not None else None)


def sample(workloads: dict, seconds: float, driver) -> dict:
    started = time.monotonic()
    groups = {name: each.group for name, each in workloads.items()}
    first_stall = {name: read_some_total_us(group) for name, group in groups.items()}
    series = []
    while time.monotonic() - started < seconds:
        time.sleep(1.0)
        now = time.monotonic()
        series.append({"t": round(now - started, 1),
                       **{name: read_current(group) for name, group in groups.items()},
                       "managed_stall_us": read_some_total_us(groups["managed"]) - first_stall["managed"],
                       "managed_refaults": read_refaults(groups["managed"]),
                       **{f"{name}_swept": int(workloads[name].swept_between(started, now)) for name in groups}})
    ended = time.monotonic()
    figures = {"seconds": round(ended - started, 1), "series": series}
    for name, group in groups.items():
        stalled_us = read_some_total_us(group) - first_stall[name]
        stat = dict(line.split() for line in (group / "memory.stat").read_text().splitlines())
        figures[name] = {
            "stat_mib": {key: int(stat[key]) >> 20 for key in ("anon", "file", "kernel", "swapcached") if key in stat},
            "swap_current": int((group / "memory.swap.current").read_text()),
            "memory_high": (group / "memory.high").read_text().strip(),
            "memory_max": (group / "memory.max").read_text().strip(),
            "memory_current_start": series[0][name] if series else read_current(group),
            "memory_current_end": read_current(group),
            "throughput_bytes_per_s": workloads[name].swept_between(started, ended) / (ended - started),
            "psi_some_percent": stalled_us / ((ended - started) * 1e6) * 100,
        }
    control, managed = figures["control"], figures["managed"]
    figures["memory_saved"] = 1 - managed["memory_current_end"] / control["memory_current_end"]
    figures["throughput_ratio"] = managed["throughput_bytes_per_s"] / control["throughput_bytes_per_s"]
    if driver is not None:
        figures["daemon_cpu_seconds"] = cpu_seconds(driver.pid)
        driver.send_signal(signal.SIGTERM)
        _, log = driver.communicate(timeout=60)
        figures["daemon_exit"] = driver.returncode
        figures["daemon_log"] = log.splitlines()
        figures["daemon_actions"] = len(log.splitlines())
    return figures


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process PID so far (the kernel's reclaim done
    in its context, memory.reclaim writes, included)."""
    return sum(cpu_times(pid))


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of process PID so far: Python's own work,
    and the kernel's (its reclaim in the writes included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / os.sysconf("SC_CLK_TCK"), int(fields[12]) / os.sysconf("SC_CLK_TCK")


# --- one workload, one controller (the side-by-side table: bench/daemon_pressure.py --table) -------------------

# The workload: 1100 MiB, of which 250 MiB hot (150 anonymous touched
# continuously, 100 of page cache read continuously), the rest cold (450
# anonymous written once, 400 of page cache read once).
SCENARIO_WORKLOAD = {"anon": 600, "file": 500, "hot_anon": 150, "hot_file": 100}
CONTROLLERS = ("memcgctl", "loop", "senpai", "none")
WINDOW = (30.0, 90.0)  # seconds after the controller's start: the mean saving is taken over it


def trivial_loop(group: Path, target: float, share: float = 0.02) -> None:
    """The simplest thing that could work: once a second, if the group stalled
    less than TARGET percent of that second (PSI some), reclaim SHARE of
    memory.current."""
    last = read_some_total_us(group)
    print("ready", file=sys.stderr, flush=True)
    while True:
        time.sleep(1.0)
        total = read_some_total_us(group)
        if total - last < target / 100 * 1e6:
            with contextlib.suppress(OSError):  # EAGAIN: less than asked
                (group / "memory.reclaim").write_text(str(int(read_current(group) * share)))
        last = total


def senpai_like(group: Path, target: float, interval: float = 1.0, max_probe: float = 0.01,
                max_backoff: float = 0.1, min_size: int = 100 * MIB) -> None:
    """Senpai's published algorithm (facebookincubator/senpai, its README),
    reimplemented here, not its code: memory.high starts at memory.current;
    each second the PSI some stall is added to an integral; above the stall
    target (TARGET percent of INTERVAL) memory.high goes up by up to
    MAX_BACKOFF of itself, in proportion to the excess; else every INTERVAL it
    probes down by up to MAX_PROBE, less as the integral nears the target."""
    high_file = group / "memory.high"
    limit = read_current(group)
    high_file.write_text(str(limit))
    budget = target / 100 * interval * 1e6
    last, integral, since_probe = read_some_total_us(group), 0.0, 0.0
    print("ready", file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(1.0)
            total = read_some_total_us(group)
            integral += total - last
            last = total
            since_probe += 1.0
            if integral > budget:
                limit += int(limit * min(max_backoff, max_backoff * (integral / budget - 1)))
                integral, since_probe = 0.0, 0.0
            elif since_probe >= interval:
                limit -= int(limit * max_probe * (1 - integral / budget))
                integral, since_probe = 0.0, 0.0
            else:
                continue
            limit = max(min_size, limit)
            with contextlib.suppress(OSError):
                high_file.write_text(str(limit))
    finally:
        high_file.write_text("max")


def start_controller(kind: str, group: Path, target: float, interval: float, cpu: int | None):
    if kind == "none":
        return None
    if kind == "memcgctl":
        # A whole vCPU, as the loop and senpai have: under TCG the kernel's
        # swap-out charged to the daemon's writes costs tens of ms a MiB, and
        # at half a core the budget, not pressure, would set the pace.
        return start_daemon(group.parent, group.name, target, interval, cpu, cpu_percent=100)
    argv = [sys.executable, str(Path(__file__).resolve()), kind, "--cgroup", str(group), "--target", str(target)]
    return subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, start_new_session=True, cwd="/",
                            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}) if cpu is not None else None)


def guest_busy_seconds() -> float:
    """CPU time the whole guest spent not idle (every vCPU), from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_until_working(driver, timeout: float = 180.0) -> list[str]:
    """Wait until the controller DRIVER does its work (the loop and senpai say
    `ready`, the daemon logs its first pass with -v): under TCG starting
    Python and its imports takes seconds, and the window is counted from
    there.  The lines read meanwhile."""
    if driver is None:
        return []
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = driver.stderr.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("ready") or "pass: read" in line:
            break
    return lines


def read_stat(group: Path) -> dict:
    lines = (group / "memory.stat").read_text().splitlines()
    return {key: int(value) for key, value in (line.split() for line in lines)}


def run_scenario(parent: Path, kind: str, seconds: float = 90.0, settle: float = 20.0, target: float = 0.1,
                 interval: float = 1.0, move_at: float | None = None) -> dict:
    """One workload (SCENARIO_WORKLOAD) in a new child of PARENT, controller
    KIND on it for SECONDS; the figures, with a series a second.  MOVE_AT:
    seconds after the controller's start at which the hot set moves."""
    cpus = sorted(os.sched_getaffinity(0))
    work_cpu, controller_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    sizes = SCENARIO_WORKLOAD
    extra = ("--hot-anon", str(sizes["hot_anon"]), "--hot-file", str(sizes["hot_file"]))
    if zswap_enabled():  # data zswap can compress, as in TMO's runs
        extra += ("--compressible",)
    group = parent / "work"
    each = driver = None
    try:
        each = Workload(group, sizes["anon"], sizes["file"], 0.25, settle + seconds + 120, work_cpu, extra)
        if not each.ready.wait(600):
            raise RuntimeError("the workload did not get ready")
        ready_at = time.monotonic()
        time.sleep(settle / 2)
        calibration = time.monotonic()
        before_usage = []
        while time.monotonic() - calibration < settle / 2:
            time.sleep(1.0)
            before_usage.append(read_current(group))
        rate_before = each.swept_between(calibration, time.monotonic()) / (time.monotonic() - calibration)
        driver = start_controller(kind, group, target, interval, controller_cpu)
        launched = time.monotonic()
        log = wait_until_working(driver)
        if driver is not None:  # drain its log all along: a full pipe would stop it
            threading.Thread(target=lambda: log.extend(line.rstrip("\n") for line in driver.stderr),
                             daemon=True).start()
        started = time.monotonic()
        # CPU spent starting (Python and its imports: seconds under TCG) apart from the work.
        cpu_at_start = cpu_times(driver.pid) if driver is not None else None
        stall0, stat0, busy0 = read_some_total_us(group), read_stat(group), guest_busy_seconds()
        series, move_sent = [], False
        while time.monotonic() - started < seconds:
            time.sleep(1.0)
            now = time.monotonic()
            if move_at is not None and now - started >= move_at and not move_sent:
                each.process.send_signal(signal.SIGUSR1)  # counted from the controller's start, not the workload's
                move_sent = True
            stat = read_stat(group)
            series.append({"t": round(now - started, 1), "current": read_current(group),
                           "stall_us": read_some_total_us(group) - stall0,
                           **{f"refault_{kind}": stat.get(f"workingset_refault_{kind}", 0)
                              - stat0.get(f"workingset_refault_{kind}", 0) for kind in ("anon", "file")},
                           "anon": stat.get("anon", 0), "file": stat.get("file", 0),
                           "swapcached": stat.get("swapcached", 0), "zswap_current": read_zswap_current(group),
                           "lru_gen": read_lru_gen(group),
                           "estimate": daemon_figures(parent, group).get("working_set_bytes") if kind == "memcgctl"
                           else None,
                           "swept": int(each.swept_between(started, now))})
        ended = time.monotonic()
        busy = guest_busy_seconds() - busy0
        figures = {"controller": kind, "guest_busy_seconds": busy,
                   "start_seconds": round(started - launched, 1), "kernel": os.uname().release,
                   "seconds": round(ended - started, 1),
                   "ready_after": round(ready_at - started, 1), "series": series,
                   "moved_after": None if each.moved is None else round(each.moved - started, 1),
                   "hot_set": (sizes["hot_anon"] + sizes["hot_file"]) * MIB,
                   "usage_before": sum(before_usage) / len(before_usage),
                   "throughput_before": rate_before}
        if driver is not None:
            figures["cpu_seconds"] = cpu_seconds(driver.pid)
            user, system = cpu_times(driver.pid)
            figures["cpu_start_seconds"] = sum(cpu_at_start)
            figures["cpu_user_seconds"] = user - cpu_at_start[0]
            figures["cpu_system_seconds"] = system - cpu_at_start[1]
            figures.update(daemon_figures(parent, group))
            driver.send_signal(signal.SIGTERM)
            try:
                driver.wait(60)
                figures["controller_exit"] = driver.returncode
            except subprocess.TimeoutExpired:
                os.killpg(driver.pid, signal.SIGKILL)
                driver.wait()
                figures["controller_exit"] = "killed: still running 60 s after SIGTERM"
            time.sleep(0.5)  # the last lines
            figures["controller_log"] = log[-300:]
        window = [row for row in series if WINDOW[0] <= row["t"] <= WINDOW[1]]
        figures["mean_in_window"] = sum(row["current"] for row in window) / max(1, len(window))
        figures["memory_saved"] = 1 - figures["mean_in_window"] / figures["usage_before"]
        figures["current_end"] = series[-1]["current"]
        figures["stall_ms_per_min"] = series[-1]["stall_us"] / 1000 / ((ended - started) / 60)
        span = [row for row in series if row["t"] >= WINDOW[0]]
        if len(span) >= 2:
            rate = (span[-1]["swept"] - span[0]["swept"]) / (span[-1]["t"] - span[0]["t"])
            figures["throughput_ratio"] = rate / rate_before
        shrunk = figures["usage_before"] - min(row["current"] for row in series)
        figures["shrunk_mib"] = shrunk / MIB
        if "cpu_seconds" in figures and shrunk > 0:
            figures["cpu_ms_per_mib"] = figures["cpu_seconds"] * 1000 / (shrunk / MIB)
            # After start-up: what each MiB cost the controller's Python (user) and the kernel (system).
            working = figures["cpu_user_seconds"] + figures["cpu_system_seconds"]
            figures["cpu_ms_per_mib_working"] = working * 1000 / (shrunk / MIB)
        figures["swap_current"] = int((group / "memory.swap.current").read_text())
        figures["zswap_current"] = read_zswap_current(group)
        figures["zswap_enabled"] = zswap_enabled()
        return figures
    finally:
        if driver is not None and driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
        if each is not None:
            each.stop()
            remove_group(group)


def daemon_figures(parent: Path, group: Path) -> dict:
    """The working-set estimate from memcgctl's counters file, where it has one."""
    from memcgctl.daemon.counters import counters_file_name

    journal = Path(os.environ.get("MEMCGCTL_JOURNAL_DIR") or "/run/memcgctl")
    path = journal / counters_file_name(Path(os.path.realpath(parent)))
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    for row in document.get("rows", []):
        if row.get("group") == group.name and "working_set_bytes" in row:
            return {"working_set_bytes": row["working_set_bytes"],
                    "working_set_age": round(time.time() - row["working_set_updated"], 1)}
    return {}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    work = sub.add_parser("workload")
    work.add_argument("--cgroup", type=Path, required=True)
    work.add_argument("--path", type=Path, required=True)
    work.add_argument("--cpu", type=int)
    experiment = sub.add_parser("experiment")
    for each in (work, experiment):
        each.add_argument("--anon", type=int, default=192)
        each.add_argument("--file", type=int, default=192)
        each.add_argument("--hot", type=float, default=0.25)
        each.add_argument("--seconds", type=float, default=90)
    experiment.add_argument("--target", type=float, default=0.1)
    experiment.add_argument("--interval", type=float, default=1.0)
    experiment.add_argument("--settle", type=float, default=20.0)
    experiment.add_argument("--no-daemon", action="store_true")
    experiment.add_argument("--swappiness", type=int, help="set vm.swappiness first (the kernel's default is 60)")
    work.add_argument("--hot-anon", type=int, help="MiB of hot anonymous memory (instead of --hot)")
    work.add_argument("--hot-file", type=int, help="MiB of hot page cache (instead of --hot)")
    work.add_argument("--move-at", type=float, help="seconds after ready when the hot set moves")
    work.add_argument("--compressible", action="store_true", help="anonymous pages zswap can compress (about 4:1)")
    scenario = sub.add_parser("scenario")
    scenario.add_argument("--controller", choices=CONTROLLERS, required=True)
    scenario.add_argument("--seconds", type=float, default=90)
    scenario.add_argument("--settle", type=float, default=20)
    scenario.add_argument("--target", type=float, default=0.1)
    scenario.add_argument("--move-at", type=float, help="seconds after the controller's start when the hot set moves")
    scenario.add_argument("--swap-mib", type=int, default=1024)
    scenario.add_argument("--swappiness", type=int, help="set vm.swappiness first (the kernel's default is 60)")
    for name in ("loop", "senpai"):
        controller = sub.add_parser(name)
        controller.add_argument("--cgroup", type=Path, required=True)
        controller.add_argument("--target", type=float, default=0.1)
    args = parser.parse_args()
    if args.command == "workload":
        workload(args.cgroup, args.anon, args.file, args.hot, args.path, args.seconds, args.cpu,
                 args.hot_anon, args.hot_file, args.move_at, args.compressible)
    elif args.command in ("loop", "senpai"):
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # senpai_like puts memory.high back on the way out
        (trivial_loop if args.command == "loop" else senpai_like)(args.cgroup, args.target)
    elif args.command == "scenario":
        swap_on(SWAP_FILE, args.swap_mib, args.swappiness)
        parent = own_parent_group()
        try:
            figures = run_scenario(parent, args.controller, args.seconds, args.settle, args.target,
                                   move_at=args.move_at)
        finally:
            parent.rmdir()
        figures["swappiness"] = int(Path("/proc/sys/vm/swappiness").read_text())
        print(json.dumps(figures))
    else:
        swap_on(SWAP_FILE, 2 * (args.anon + args.file), args.swappiness)
        parent = own_parent_group()
        try:
            figures = run_experiment(parent, args.seconds, args.anon, args.file, args.hot, args.target,
                                     args.interval, args.settle, daemon=not args.no_daemon)
        finally:
            parent.rmdir()
        figures["swappiness"] = int(Path("/proc/sys/vm/swappiness").read_text())
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
