"""memcgctl top: the cost of a frame, of watching, and of the first frame.

    1. one frame over 1,000 real v1 groups: <= 1.5x the CPU of a bare Python
       read and parse of the same files (Sampler.next_frame() in this
       process, time.process_time(); baseline: os.open/os.read/os.close of
       each file, int() of the one-number files, memory.stat and
       memory.oom_control split into {key: int}, cgroup.procs counted); the
       bare read alone, nothing parsed, is shown beside it
    2. `memcgctl top` live on a pty over 100 groups at the default interval
       (1 s): < 1% of one core (utime+stime from /proc/PID/stat over 30 s,
       after 3 s of warm-up); -b to a pipe alongside
    3. the first frame on screen, from the command (start-up included), 100
       groups: < 150 ms (pty; the footer of the first screen is read);
       baseline `python3 -c "import click"`

Real groups are made only under a uniquely named child of this process's own
memory cgroup and removed afterwards.  Run as root on a cgroup v1 host:

    python3 bench/top.py [--groups 1000] [--watch-groups 100] [--seconds 30] [--runs 10]
                         [--compare DIR [--before DIR]]

With --compare, the frame figure is taken for each copy of the package in
child processes taking turns, and live top of each copy watches the same
groups at the same time (the first frame and -b are then left out).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

FRAME_GOAL_RATIO = 1.5
WATCH_GOAL_PERCENT = 1.0
FIRST_FRAME_GOAL_MS = 150
V1_FILES = ("memory.usage_in_bytes", "memory.stat", "memory.oom_control", "memory.failcnt",
            "memory.limit_in_bytes", "cgroup.procs")


def cpu_ms(action, rounds: int) -> float:
    """Median CPU milliseconds (this process, user + system) of ACTION."""
    action()  # warm-up: first reads, imports
    samples = []
    for _ in range(rounds):
        started = time.process_time()
        action()
        samples.append((time.process_time() - started) * 1000)
    return statistics.median(samples)


def bare_reads(root: Path) -> None:
    for directory in os.scandir(root):
        if directory.is_dir(follow_symlinks=False):
            for name in V1_FILES:
                fd = os.open(os.path.join(directory.path, name), os.O_RDONLY)
                os.read(fd, 65536)
                os.close(fd)


def _counters(text: str) -> dict:
    return {key: int(value) for key, value in (line.split() for line in text.splitlines())}


def bare_reads_and_parse(root: Path) -> None:
    """What the files of a frame cost in plain Python: read, then parsed."""
    for directory in os.scandir(root):
        if directory.is_dir(follow_symlinks=False):
            texts = {}
            for name in V1_FILES:
                fd = os.open(os.path.join(directory.path, name), os.O_RDONLY)
                texts[name] = os.read(fd, 65536).decode()
                os.close(fd)
            for name in ("memory.usage_in_bytes", "memory.failcnt", "memory.limit_in_bytes"):
                int(texts[name])
            _counters(texts["memory.stat"])
            _counters(texts["memory.oom_control"])
            len(texts["cgroup.procs"].split())


def frame_samples(root: Path, groups: int, rounds: int) -> tuple[list, list, list]:
    """CPU ms of ROUNDS frames, bare reads and parses, and bare reads of
    the same files, alternated so that a noisy neighbour slows them alike."""
    from memcgctl.kernel.discovery import open_hierarchy
    from memcgctl.operations.sampling import Sampler

    sampler = Sampler(open_hierarchy(root))
    frame = sampler.next_frame()
    assert len(frame.rows) == groups, len(frame.rows)
    frames, parsed, bare = [], [], []
    for _ in range(rounds):
        parsed.append(cpu_ms(lambda: bare_reads_and_parse(root), 1))
        frames.append(cpu_ms(sampler.next_frame, 1))
        bare.append(cpu_ms(lambda: bare_reads(root), 1))
    return frames, parsed, bare


def frame_samples_of_copies(root: Path, groups: int, rounds: int, variants: list) -> dict:
    """{label: (frames, parses, bare reads)} of each variant (label,
    PYTHONPATH), each in a child process of its own (one package per
    process), the children taking turns: three turns of ROUNDS/3 frames."""
    found: dict = {label: ([], [], []) for label, _ in variants}
    turns = 3
    for _ in range(turns):
        for label, pythonpath in variants:
            output = subprocess.run([sys.executable, __file__, "--frame-child", str(root), "--groups", str(groups),
                                     "--rounds", str(max(1, rounds // turns))],
                                    env=c.child_env(pythonpath=pythonpath), cwd=c.NEUTRAL_CWD, check=True,
                                    capture_output=True, text=True).stdout
            for kept, measured in zip(found[label], json.loads(output), strict=True):
                kept.extend(measured)
    return found


def frame_figures(root: Path, groups: int, rounds: int, variants: list) -> None:
    if len(variants) > 1:
        by_label = frame_samples_of_copies(root, groups, rounds, variants)
    else:
        by_label = {"": frame_samples(root, groups, rounds)}
    for label, (frames, parsed, bare) in by_label.items():
        frame_ms, parsed_ms, bare_ms = (statistics.median(each) for each in (frames, parsed, bare))
        tag = f"{label}: " if label else ""
        c.report(f"{tag}one frame, {groups} real v1 groups (CPU)", frame_ms, parsed_ms,
                 goal=FRAME_GOAL_RATIO,
                 note=f"baseline: bare Python read and parse of the same files (goal {FRAME_GOAL_RATIO}x); "
                      f"bare read alone {bare_ms:.1f} ms ({frame_ms / bare_ms:.2f}x)")
    if len(variants) > 1:
        return
    from memcgctl.kernel.discovery import open_hierarchy
    from memcgctl.operations.sampling import Sampler, order_rows
    from memcgctl.render.frames import batch_text
    from memcgctl.render.live import View, render

    frame = Sampler(open_hierarchy(root)).next_frame()
    c.report(f"  + the -b text of that frame, {groups} groups (CPU)",
             cpu_ms(lambda: batch_text(frame, order_rows(frame.rows), 1.0), rounds), None)
    view = View(1)
    c.report("  + one live screen of it, 120x50 (CPU)",
             cpu_ms(lambda: render(frame, view, 120, 50), rounds), None)


def memcgctl_argv() -> list:
    """The console script beside this interpreter (a venv's too), else _common's choice."""
    script = Path(sys.executable).parent / "memcgctl"
    return [str(script)] if script.exists() else c.memcgctl_argv()


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_pty(rows: int = 50, columns: int = 120) -> tuple[int, int]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    return master, slave


def drain(fd: int, seen: list, until: bytes | None = None, event: threading.Event | None = None) -> None:
    """Read FD until EOF; set EVENT once UNTIL has been read."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        seen.append(chunk)
        if event is not None and until is not None and until in b"".join(seen[-3:]):
            event.set()


def top_env(root: Path, pythonpath: str | None = None) -> dict:
    return c.child_env({"MEMCGCTL_ROOT": str(root), "TERM": "xterm-256color"}, pythonpath)


def watch_share(root: Path, seconds: float, live: bool, pythonpath: str | None = None) -> float:
    """Percent of one core `memcgctl top` uses at the default interval
    (PYTHONPATH: a copy of the package)."""
    argv = [*memcgctl_argv(), "top"] + ([] if live else ["-b"])
    env = top_env(root, pythonpath)
    if live:
        master, slave = open_pty()
        process = subprocess.Popen(argv, env=env, stdin=slave, stdout=slave, stderr=slave,
                                   cwd=c.NEUTRAL_CWD, start_new_session=True)
        os.close(slave)
        reader = master
    else:
        process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, cwd=c.NEUTRAL_CWD)  # SIGTERM ends it, and says so
        reader = process.stdout.fileno()
    seen: list = []
    thread = threading.Thread(target=drain, args=(reader, seen), daemon=True)
    thread.start()
    try:
        time.sleep(3)
        cpu_before, wall_before = process_cpu_seconds(process.pid), time.monotonic()
        time.sleep(seconds)
        cpu_after, wall_after = process_cpu_seconds(process.pid), time.monotonic()
    finally:
        if live:
            os.write(master, b"q")
        else:
            process.terminate()
        process.wait(timeout=30)
        thread.join(timeout=5)
        if live:
            os.close(master)
    assert live is False or process.returncode == 0, process.returncode
    return 100 * (cpu_after - cpu_before) / (wall_after - wall_before)


def first_frame_ms(root: Path) -> float:
    """From the command to the footer of its first screen on a pty."""
    master, slave = open_pty()
    seen: list = []
    shown = threading.Event()
    started = time.perf_counter()
    process = subprocess.Popen([*memcgctl_argv(), "top"], env=top_env(root), stdin=slave, stdout=slave,
                               stderr=slave, cwd=c.NEUTRAL_CWD, start_new_session=True)
    os.close(slave)
    thread = threading.Thread(target=drain, args=(master, seen, b"q quit", shown), daemon=True)
    thread.start()
    if not shown.wait(timeout=30):
        raise SystemExit(f"no first frame: {b''.join(seen)[-500:]!r}")
    elapsed = time.perf_counter() - started
    os.write(master, b"q")
    process.wait(timeout=30)
    thread.join(timeout=5)
    os.close(master)
    return elapsed * 1000


def first_frame_against_click(root: Path, runs: int) -> tuple[float, float, float]:
    """Medians of the first frame and of `python3 -c "import click"` (ms),
    taken in alternation so that a noisy neighbour slows both, and the
    median of the per-round ratios."""
    click = c.Cmd("import click", [c.PYTHON, "-c", "import click"], c.child_env())
    c.run_once(click)
    first_frame_ms(root)  # warm-up: bytecode cache, dentries
    frames, clicks = [], []
    for _ in range(runs):
        frames.append(first_frame_ms(root))
        clicks.append(c.ms(c.run_once(click)[0]))
    ratios = [frame / base for frame, base in zip(frames, clicks, strict=True)]
    return statistics.median(frames), statistics.median(clicks), statistics.median(ratios)


def run(opts) -> None:
    if (reason := c.kernel_skip_reason()) is not None:
        raise SystemExit(f"bench/top.py needs the real kernel: {reason}")
    c.heading("memcgctl top")
    variants = c.variants(opts)
    with c.kernel_root("top-frame") as root:
        c.grow_kernel_tree(root, 0, opts.groups)
        frame_figures(root, opts.groups, opts.rounds, variants)
    with c.kernel_root("top-watch") as root:
        c.grow_kernel_tree(root, 0, opts.watch_groups)
        if len(variants) > 1:
            watch_figures_of_copies(root, opts, variants)
            return
        first, click, per_round = first_frame_against_click(root, opts.runs)
        c.report(f"first frame on a pty, {opts.watch_groups} groups (wall)", first, click,
                 goal=FIRST_FRAME_GOAL_MS, goal_kind="max",
                 note=f"baseline: python3 -c 'import click', alternated; per-round ratio {per_round:.2f}")
        for live in (True, False):
            share = watch_share(root, opts.seconds, live)
            c.report(f"{'live on a pty' if live else '-b to a pipe'}, {opts.watch_groups} groups, every 1 s "
                     f"(% of a core)", share, bare_share(root, opts.rounds), unit="%",
                     goal=WATCH_GOAL_PERCENT if live else None, goal_kind="max",
                     note=f"over {opts.seconds:g} s; {BARE_SHARE_NOTE}")


def watch_figures_of_copies(root: Path, opts, variants: list) -> None:
    """Live top's share of a core for each variant, watched at the same time
    (the same machine state for all), twice each, in turns."""
    shares: dict = {label: [] for label, _ in variants}

    def watch(label: str, pythonpath: str | None) -> None:
        shares[label].append(watch_share(root, opts.seconds, True, pythonpath))

    for _ in range(2):
        threads = [threading.Thread(target=watch, args=variant) for variant in variants]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for label, found in shares.items():
        c.report(f"{label}: live on a pty, {opts.watch_groups} groups, every 1 s (% of a core)",
                 statistics.mean(found), bare_share(root, opts.rounds), unit="%", goal=WATCH_GOAL_PERCENT,
                 goal_kind="max", note=f"mean of {len(found)} watches of {opts.seconds:g} s, the variants side "
                 "by side: " + ", ".join(f"{share:.2f}" for share in found) + f"; {BARE_SHARE_NOTE}")


BARE_SHARE_NOTE = "baseline: a bare Python read and parse of the same files once a second"


def bare_share(root: Path, rounds: int) -> float:
    """Percent of a core that a bare Python read and parse of ROOT's groups'
    files once a second costs now: the floor under live top's share."""
    return cpu_ms(lambda: bare_reads_and_parse(root), rounds) / 10


def frame_child(argv: list) -> None:
    """--frame-child ROOT --groups N --rounds R: frame_samples() as JSON."""
    options = argparse.ArgumentParser()
    options.add_argument("root", type=Path)
    options.add_argument("--groups", type=int)
    options.add_argument("--rounds", type=int)
    opts = options.parse_args(argv)
    print(json.dumps(frame_samples(opts.root, opts.groups, opts.rounds)))


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--frame-child"]:
        frame_child(argv[1:])
        return
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--groups", type=int, default=1000, help="groups of the frame figure")
    options.add_argument("--watch-groups", type=int, default=100, help="groups of the watch and first-frame figures")
    options.add_argument("--seconds", type=float, default=30, help="how long to watch (CPU share)")
    options.add_argument("--rounds", type=int, default=10, help="frames timed (median)")
    options.add_argument("--runs", type=int, default=10, help="first-frame runs (median)")
    options.add_argument("--compare", metavar="DIR",
                         help="also measure the package copy in DIR (PYTHONPATH=DIR), in the same run: before/after")
    options.add_argument("--before", metavar="DIR", help="with --compare: 'before' is the copy in DIR")
    opts = options.parse_args(argv)
    opts.bytecode = "cached"
    c.configure(opts)
    run(opts)


if __name__ == "__main__":
    main()
