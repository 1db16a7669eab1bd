"""Goal: a Prometheus scrape of `memcgctl export --listen` over 1,000 real v1
groups takes under 200 ms (wall clock, HTTP request to last byte), and the
exporter's CPU per scrape is at most 1.5x a bare Python read and parse of
the same files.

For scale, the baseline is reading the very files a scrape reads (9 per v1
group) with os.open/os.read in this process: what the kernel costs; and that
read with the parse a plain Python script would do (int() of the one-number
files, the flat-keyed ones split into {key: int}, cgroup.procs counted).  Rounds
interleave baseline and scrape; figures are medians.  A second figure: the
same exporter limited with --include to a tenth of the groups, against the
full scrape (what the selection saves on a host with thousands of groups).
Groups are made under a child of our own memory cgroup and removed afterwards.

    python3 bench/export.py [--kernel-sizes 1000] [--tree-runs 21] [--compare DIR [--before DIR]]

With --compare, the copy of the package in DIR (PYTHONPATH=DIR) and the
installed one (or the copy in --before DIR) serve at once and are scraped
in the same rounds, against the same baseline.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

GOAL_MS = 200
CPU_GOAL_RATIO = 1.5
CPU_STRETCH_RATIO = 1.2
V1_FILES = ("memory.usage_in_bytes", "memory.limit_in_bytes", "memory.soft_limit_in_bytes",
            "memory.max_usage_in_bytes", "memory.memsw.limit_in_bytes", "memory.failcnt", "memory.stat",
            "memory.oom_control", "cgroup.procs")
FLAT_KEYED = ("memory.stat", "memory.oom_control")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape(url: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    return time.perf_counter() - started, body


def read_files(groups: list[Path], parse: bool = False) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of reading, and with PARSE parsing, the
    files of GROUPS."""
    started, cpu_started = time.perf_counter(), time.process_time()
    for group in groups:
        for name in V1_FILES:
            try:
                fd = os.open(group / name, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                text = os.read(fd, 65536)
            finally:
                os.close(fd)
            if parse and name in FLAT_KEYED:
                {key: int(value) for key, value in (line.split() for line in text.decode().splitlines())}
            elif parse and name == "cgroup.procs":
                len(text.split())
            elif parse:
                int(text)
    return time.perf_counter() - started, time.process_time() - cpu_started


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process PID so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape_duration(body: bytes) -> float:
    line = next(line for line in body.decode().splitlines() if line.startswith("memcgctl_scrape_duration_seconds "))
    return float(line.split()[1])


def bench_size(root: Path, n: int, runs: int, variants: list) -> None:
    by_label = measure_scrapes(root, n, runs, variants)
    for label, full in by_label.items():
        tag = f"{label}: " if label else ""
        c.report(f"{tag}scrape /metrics, {n} real v1 groups", c.ms(statistics.median(full.scrapes)),
                 c.ms(statistics.median(full.baselines)), goal=GOAL_MS, goal_kind="max",
                 note=f"baseline: os.read of the same files in-process; {full.samples} samples, {full.kib} KiB; "
                      f"reading inside the exporter {c.ms(statistics.median(full.inside)):.1f} ms; "
                      f"exporter CPU per scrape {c.ms(statistics.mean(full.cpu)):.1f} ms; "
                      f"min {c.ms(min(full.scrapes)):.1f}, max {c.ms(max(full.scrapes)):.1f} ms; "
                      f"load {os.getloadavg()[0]:.1f}")
        c.report(f"  {tag}exporter CPU per scrape, {n} real v1 groups", c.ms(statistics.median(full.cpu)),
                 c.ms(statistics.median(full.parsed_cpu)), goal=CPU_GOAL_RATIO,
                 note=f"baseline: CPU of a bare Python read and parse of the same files (goal {CPU_GOAL_RATIO}x, "
                      f"stretch {CPU_STRETCH_RATIO}x)")
    if len(variants) > 1:
        return
    full = by_label[""]
    # g00000..g00099 of 1,000: a tenth (the names have five digits).
    tenth = measure_scrapes(root, n, runs, variants, "--include", "g" + "0" * (5 - len(str(n // 10 - 1))) + "*")[""]
    c.report(f"  the same with --include: {tenth.groups} of {n} groups", c.ms(statistics.median(tenth.scrapes)),
             c.ms(statistics.median(full.scrapes)), note="baseline: the full scrape above")


class Scrapes:
    """What measure_scrapes() saw: seconds per scrape over HTTP, per baseline
    read, inside the exporter, CPU per scrape; samples, KiB and groups of the last."""

    def __init__(self):
        self.scrapes, self.baselines, self.inside, self.cpu, self.parsed_cpu = [], [], [], [], []
        self.samples = self.kib = self.groups = 0


def start_exporter(root: Path, pythonpath: str | None, options: tuple) -> tuple[subprocess.Popen, str]:
    """`memcgctl export --listen` on a free port (PYTHONPATH: a copy of the
    package), answering; the process and its /metrics URL."""
    port = free_port()
    # This interpreter (a virtual environment's, unresolved): the one memcgctl is installed in.
    argv = [sys.executable, "-m", "memcgctl", "--root", str(root), "export", *options,
            "--listen", f"127.0.0.1:{port}"]
    exporter = subprocess.Popen(argv, env=c.child_env(pythonpath=pythonpath), cwd=c.NEUTRAL_CWD)
    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + 30
    while True:
        try:
            scrape(url)  # also the warm-up
            return exporter, url
        except OSError:
            if time.monotonic() > deadline or exporter.poll() is not None:
                exporter.kill()
                exporter.wait()
                raise RuntimeError("the exporter did not start") from None
            time.sleep(0.1)


def measure_scrapes(root: Path, n: int, runs: int, variants: list, *options: str) -> dict:
    """{label: Scrapes} of one exporter per variant (label, PYTHONPATH),
    all running at once: each round reads the files bare, reads and parses
    them, then scrapes every exporter (the order rotates)."""
    groups = [root / name for name in c.group_names(0, n)]
    exporters: dict = {}
    try:
        for label, pythonpath in variants:
            exporters[label] = start_exporter(root, pythonpath, options)
        seen = {label: Scrapes() for label in exporters}
        bodies = {}
        labels = list(exporters)
        for round_number in range(runs):
            baseline = read_files(groups)[0]
            parsed_cpu = read_files(groups, parse=True)[1]
            shift = round_number % len(labels)
            for label in labels[shift:] + labels[:shift]:
                exporter, url = exporters[label]
                cpu_before = cpu_seconds(exporter.pid)
                seconds, bodies[label] = scrape(url)
                figures = seen[label]
                figures.cpu.append(cpu_seconds(exporter.pid) - cpu_before)
                figures.scrapes.append(seconds)
                figures.inside.append(scrape_duration(bodies[label]))
                figures.baselines.append(baseline)
                figures.parsed_cpu.append(parsed_cpu)
    finally:
        for exporter, _ in exporters.values():
            if exporter.poll() is None:
                os.kill(exporter.pid, signal.SIGTERM)
            exporter.wait(timeout=30)
    for label, body in bodies.items():
        lines = body.decode().splitlines()
        figures = seen[label]
        figures.samples = sum(1 for line in lines if line and not line.startswith("#"))
        figures.kib = len(body) // 1024
        figures.groups = int(float(next(line for line in lines if line.startswith("memcgctl_scrape_groups ")
                                        ).split()[1]))
    return seen


def main(argv=None) -> None:
    opts = c.parser(__doc__.splitlines()[0]).parse_args(argv)
    if opts.kernel_sizes == "100,1000,5000":
        opts.kernel_sizes = "1000"
    if opts.tree_runs == 7:
        opts.tree_runs = 21
    c.configure(opts)
    reason = "--no-kernel" if opts.no_kernel else c.kernel_skip_reason()
    if reason:
        print(f"real kernel: skipped ({reason})")
        return
    c.heading(f"export: median of {opts.tree_runs} scrapes over HTTP, interleaved with the baseline")
    with c.kernel_root("export") as root:
        have = 0
        for n in c.sizes(opts.kernel_sizes):
            c.grow_kernel_tree(root, have, n)
            have = n
            bench_size(root, n, opts.tree_runs, c.variants(opts))
    c.write_results(opts.json)


if __name__ == "__main__":
    main()
