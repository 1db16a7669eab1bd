"""memcgctl daemon on real cgroup v1 groups: what it costs, and how fast it reacts.

1. CPU of the daemon per hour with 100 and 1,000 watched groups (one
   watermark rule over all of them, high 2M, low 1M), measured from
   /proc/PID/schedstat (nanoseconds on a CPU, the kernel's reclaim in its
   writes included) over a window after start-up:
   - idle: nothing happens in the groups; goal < 0.1% of one core at 1,000;
   - active: a reader charges 3 MiB of clean page cache to one group after
     another (ACTIVE_RATE groups a second), so each crosses `high` in turn and
     the daemon shrinks it.
2. Reaction time from a threshold crossing to the reclaim, median of
   --trials: a writer inside the group sits 2 MiB under `high` (clean page
   cache) and writes 4 MiB more; the time from the start of that write until
   usage is back under `low` plus those 4 MiB.  The same engine woken by the
   v1 usage-threshold eventfd, and polling at interval = 1 s (its kernel
   watches turned off).  Goal: eventfd < 20 ms median.

Groups are created only under a uniquely named child of this process's own
memory cgroup and removed afterwards; the processes started in them (the
reader, the writer) are killed first.

    python3 bench/daemon.py [--window 60] [--trials 15] [--groups 100,1000]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

from memcgctl.daemon.counters import counters_file_name  # noqa: E402

ACTIVE_RATE = 10  # groups a second charged by the reader
IDLE_GOAL_PERCENT = 0.1
REACTION_GOAL_MS = 20.0
V1_UNLIMITED = "9223372036854771712"

# The engine in a process of its own; MODE "eventfd" (as `memcgctl daemon`
# runs it) or "interval" (the same, polling: no kernel watches).
ENGINE = r"""
import sys
from memcgctl.daemon.config import load_config
from memcgctl.daemon.engine import Engine
from memcgctl.daemon.log import DaemonLog
from memcgctl.kernel.discovery import open_hierarchy
from memcgctl.safety.journal import Journal
root, config, journal, mode = sys.argv[1:5]
backend = open_hierarchy(root, journal=Journal(journal))
engine = Engine(backend, load_config(config), DaemonLog(0))
engine.watching = mode == "eventfd"
engine.run()
"""

# Charges 3 MiB of clean page cache to each group in turn: drop the file's
# pages (uncharging them), move into the next group, read the file again.
READER = r"""
import os, sys, time
root, data, rate = sys.argv[1], sys.argv[2], float(sys.argv[3])
groups = sys.argv[4:]
fd = os.open(data, os.O_RDONLY)
next_at = time.monotonic()
print("ready", flush=True)
while True:
    for group in groups:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        with open(f"{root}/{group}/cgroup.procs", "w") as procs:
            procs.write(str(os.getpid()))
        os.lseek(fd, 0, os.SEEK_SET)
        while os.read(fd, 1 << 20):
            pass
        next_at += 1.0 / rate
        time.sleep(max(0.0, next_at - time.monotonic()))
"""

# "<MiB> <file> [sync]" on stdin: append that much, "done" on stdout;
# "reset <file>": truncate it (its page cache is uncharged).
WRITER = r"""
import os, sys
block = b"x" * (1 << 20)
print("ready", flush=True)
for line in sys.stdin:
    words = line.split()
    if words[0] == "reset":
        os.truncate(words[1], 0)
    else:
        fd = os.open(words[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        for _ in range(int(words[0])):
            os.write(fd, block)
        if len(words) > 2:
            os.fsync(fd)
        os.close(fd)
    print("done", flush=True)
"""


def cpu_seconds(pid: int) -> float:
    """Time PID has spent on a CPU (user, system, and the kernel's reclaim in its writes)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


def wait_until(predicate, seconds: float, every: float = 0.0005) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


class Processes:
    """What the bench starts; killed (their whole session) at the end."""

    def __init__(self):
        self.started: list[subprocess.Popen] = []

    def start(self, argv: list, **kwargs) -> subprocess.Popen:
        process = subprocess.Popen(argv, start_new_session=True, cwd=c.NEUTRAL_CWD, env=c.child_env(), **kwargs)
        self.started.append(process)
        return process

    def in_group(self, root: Path, group: str, script: str, *args: str) -> subprocess.Popen:
        process = self.start([sys.executable, "-m", "memcgctl", "--root", str(root), "run", group, "--",
                              sys.executable, "-c", script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
        assert process.stdout.readline().strip() == "ready"
        return process

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            process.wait()
        self.started.clear()


def start_engine(processes: Processes, root: Path, config: Path, journal: Path, mode: str) -> subprocess.Popen:
    return processes.start([sys.executable, "-c", ENGINE, str(root), str(config), str(journal), mode],
                           stderr=subprocess.DEVNULL)


def write_config(directory: Path, text: str) -> Path:
    path = directory / "daemon.toml"
    path.write_text(text)
    return path


# --- 1. CPU per hour -----------------------------------------------------------------


def cpu_per_hour(groups: int, window: float, active: bool, scratch: Path) -> tuple[float, int]:
    """(% of one core over WINDOW seconds, steps taken) for GROUPS watched groups."""
    processes = Processes()
    journal = Path(tempfile.mkdtemp(prefix="memcgctl-bench-journal-", dir="/dev/shm"))
    with c.kernel_root(f"daemon{groups}") as root:
        names = [f"g{number:05d}" for number in range(groups)]
        for name in names:
            os.mkdir(root / name)
        config = write_config(scratch, '[[group]]\nmatch = "g*"\npolicy = "watermark"\nhigh = "2M"\nlow = "1M"\n')
        try:
            daemon = start_engine(processes, root, config, journal, "eventfd")
            counters = journal / counters_file_name(root)
            assert wait_until(counters.exists, 300, every=0.05), "the daemon never finished its first pass"
            settle(daemon.pid)
            if active:
                data = scratch / "reader-data"
                data.write_bytes(b"r" * (3 * c.MIB))
                processes.in_group(root, names[0], READER, str(root), str(data), str(ACTIVE_RATE), *names)
            steps_before = steps_taken(counters)
            cpu_before, started = cpu_seconds(daemon.pid), time.monotonic()
            time.sleep(window)
            cpu_used, elapsed = cpu_seconds(daemon.pid) - cpu_before, time.monotonic() - started
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
            steps = steps_taken(counters) - steps_before
        finally:
            processes.stop_all()
            import shutil

            shutil.rmtree(journal, ignore_errors=True)
    return 100.0 * cpu_used / elapsed, steps


def settle(pid: int, quiet_seconds: float = 3.0, most_cpu: float = 0.003, give_up: float = 300) -> None:
    """Wait until PID used less than MOST_CPU seconds over QUIET_SECONDS: past
    its start-up (registering 1,000 thresholds takes the kernel about 15 ms
    each, in synchronize_rcu; then it reads every group once more)."""
    deadline = time.monotonic() + give_up
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(quiet_seconds)
        if cpu_seconds(pid) - before < most_cpu:
            return
    raise SystemExit(f"the daemon (pid {pid}) never went idle")


def steps_taken(counters: Path) -> int:
    import json

    return sum(row["actions"] for row in json.loads(counters.read_text())["rows"])


# --- 2. reaction time ----------------------------------------------------------------


def reaction_times(mode: str, trials: int, scratch: Path) -> list[float]:
    """Seconds from the start of a write that crosses `high` until usage is back
    near `low`, TRIALS times, with the engine in MODE."""
    processes = Processes()
    journal = Path(tempfile.mkdtemp(prefix="memcgctl-bench-journal-", dir="/dev/shm"))
    high, low, crossing = 64, 32, 4  # MiB
    times = []
    with c.kernel_root(f"reaction-{mode}") as root:
        os.mkdir(root / "web")
        usage_path = root / "web" / "memory.usage_in_bytes"
        limit_path = root / "web" / "memory.limit_in_bytes"
        config = write_config(scratch, f'interval = 1.0\n\n[[group]]\nmatch = "web"\npolicy = "watermark"\n'
                                       f'high = "{high}M"\nlow = "{low}M"\n')
        try:
            writer = processes.in_group(root, "web", WRITER)

            def ask(line: str) -> None:
                writer.stdin.write(line + "\n")
                writer.stdin.flush()
                assert writer.stdout.readline().strip() == "done"

            start_engine(processes, root, config, journal, mode)
            time.sleep(3.0)  # start-up and first pass
            data = scratch / "writer-data"
            data.touch()
            for _ in range(trials):
                ask(f"reset {data}")
                base = (high - 2) * c.MIB - int(usage_path.read_text())
                ask(f"{max(0, base // c.MIB)} {data} sync")
                time.sleep(random.uniform(0.3, 0.4))  # away from any rhythm of the passes
                started = time.monotonic()
                ask(f"{crossing} {data}")
                assert wait_until(lambda: int(usage_path.read_text()) <= (low + crossing) * c.MIB, 10)
                times.append(time.monotonic() - started)
                # Usage passes the mark while the kernel still reclaims: let
                # the step end (the limit restored) before the next trial.
                assert wait_until(lambda: limit_path.read_text().strip() == V1_UNLIMITED, 10, every=0.002)
        finally:
            processes.stop_all()
            import shutil

            shutil.rmtree(journal, ignore_errors=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=60.0, help="seconds of each CPU measurement")
    parser.add_argument("--trials", type=int, default=15, help="crossings per reaction-time figure")
    parser.add_argument("--groups", default="100,1000", help="numbers of watched groups")
    opts = parser.parse_args()
    reason = c.kernel_skip_reason()
    if reason:
        raise SystemExit(f"bench/daemon.py needs a writable cgroup v1 memory cgroup: {reason}")
    with c.scratch_dir("daemon") as scratch:
        print(f"CPU of the daemon (watermark on every group; {opts.window:g} s windows; "
              f"active: {ACTIVE_RATE} groups a second cross high)")
        for groups in (int(n) for n in opts.groups.split(",")):
            for active in (False, True):
                percent, steps = cpu_per_hour(groups, opts.window, active, scratch)
                goal = ""
                if not active:
                    goal = f"  goal < {IDLE_GOAL_PERCENT}%: {'met' if percent < IDLE_GOAL_PERCENT else 'MISSED'}"
                print(f"  {groups:>5} groups {'active' if active else 'idle  '}: {percent:.4f}% of one core = "
                      f"{36 * percent:.2f} CPU-seconds per hour; {steps} steps in the window{goal}", flush=True)
        print(f"Reaction from a threshold crossing to the reclaim (median of {opts.trials})")
        medians = {}
        for mode in ("eventfd", "interval"):
            times = reaction_times(mode, opts.trials, scratch)
            medians[mode] = statistics.median(times)
            print(f"  {mode:>8}: median {1000 * medians[mode]:.1f} ms (min {1000 * min(times):.1f}, "
                  f"max {1000 * max(times):.1f})", flush=True)
        ratio = medians["interval"] / medians["eventfd"]
        met = "met" if 1000 * medians["eventfd"] < REACTION_GOAL_MS else "MISSED"
        print(f"  polling at 1 s / eventfd: {ratio:.1f} x; goal eventfd < {REACTION_GOAL_MS:g} ms: {met}")


if __name__ == "__main__":
    main()
