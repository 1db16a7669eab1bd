"""Goal 4, memory: peak RSS of `memcgctl stat --json` over 5,000 groups < 64 MiB.

ru_maxrss from resource.getrusage(RUSAGE_CHILDREN) in a fresh small parent
that ran only the command (see _common.peak_rss_kib), on a fake v1 tree
whose groups hold a kernel-sized memory.stat, and on 5,000 real v1 groups
under our own memory cgroup.  many_groups.py reports the same figure.

    python3 bench/memory.py [--no-kernel] [--compare DIR]
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402
from many_groups import report_memory  # noqa: E402

GROUPS = 5000


def measure_root(where: str, root: Path, opts) -> None:
    c.heading(f"peak RSS over {GROUPS} groups on {where}")
    for label, pythonpath in c.variants(opts):
        tag = f"[{label}] " if label else ""
        cmd = c.Cmd("stat --json", [*c.memcgctl_argv(), "stat", "--json"],
                    c.child_env({"MEMCGCTL_ROOT": str(root)}, pythonpath))
        report_memory(f"{tag}peak RSS of stat --json, {GROUPS} groups", cmd)


def run(opts) -> None:
    with contextlib.ExitStack() as stack:
        scratch = stack.enter_context(c.scratch_dir("memory"))
        measure_root("a fake v1 tree", c.build_fake_tree(scratch / "v1", 1, GROUPS), opts)
        reason = "--no-kernel" if opts.no_kernel else c.kernel_skip_reason()
        if reason:
            print(f"\nreal kernel: skipped ({reason})")
            return
        root = stack.enter_context(c.kernel_root("memory"))
        c.grow_kernel_tree(root, 0, GROUPS)
        measure_root(f"the real kernel (cgroup v1, {root})", root, opts)


def main(argv=None) -> None:
    c.script_main(run, __doc__, argv)


if __name__ == "__main__":
    main()
