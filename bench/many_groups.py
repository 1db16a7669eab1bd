"""Goals 2 and 4, many groups: `memcgctl stat --json` and the human table over
trees of 100, 1,000 and 5,000 groups, against `python3 -c "import click"`
plus `cat` of the very files the stat reads (found with an audit hook).

    time(stat) <= 3 x (time(import click) + time(xargs -0 cat FILES))
    cost linear in the number of groups (marginal cost per group stays flat)
    peak RSS of stat --json over 5,000 groups < 64 MiB

On a fake v1 tree (init-fake + create, with a kernel-sized memory.stat in
every group) and on real v1 groups made under a child of our own memory
cgroup (removed afterwards).

    python3 bench/many_groups.py [--sizes 100,1000,5000] [--kernel-sizes ...] [--no-kernel]
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

GOAL_RATIO = 3.0
GOAL_RSS_MIB = 64
LINEAR_TOLERANCE = 1.5  # marginal cost per group may grow this much from the smallest to the largest step


def stat_commands(root: Path, n: int, opts, with_tty: bool) -> dict:
    """label -> [stat --json, table piped, (table pty)] for each package variant."""
    prefix = c.memcgctl_argv()
    found = {}
    for label, pythonpath in c.variants(opts):
        env = c.child_env({"MEMCGCTL_ROOT": str(root)}, pythonpath)
        cmds = [c.Cmd(f"stat --json, {n} groups", [*prefix, "stat", "--json"], env),
                c.Cmd(f"stat (table, piped), {n} groups", [*prefix, "stat"], env)]
        if with_tty:
            cmds.append(c.Cmd(f"stat (table, pty), {n} groups", [*prefix, "stat"], env, tty=True))
        found[label] = cmds
    return found


def report_memory(figure: str, cmd: c.Cmd) -> None:
    """Goal 4: peak RSS of CMD, with python3 -c 'import click' for scale."""
    click_kib = c.peak_rss_kib([c.PYTHON, "-c", "import click"], c.child_env())
    c.report(figure, c.peak_rss_kib(cmd.argv, cmd.env) / 1024, click_kib / 1024, unit="MiB", goal=GOAL_RSS_MIB,
             goal_kind="max", note="baseline: python3 -c 'import click'")


def bench_tree(where: str, root: Path, grow, sizes: list[int], opts, scratch: Path) -> None:
    c.heading(f"many groups on {where}: median of {opts.tree_runs} runs, interleaved")
    click = c.Cmd("python3 -c 'import click'", [c.PYTHON, "-c", "import click"], c.child_env())
    have = 0
    timings = {}  # (label, command index) -> [(n, seconds)]
    cat_timings = []
    for n in sizes:
        grow(have, n)
        have = n
        files, opens = c.files_read(root, ["stat", "--json"], c.child_env())
        table_files, _ = c.files_read(root, ["stat"], c.child_env())
        if set(table_files) != set(files):
            print(f"note: the table reads {len(table_files)} files, --json {len(files)}")
        cat = c.cat_command(files, scratch)
        by_variant = stat_commands(root, n, opts, with_tty=n <= 1000 or not opts.skip_big_tty)
        click.samples.clear()
        c.measure([click, cat, *[cmd for cmds in by_variant.values() for cmd in cmds]], opts.tree_runs)
        baseline = click.median + cat.median
        print(f"-- {n} groups: stat reads {len(files)} files ({opens} opens); "
              f"import click {c.ms(click.median):.1f} ms + cat {c.ms(cat.median):.1f} ms")
        cat_timings.append((n, cat.median))
        for label, cmds in by_variant.items():
            tag = f"[{label}] " if label else ""
            for cmd in cmds:
                c.compare(f"{tag}{cmd.name}", cmd, click, goal=GOAL_RATIO, baseline_seconds=baseline)
                timings.setdefault((label, cmd.name.rsplit(", ", 1)[0]), []).append((n, cmd.median))
            if n == max(sizes):
                report_memory(f"{tag}peak RSS of stat --json, {n} groups", cmds[0])
        if len(by_variant) == 2:
            before, after = by_variant.values()
            for old, new in zip(before, after, strict=True):
                c.compare(f"after/before {new.name}", new, old)
    if len(sizes) >= 3:
        print("-- linearity: marginal cost per group between tree sizes (us/group)")
        for (label, name), points in [(("", "cat"), cat_timings), *timings.items()]:
            steps = [(b[1] - a[1]) / (b[0] - a[0]) * 1e6 for a, b in zip(points, points[1:], strict=False)]
            growth = steps[-1] / steps[0] if steps[0] > 0 else float("inf")
            tag = f"[{label}] " if label else ""
            verdict = "linear" if name == "cat" or growth <= LINEAR_TOLERANCE else "NOT LINEAR"
            print(f"{tag}{name:<22} " + "  ".join(f"{a[0]}->{b[0]}: {s:7.1f}" for (a, b, s) in
                                                  zip(points, points[1:], steps, strict=False))
                  + f"   last/first {growth:4.2f} {verdict}")
            c.RESULTS.append({"figure": f"{tag}linearity {name}", "steps_us_per_group": steps, "growth": growth,
                              "verdict": verdict})


def run(opts) -> None:
    with contextlib.ExitStack() as stack:
        scratch = stack.enter_context(c.scratch_dir("groups"))
        fake_sizes = c.sizes(opts.sizes)
        if fake_sizes:
            root = c.build_fake_tree(scratch / "v1", 1, 0)
            bench_tree("a fake v1 tree", root, lambda have, want: c.grow_fake_tree(root, have, want), fake_sizes,
                       opts, scratch)
        kernel_sizes = c.sizes(opts.kernel_sizes)
        reason = "--no-kernel" if opts.no_kernel else c.kernel_skip_reason()
        if reason:
            print(f"\nreal kernel: skipped ({reason})")
        elif kernel_sizes:
            root = stack.enter_context(c.kernel_root("groups"))
            bench_tree(f"the real kernel (cgroup v1, {root})", root,
                       lambda have, want: c.grow_kernel_tree(root, have, want), kernel_sizes, opts, scratch)


def main(argv=None) -> None:
    c.script_main(run, __doc__, argv)


if __name__ == "__main__":
    main()
