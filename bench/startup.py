"""Goal 1, start-up: memcgctl on one group against `python3 -c "import click"`.

    stat GROUP --json, limit GROUP 400M                         <= 1.15x
    a completion request                                        <= 1.25x
    stat GROUP (the human table), piped and on a pty            <= 2x

Each way of starting memcgctl (python3 -m memcgctl, the console script pip
generated, the console script found on PATH, a pyenv shim here) is compared
with the same python3 started the same way.  The group lives on the real
kernel (a v1 group under our own memory cgroup) when possible, else on a fake
v1 tree; a fake v2 tree is measured too.

    python3 bench/startup.py [--runs 15] [--compare /tmp/memcgctl-try]
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

CHECKS = {  # command -> what its output must contain (the run did what it should)
    "stat web --json": b'"group": "web"',
    "limit web 400M": b"",
    "complete `memcgctl stat we`": b"plain,web",
    "stat web (table, piped)": b"web",
    "stat web (table, pty)": b"web",
}
GOALS = {"stat web --json": 1.15, "limit web 400M": 1.15, "complete `memcgctl stat we`": 1.25,
         "stat web (table, piped)": 2.0, "stat web (table, pty)": 2.0}


def commands(prefix: list, root: Path, pythonpath: str | None) -> list[c.Cmd]:
    on_root = c.child_env({"MEMCGCTL_ROOT": str(root)}, pythonpath)
    completing = c.child_env({"MEMCGCTL_ROOT": str(root), **c.completion_env("memcgctl stat we", 2)}, pythonpath)
    return [
        c.Cmd("stat web --json", [*prefix, "stat", "web", "--json"], on_root),
        c.Cmd("limit web 400M", [*prefix, "limit", "web", "400M"], on_root),
        c.Cmd("complete `memcgctl stat we`", prefix, completing),
        c.Cmd("stat web (table, piped)", [*prefix, "stat", "web"], on_root),
        c.Cmd("stat web (table, pty)", [*prefix, "stat", "web"], on_root, tty=True),
    ]


def check_outputs(cmds: list[c.Cmd]) -> None:
    for cmd in cmds:
        _, _, output = c.run_once(cmd)
        if CHECKS.get(cmd.name, b"") not in output:
            raise SystemExit(f"{cmd.name}: unexpected output {output[:300]!r}")


def bench_root(root: Path, where: str, opts, entries: dict) -> None:
    c.heading(f"start-up on {where}: median of {opts.runs} runs, interleaved")
    for entry, (prefix, baseline_argv) in entries.items():
        baseline = c.Cmd("python3 -c 'import click'", baseline_argv, c.child_env())
        baseline_tty = c.Cmd("python3 -c 'import click' (pty)", baseline_argv, c.child_env(), tty=True)
        by_variant = {label: commands(prefix, root, path) for label, path in c.variants(opts)}
        every = [baseline, baseline_tty] + [cmd for cmds in by_variant.values() for cmd in cmds]
        for cmds in by_variant.values():
            check_outputs(cmds)
        c.measure(every, opts.runs)
        print(f"-- {entry}: {' '.join(prefix)}")
        c.report("baseline python3 -c 'import click'", c.ms(baseline.median), None)
        for label, cmds in by_variant.items():
            for cmd in cmds:
                base = baseline_tty if cmd.tty else baseline
                tag = f"[{label}] " if label else ""
                c.compare(f"{tag}{cmd.name}", cmd, base, goal=GOALS[cmd.name])
        if len(by_variant) == 2:
            before, after = by_variant.values()
            for old, new in zip(before, after, strict=True):
                c.compare(f"after/before {new.name}", new, old)


def run(opts) -> None:
    entries = c.entry_points(opts.entries)
    with contextlib.ExitStack() as stack:
        scratch = stack.enter_context(c.scratch_dir("startup"))
        if not opts.no_kernel and c.kernel_skip_reason() is None:
            root = stack.enter_context(c.kernel_root("startup"))
            (root / "web").mkdir()
            bench_root(root, f"the real kernel (cgroup v1, {root})", opts, entries)
        else:
            root = c.build_fake_tree(scratch / "v1", 1, 0)
            c.run_once(c.Cmd("create", [*c.memcgctl_argv(), "--root", str(root), "create", "web"]))
            bench_root(root, "a fake v1 tree", opts, entries)
        root = c.build_fake_tree(scratch / "v2", 2, 0)
        c.run_once(c.Cmd("create", [*c.memcgctl_argv(), "--root", str(root), "create", "web"]))
        first = next(iter(entries))
        bench_root(root, "a fake v2 tree", opts, {first: entries[first]})


def main(argv=None) -> None:
    c.script_main(run, __doc__, argv)


if __name__ == "__main__":
    main()
