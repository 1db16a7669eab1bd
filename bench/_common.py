"""Shared helpers of the memcgctl benchmarks: standard library only.

Timings are wall-clock (time.perf_counter) around whole processes, taken in
interleaved rounds (every command once per round, in a rotating order) so that
a noisy neighbour slows the baseline and the command alike; figures are
medians.  Peak memory is resource.getrusage(RUSAGE_CHILDREN).ru_maxrss in a
fresh small parent that ran only that child (see peak_rss_kib).

Real cgroups are created only under a uniquely named child of this process's
own memory cgroup and removed depth-first afterwards.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
# The interpreter itself, not a pyenv shim; but a virtual environment's python
# stays as it is (resolving it would leave the environment and its packages).
PYTHON = sys.executable if sys.prefix != sys.base_prefix else os.path.realpath(sys.executable)
BIN = Path(PYTHON).parent


def _which_as_typed(program: str) -> str | None:
    """PROGRAM as a user's shell finds it: `pyenv exec` (the python3 shim) puts
    the interpreter's bin first on our PATH, so that entry is skipped."""
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if p and os.path.realpath(p) != str(BIN))
    return shutil.which(program, path=path)


# What a user types: the first python3 and memcgctl on PATH (pyenv shims here).
PATH_PYTHON = _which_as_typed("python3") or PYTHON
PATH_MEMCGCTL = _which_as_typed("memcgctl")
DIRECT_MEMCGCTL = str(BIN / "memcgctl") if (BIN / "memcgctl").exists() else None

# Children run here, so that `python3 -m memcgctl` does not pick up the package
# from the current directory (sys.path[0]) instead of the one under test.
NEUTRAL_CWD = "/"

MIB = 1024**2
GIB = 1024**3


# --- running and timing ---------------------------------------------------------------------------------------


@dataclass
class Cmd:
    """One command to time.  TTY runs it with stdout and stderr on a pseudo-terminal."""

    name: str
    argv: list
    env: dict | None = None
    tty: bool = False
    stdin: str | None = None  # a file to read standard input from
    samples: list = field(default_factory=list)
    cpu: list = field(default_factory=list)  # user + system seconds of each run

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)


# Bytecode: an installed package has .pyc files (pip compiles them; an editable
# install writes __pycache__ on first use).  With PYTHONDONTWRITEBYTECODE set, as
# in some sandboxes, memcgctl would be compiled from source on every run while
# click's .pyc from pip are used: unfair.  So by default the children keep
# their bytecode under one cache prefix (nothing is written into the project);
# --bytecode as-is leaves the environment alone.
PYCACHE_PREFIX = os.path.join(tempfile.gettempdir(), "memcgctl-bench-pycache")
BYTECODE = {"mode": "cached"}
# On tmpfs, like /run on most hosts (here /run may be a disk: its fsyncs would
# then flush the dirty page cache a shrink is timed on).
JOURNAL_DIR = os.path.join("/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir(),
                           f"memcgctl-bench-journal-{os.getpid()}")
atexit.register(shutil.rmtree, JOURNAL_DIR, ignore_errors=True)


def configure(opts) -> None:
    BYTECODE["mode"] = opts.bytecode
    if opts.bytecode == "cached" and os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print(f"note: PYTHONDONTWRITEBYTECODE is set here; children cache bytecode in {PYCACHE_PREFIX} "
              "(see --bytecode)", flush=True)


def child_env(extra: dict | None = None, pythonpath: str | None = None) -> dict:
    """The environment of a timed child: ours, without MEMCGCTL_* and completion
    variables, plus EXTRA; PYTHONPATH puts a trial copy of the package first."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MEMCGCTL_", "_MEMCGCTL_", "COMP_", "PYTHONPROFILEIMPORTTIME"))}
    env.pop("PYTHONPATH", None)
    if BYTECODE["mode"] == "cached":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = PYCACHE_PREFIX
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    # Locks and undo records of the commands we time stay in our scratch space.
    env["MEMCGCTL_JOURNAL_DIR"] = JOURNAL_DIR
    env.update(extra or {})
    return env


def _wait(process: subprocess.Popen) -> tuple[int, float]:
    """Exit code and CPU seconds (user + system) of PROCESS and what it waited for."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_utime + usage.ru_stime


def run_once(cmd: Cmd, check: bool = True) -> tuple[float, float, bytes]:
    """Run CMD once; (wall seconds, CPU seconds, output).  Output goes to a pipe
    that is drained (as `cmd | cat` would), or to a pty of 120x50."""
    if cmd.tty:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 120, 0, 0))
        env = dict(cmd.env or os.environ, TERM="xterm-256color")
        env.pop("NO_COLOR", None)
        started = time.perf_counter()
        process = subprocess.Popen(cmd.argv, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                                   cwd=NEUTRAL_CWD)
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        returncode, cpu = _wait(process)
        elapsed = time.perf_counter() - started
        os.close(master)
        output = b"".join(chunks)
    else:
        stdin = open(cmd.stdin, "rb") if cmd.stdin else subprocess.DEVNULL
        try:
            started = time.perf_counter()
            process = subprocess.Popen(cmd.argv, env=cmd.env, stdin=stdin, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, cwd=NEUTRAL_CWD)
            output = process.stdout.read()
            process.stdout.close()
            returncode, cpu = _wait(process)
            elapsed = time.perf_counter() - started
        finally:
            if cmd.stdin:
                stdin.close()
    if check and returncode != 0:
        raise SystemExit(f"{cmd.name}: exit {returncode}: {' '.join(map(str, cmd.argv))}\n"
                         f"{output.decode(errors='replace')[-2000:]}")
    return elapsed, cpu, output


def measure(cmds: list[Cmd], runs: int, warmup: int = 1) -> list[Cmd]:
    """Time every command RUNS times, interleaved; the order rotates each round."""
    for _ in range(warmup):
        for cmd in cmds:
            run_once(cmd)
    for round_number in range(runs):
        shift = round_number % len(cmds)
        for cmd in cmds[shift:] + cmds[:shift]:
            elapsed, cpu, _ = run_once(cmd)
            cmd.samples.append(elapsed)
            cmd.cpu.append(cpu)
    return cmds


# A small parent for memory figures: a child's ru_maxrss also counts what it
# inherited from the process that forked it (the kernel keeps the high-water
# mark of the pre-exec copy), so the bench itself must not be that parent.
RSS_LAUNCHER = r"""
import os, resource, shutil, sys
null = os.open(os.devnull, os.O_WRONLY)
actions = [(os.POSIX_SPAWN_DUP2, null, 1), (os.POSIX_SPAWN_DUP2, null, 0)]
program = shutil.which(sys.argv[1]) or sys.argv[1]
pid = os.posix_spawn(program, sys.argv[1:], os.environ, file_actions=actions)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def peak_rss_kib(argv: list, env: dict | None = None, runs: int = 3) -> int:
    """Peak RSS (KiB) of ARGV: resource.getrusage(RUSAGE_CHILDREN).ru_maxrss in
    a fresh small `python3 -I -S` parent that ran only ARGV (output to
    /dev/null); the median of RUNS."""
    found = []
    for _ in range(runs):
        _, _, output = run_once(Cmd("rss", [PYTHON, "-I", "-S", "-c", RSS_LAUNCHER, *argv], env))
        status, maxrss = output.split()
        if status != b"0":
            raise SystemExit(f"peak RSS run of {argv} exited {status.decode()}")
        found.append(int(maxrss))
    return int(statistics.median(found))


def parser(description: str):
    """The options every bench script accepts (run_all.py passes them on)."""
    import argparse

    options = argparse.ArgumentParser(description=description)
    options.add_argument("--runs", type=int, default=15, help="timed runs of each start-up command (median)")
    options.add_argument("--entries", default="module,script,shim",
                         help="how to start memcgctl: module (python3 -m), script (console script), shim (on PATH)")
    options.add_argument("--tree-runs", type=int, default=7, help="timed runs of each many-groups command")
    options.add_argument("--sizes", default="100,1000,5000", help="group counts of the fake trees")
    options.add_argument("--kernel-sizes", default="100,1000,5000", help="group counts of the real v1 trees")
    options.add_argument("--skip-big-tty", action="store_true",
                         help="time the rich table on a pty only up to 1,000 groups")
    options.add_argument("--shrink-rounds", type=int, default=5, help="shrinks of each kind (1 GiB each)")
    options.add_argument("--dirty", action="store_true", help="shrink dirty page cache (no sync before)")
    options.add_argument("--no-kernel", action="store_true", help="skip everything on the real kernel")
    options.add_argument("--compare", metavar="DIR",
                         help="also time the package copy in DIR (PYTHONPATH=DIR), interleaved: before/after")
    options.add_argument("--before", metavar="DIR",
                         help="with --compare: 'before' is the copy in DIR, not the installed package")
    options.add_argument("--bytecode", choices=["cached", "as-is"], default="cached",
                         help="cached: children keep .pyc files (in a cache prefix outside the project); "
                         "as-is: the environment as it is (PYTHONDONTWRITEBYTECODE honoured)")
    options.add_argument("--json", metavar="FILE", help="write every figure to FILE as JSON")
    return options


def variants(opts) -> list[tuple[str, str | None]]:
    """(label, PYTHONPATH): the installed package, and with --compare the copy."""
    if not opts.compare:
        return [("", None)]
    before = os.path.realpath(opts.before) if opts.before else None
    return [("before", before), ("after", os.path.realpath(opts.compare))]


def sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


# --- reporting --------------------------------------------------------------------------------------------------

RESULTS: list[dict] = []


def timing_note(cmd: Cmd, base: Cmd) -> str:
    """Two views less sensitive to a noisy neighbour than the ratio of medians:
    the median of the per-round ratios, and the ratio of median CPU times."""
    paired = statistics.median(a / b for a, b in zip(cmd.samples, base.samples, strict=True))
    return f"per-round {paired:.2f}, cpu {cmd.cpu_median / base.cpu_median:.2f}"


def compare(figure: str, cmd: Cmd, base: Cmd, goal: float | None = None, baseline_seconds: float | None = None,
            note: str = "") -> dict:
    """report() of CMD against BASE (or against BASELINE_SECONDS), in ms."""
    if baseline_seconds is None:
        note = ", ".join(part for part in (timing_note(cmd, base), note) if part)
        baseline_seconds = base.median
    return report(figure, ms(cmd.median), ms(baseline_seconds), goal=goal, note=note)


def report(figure: str, value: float, baseline: float | None, unit: str = "ms", goal: float | None = None,
           goal_kind: str = "ratio", note: str = "") -> dict:
    """Print one figure with its baseline and ratio, and whether it meets GOAL
    (a ratio to the baseline, or with goal_kind='max' an absolute ceiling)."""
    ratio = value / baseline if baseline else None
    verdict = ""
    if goal is not None:
        measured = ratio if goal_kind == "ratio" else value
        verdict = "PASS" if measured is not None and measured <= goal else "FAIL"
    parts = [f"{figure:<58}", f"{value:9.1f} {unit:<3}"]
    if baseline is not None:
        parts.append(f"baseline {baseline:8.1f} {unit:<3} ratio {ratio:5.2f}")
    else:
        parts.append(" " * 31)
    if goal is not None:
        bound = f"<= {goal:g}x" if goal_kind == "ratio" else f"< {goal:g} {unit}"
        parts.append(f"goal {bound} {verdict}")
    if note:
        parts.append(f"({note})")
    print("  ".join(parts), flush=True)
    row = {"figure": figure, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio,
           "goal": goal, "goal_kind": goal_kind, "verdict": verdict, "note": note}
    RESULTS.append(row)
    return row


def heading(text: str) -> None:
    print(f"\n== {text}", flush=True)


def write_results(path: str | None) -> None:
    if path:
        Path(path).write_text(json.dumps(RESULTS, indent=2) + "\n")


def ms(seconds: float) -> float:
    return seconds * 1000


# --- the commands under test ----------------------------------------------------------------------------------


def entry_points(wanted: str = "module,script,shim") -> dict:
    """How memcgctl is started, with the python3 baseline started the same way.

    name -> (memcgctl argv prefix, baseline argv)
    """
    click_import = ["-c", "import click"]
    kinds = wanted.split(",")
    found = {}
    if "module" in kinds:
        found["python3 -m memcgctl"] = ([PYTHON, "-m", "memcgctl"], [PYTHON, *click_import])
    if "script" in kinds and DIRECT_MEMCGCTL:
        found["console script (direct)"] = ([DIRECT_MEMCGCTL], [PYTHON, *click_import])
    if ("shim" in kinds and PATH_MEMCGCTL
            and os.path.realpath(PATH_MEMCGCTL) != os.path.realpath(DIRECT_MEMCGCTL or "")):
        found["console script on PATH (pyenv shim)"] = ([PATH_MEMCGCTL], [PATH_PYTHON, *click_import])
    return found


def completion_env(words: str, cword: int) -> dict:
    return {"COMP_WORDS": words, "COMP_CWORD": str(cword), "_MEMCGCTL_COMPLETE": "bash_complete"}


# --- fake trees --------------------------------------------------------------------------------------------------

# What a real v1 group's memory.stat holds on kernel 6.x (42 keys), for fake
# trees as large as the real thing.  Replaced by the kernel's own when readable.
_V1_STAT_COUNTERS = """cache 5386240
rss 1900544
rss_huge 0
shmem 0
mapped_file 45056
dirty 12288
writeback 0
workingset_refault_anon 0
workingset_refault_file 1491
swap 0
swapcached 0
pgpgin 602508
pgpgout 600738
pgfault 889728
pgmajfault 26
inactive_anon 1789952
active_anon 12288
inactive_file 1191936
active_file 4194304
unevictable 0
"""
V1_STAT_SAMPLE = (_V1_STAT_COUNTERS
                  + "hierarchical_memory_limit 9223372036854771712\nhierarchical_memsw_limit 9223372036854771712\n"
                  + "".join(f"total_{line}\n" for line in _V1_STAT_COUNTERS.splitlines()))


def realistic_v1_stat() -> str:
    own = own_memory_cgroup()
    if own is not None:
        with contextlib.suppress(OSError):
            text = (own / "memory.stat").read_text()
            if len(text.splitlines()) > 20:
                return text
    return V1_STAT_SAMPLE


def group_names(start: int, stop: int) -> list[str]:
    return [f"g{i:05d}" for i in range(start, stop)]


def memcgctl_argv() -> list:
    """The installed console script, or python3 -m memcgctl when there is none."""
    return [DIRECT_MEMCGCTL] if DIRECT_MEMCGCTL else [PYTHON, "-m", "memcgctl"]


def build_fake_tree(root: Path, version: int = 1, groups: int = 0, env: dict | None = None) -> Path:
    """`memcgctl init-fake` ROOT, then GROUPS groups made by `memcgctl create`."""
    env = env or child_env()
    run_once(Cmd("init-fake", [*memcgctl_argv(), "init-fake", "--cgroup-version", str(version), str(root)], env))
    grow_fake_tree(root, 0, groups, env)
    return root


def grow_fake_tree(root: Path, have: int, want: int, env: dict | None = None) -> None:
    """Add groups HAVE..WANT with `memcgctl create`, with figures like a real
    kernel's (a 42-line memory.stat, some usage, a limit)."""
    names = group_names(have, want)
    env = env or child_env()
    for start in range(0, len(names), 1000):
        chunk = names[start:start + 1000]
        if chunk:
            run_once(Cmd("create", [*memcgctl_argv(), "--root", str(root), "create", *chunk], env))
    stat_text = realistic_v1_stat()
    v1 = (root / "memory.limit_in_bytes").exists()
    for index, name in enumerate(names, start=have):
        group = root / name
        usage = (index % 977 + 1) * 4096 * 37
        if v1:
            (group / "memory.stat").write_text(stat_text)
            (group / "memory.usage_in_bytes").write_text(f"{usage}\n")
            (group / "memory.max_usage_in_bytes").write_text(f"{usage * 2}\n")
        else:
            (group / "memory.current").write_text(f"{usage}\n")


# --- the real kernel ---------------------------------------------------------------------------------------------


def own_memory_cgroup() -> Path | None:
    """This process's cgroup v1 memory cgroup directory (the N:memory:/path line)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            directory = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            if (directory / "memory.limit_in_bytes").is_file():
                return directory
    return None


def kernel_skip_reason() -> str | None:
    own = own_memory_cgroup()
    if own is None:
        return "no cgroup v1 memory cgroup for this process"
    if not os.access(own, os.W_OK):
        return f"cannot create groups under {own}"
    return None


def remove_tree(top: Path) -> None:
    """rmdir TOP and every group below it, deepest first (cgroupfs: no unlink)."""
    directories = []
    for path, dirnames, _ in os.walk(top):
        directories.extend(os.path.join(path, name) for name in dirnames)
    for directory in sorted(directories, key=lambda d: -d.count("/")):
        os.rmdir(directory)
    os.rmdir(top)


@contextlib.contextmanager
def kernel_root(label: str):
    """A fresh uniquely named memory cgroup under our own, removed afterwards
    (depth-first).  Yields its path."""
    own = own_memory_cgroup()
    if own is None:
        raise RuntimeError("no cgroup v1 memory cgroup for this process")
    top = own / f"memcgctl-bench-{label}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    top.mkdir()
    try:
        yield top
    finally:
        remove_tree(top)


def grow_kernel_tree(root: Path, have: int, want: int) -> None:
    for name in group_names(have, want):
        os.mkdir(root / name)


@contextlib.contextmanager
def scratch_dir(prefix: str):
    directory = Path(tempfile.mkdtemp(prefix=f"memcgctl-bench-{prefix}-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# --- which files a command reads ---------------------------------------------------------------------------------

TRACER = r"""
import os, sys
root, out = sys.argv[1], sys.argv[2]
opened = []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        opened.append(os.fsdecode(args[0]))
sys.addaudithook(hook)
from memcgctl.cli import main
sys.argv = ["memcgctl", "--root", root, *sys.argv[3:]]
try:
    main()
except SystemExit:
    pass
finally:
    prefix = os.path.realpath(root) + os.sep
    with open(out, "w") as listing:
        listing.write("\n".join(p for p in opened if os.path.realpath(p).startswith(prefix)))
"""


def files_read(root: Path, args: list, env: dict | None = None) -> tuple[list[str], int]:
    """The files under ROOT that `memcgctl --root ROOT ARGS` opens (audit hook),
    each once in first-open order, and the number of opens."""
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as listing:
        run_once(Cmd("trace", [PYTHON, "-c", TRACER, str(root), listing.name, *args], env or child_env()))
        opened = [line for line in Path(listing.name).read_text().splitlines() if line]
    return list(dict.fromkeys(opened)), len(opened)


def cat_command(files: list[str], directory: Path) -> Cmd:
    """`xargs -0 cat` of FILES (one cat per ~100k of names, as find|xargs cat)."""
    listing = directory / f"files-{len(files)}-{uuid.uuid4().hex[:6]}.lst"
    listing.write_bytes(b"\0".join(os.fsencode(f) for f in files))
    return Cmd(f"cat {len(files)} files", ["xargs", "-0", "cat"], stdin=str(listing))


def script_main(run, doc: str, argv=None) -> None:
    """What each bench script does when run on its own."""
    opts = parser(doc.splitlines()[0]).parse_args(argv)
    configure(opts)
    run(opts)
    write_results(opts.json)
