"""Goal 3, shrink: reclaim 1 GiB of page cache from a real v1 group down to
100 MiB, with memcgctl and with the bare kernel operation, on groups prepared
the same way each time.

    memcgctl --root R shrink G 100M      <= 1.2 x   sh -c 'echo 104857600 > L; echo PREVIOUS > L'
    usage afterwards within [target - 5%, target]

Each round fills the group with `memcgctl --root R run G -- dd if=/dev/zero
of=FILE bs=1M count=1024`, then (unless --dirty) calls `sync` so that both
sides reclaim clean page cache, then runs one method; FILE is deleted after
each round.  Methods alternate in a rotating order.  The same is done inside
one Python process (memcgctl.operations.shrink() against os.write of the two values),
to show the cost of the reclaim without interpreter start-up.

    python3 bench/shrink.py [--shrink-rounds 5] [--dirty] [--compare DIR]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

FILL_MIB = 1024
TARGET = 100 * c.MIB
GOAL_RATIO = 1.2
LIMIT = "memory.limit_in_bytes"
USAGE = "memory.usage_in_bytes"

IN_PROCESS = r"""
import os, sys, time
from pathlib import Path
group, method, target = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
if method == "library":
    from memcgctl import open_hierarchy, parse_target, shrink
    backend = open_hierarchy(group.parent)
    handle = backend.group(group.name)
    started = time.perf_counter()
    result = shrink(backend, handle, parse_target(str(target)))
    elapsed = time.perf_counter() - started
    assert result.reached, result
else:
    limit = group / "memory.limit_in_bytes"
    previous = limit.read_bytes().strip()
    started = time.perf_counter()
    fd = os.open(limit, os.O_WRONLY)
    os.write(fd, str(target).encode())
    os.close(fd)
    fd = os.open(limit, os.O_WRONLY)
    os.write(fd, previous)
    os.close(fd)
    elapsed = time.perf_counter() - started
print(elapsed)
"""


def read_int(path: Path) -> int:
    return int(path.read_text())


def fill(root: Path, group: str, data: Path, dirty: bool) -> int:
    """Charge 1 GiB of page cache to GROUP (dd from inside it); its usage then."""
    c.run_once(c.Cmd("fill", [*c.memcgctl_argv(), "--root", str(root), "run", group, "--", "dd", "if=/dev/zero",
                              f"of={data}", "bs=1M", f"count={FILL_MIB}", "status=none"], c.child_env()))
    if not dirty:
        subprocess.run(["sync"], check=True)
    return read_int(root / group / USAGE)


def empty(root: Path, group: str, data: Path) -> None:
    """Delete the file (its page cache goes with it) and wait for usage to settle."""
    data.unlink(missing_ok=True)
    for _ in range(100):
        if read_int(root / group / USAGE) < 32 * c.MIB:
            return
        time.sleep(0.05)


def methods(root: Path, group: str, opts) -> list[tuple[str, object]]:
    """(name, how): a Cmd timed as a whole process, or ('in-process', method)."""
    limit = root / group / LIMIT
    previous = limit.read_text().strip()
    bare = c.Cmd("bare: sh -c 'echo 100M > limit; echo previous > limit'",
                 ["sh", "-c", f'echo {TARGET} > "$1"; echo {previous} > "$1"', "sh", str(limit)], c.child_env())
    found = [(bare.name, bare)]
    for label, pythonpath in c.variants(opts):
        tag = f"[{label}] " if label else ""
        env = c.child_env(None, pythonpath)
        found.append((f"{tag}memcgctl --root R shrink G 100M",
                      c.Cmd("cli", [*c.memcgctl_argv(), "--root", str(root), "shrink", group, str(TARGET)], env)))
    found.append(("in-process: os.write target, then previous", ("in-process", "bare", None)))
    for label, pythonpath in c.variants(opts):
        tag = f"[{label}] " if label else ""
        found.append((f"{tag}in-process: memcgctl.operations.shrink()", ("in-process", "library", pythonpath)))
    return found


def run_method(how, root: Path, group: str) -> float:
    if isinstance(how, c.Cmd):
        return c.run_once(how)[0]
    _, method, pythonpath = how
    _, _, output = c.run_once(c.Cmd("in-process", [c.PYTHON, "-c", IN_PROCESS, str(root / group), method,
                                                   str(TARGET)], c.child_env(None, pythonpath)))
    return float(output.split()[-1])


def run(opts) -> None:
    reason = "--no-kernel" if opts.no_kernel else c.kernel_skip_reason()
    if reason:
        print(f"\nshrink: skipped ({reason})")
        return
    kind = "dirty" if opts.dirty else "clean (sync before)"
    c.heading(f"shrink 1 GiB of {kind} page cache to 100 MiB on the real kernel: median of "
              f"{opts.shrink_rounds} rounds")
    data = Path(tempfile.gettempdir()) / f"memcgctl-bench-shrink-{os.getpid()}.dat"
    with c.kernel_root("shrink") as root:
        group = "filled"
        (root / group).mkdir()
        found = methods(root, group, opts)
        times = {name: [] for name, _ in found}
        afters = {name: [] for name, _ in found}
        befores = []
        # The start-up every Python command pays, timed in the same rounds.
        click = c.Cmd("python3 -c 'import click'", [c.PYTHON, "-c", "import click"], c.child_env())
        try:
            for round_number in range(opts.shrink_rounds):
                shift = round_number % len(found)
                for name, how in found[shift:] + found[:shift]:
                    befores.append(fill(root, group, data, opts.dirty))
                    times[name].append(run_method(how, root, group))
                    afters[name].append(read_int(root / group / USAGE))
                    empty(root, group, data)
                    click.samples.append(c.run_once(click)[0])
        finally:
            data.unlink(missing_ok=True)
    print(f"usage before each shrink: {min(befores) / c.MIB:.0f} to {max(befores) / c.MIB:.0f} MiB")
    bare_name, in_process_bare = found[0][0], "in-process: os.write target, then previous"
    for name, _ in found:
        in_process = name.startswith(("in-process", "[before] in-process", "[after] in-process"))
        baseline = in_process_bare if in_process else bare_name
        lo, hi = min(afters[name]), max(afters[name])
        ok = all(TARGET * 0.95 <= after <= TARGET for after in afters[name])
        note = (f"usage after {lo / c.MIB:.1f}..{hi / c.MIB:.1f} MiB, "
                f"{'within' if ok else 'NOT within'} [95 MiB, 100 MiB]")
        if name == baseline:
            c.report(name, c.ms(statistics.median(times[name])), None, note=note)
        else:
            c.report(name, c.ms(statistics.median(times[name])), c.ms(statistics.median(times[baseline])),
                     goal=GOAL_RATIO, note=note)
        c.RESULTS[-1]["within_target"] = ok
    start_up = statistics.median(click.samples)
    bare = statistics.median(times[bare_name])
    c.report("python3 -c 'import click' (start-up alone)", c.ms(start_up), c.ms(bare),
             note="the floor of any click command, against the bare operation")
    for name, _ in found[1:]:
        if "memcgctl --root" in name:
            c.report(f"{name} minus the start-up", c.ms(statistics.median(times[name]) - start_up), c.ms(bare),
                     note="diagnostic: the shrink itself, without python3 and click starting")


def main(argv=None) -> None:
    c.script_main(run, __doc__, argv)


if __name__ == "__main__":
    main()
