"""Every figure of the "Speed" issue in one run, each with its baseline and ratio.

    python3 bench/run_all.py                      # the installed memcgctl
    python3 bench/run_all.py --quick              # fewer runs and rounds (~3 min)
    python3 bench/run_all.py --compare /tmp/memcgctl-try [--before DIR]
                                                  # before/after, interleaved in the same run

1. start-up (bench/startup.py)        2. many groups and 4. memory (bench/many_groups.py)
3. shrink, clean and dirty page cache (bench/shrink.py)

Real cgroups are made only under a uniquely named child of this process's own
memory cgroup and removed afterwards; --no-kernel keeps to fake trees.  Exit
status 1 if any goal is missed.
"""

from __future__ import annotations

import copy
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402
import many_groups  # noqa: E402
import shrink  # noqa: E402
import startup  # noqa: E402

QUICK = {"runs": 9, "tree_runs": 3, "kernel_sizes": "100,1000", "shrink_rounds": 3}


def describe_machine() -> None:
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"python {platform.python_version()} ({c.PYTHON}), kernel {platform.release()}, "
          f"load average {' '.join(load)}")
    print(f"memcgctl: {c.DIRECT_MEMCGCTL or '(no console script)'}; on PATH: {c.PATH_MEMCGCTL}; "
          f"python3 on PATH: {c.PATH_PYTHON}")
    own = c.own_memory_cgroup()
    print(f"own memory cgroup: {own or 'none'}; bytecode: {c.BYTECODE['mode']}")


def main(argv=None) -> int:
    options = c.parser(__doc__.splitlines()[0])
    options.add_argument("--quick", action="store_true", help="fewer runs: " +
                         ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()))
    opts = options.parse_args(argv)
    if opts.quick:
        for key, value in QUICK.items():
            setattr(opts, key, value)
    c.configure(opts)
    describe_machine()
    started = time.monotonic()
    startup.run(opts)
    many_groups.run(opts)
    shrink.run(opts)
    dirty = copy.copy(opts)
    dirty.dirty = True
    shrink.run(dirty)
    missed = [row for row in c.RESULTS if row.get("verdict") == "FAIL" or row.get("verdict") == "NOT LINEAR"
              or row.get("within_target") is False]
    c.heading(f"summary ({time.monotonic() - started:.0f} s)")
    goals = [row for row in c.RESULTS if row.get("verdict")]
    print(f"{len(goals) - len(missed)} of {len(goals)} figures with a goal meet it")
    for row in missed:
        print(f"  missed: {row['figure']}")
    c.write_results(opts.json)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
