"""Running memcgctl on the managed host for the memcgctl.memcg modules.

The modules do no cgroup work themselves: every read and change is a
memcgctl command line (`stat --json`, `limit`, `create`, `shrink`, and with
-n --plan-json their dry runs, the plan as data), so they behave exactly as
memcgctl does on that host.  A
failing command fails the task with memcgctl's own message and exit code.
"""

from __future__ import annotations

import json
import os
import shlex

# The modules' size options -> how `memcgctl limit` takes them (None: the
# positional SIZE).  The names are those of `memcgctl stat --json`.
LIMIT_OPTIONS = {"limit": None, "soft_limit": "--soft", "high": "--high", "low": "--low", "min": "--min",
                 "swap_limit": "--swap"}

# The kernel files a `memcgctl -n limit` plan writes, by limit name (v1, v2).
LIMIT_BY_FILE = {
    "memory.limit_in_bytes": "limit",
    "memory.soft_limit_in_bytes": "soft_limit",
    "memory.memsw.limit_in_bytes": "memsw",
    "memory.max": "limit",
    "memory.high": "high",
    "memory.low": "low",
    "memory.min": "min",
    "memory.swap.max": "swap_limit",
}
UNLIMITED_TEXTS = ("-1", "max")

COMMON_ARGUMENTS = {
    "name": {"type": "str", "required": True},
    "root": {"type": "path"},
    "executable": {"type": "path"},
}


class Memcgctl:
    """memcgctl on this host, for MODULE (an AnsibleModule)."""

    def __init__(self, module, root: str | None = None):
        """ROOT: another cgroup root than the task's (a fake tree)."""
        self.module = module
        self.executable = module.params.get("executable") or module.get_bin_path("memcgctl", required=True)
        self.root = root or module.params.get("root")

    def argv(self, args: list, dry_run: bool = False) -> list:
        prefix = [self.executable]
        if self.root:
            prefix += ["--root", self.root]
        if dry_run:  # the plan as one JSON document, not shell lines to parse
            prefix += ["-n", "--plan-json"]
        return prefix + [str(arg) for arg in args]

    def run(self, args: list, dry_run: bool = False, allowed=(0,)) -> tuple:
        """(rc, stdout, stderr) of memcgctl ARGS; any rc not in ALLOWED fails the task."""
        argv = self.argv(args, dry_run)
        rc, out, err = self.module.run_command(argv, environ_update={"LC_ALL": "C.UTF-8"})
        if rc not in allowed:
            self.fail(argv, rc, out, err)
        return rc, out, err

    def fail(self, argv: list, rc: int, out: str, err: str, **extra) -> None:
        lines = [line for line in err.splitlines() if line.strip()]
        message = lines[-1] if lines else f"memcgctl exited with status {rc}"
        self.module.fail_json(msg=message, rc=rc, stdout=out, stderr=err, cmd=shlex.join(argv), **extra)

    def stat(self, name: str) -> dict | None:
        """The group's `stat --json` object, or None if there is no such group."""
        rc, out, _ = self.run(["stat", "--json", "--", name], allowed=(0, 66))
        if rc == 66:
            return None
        return json.loads(out)[0]


def planned_steps(dry_run_output: str) -> list:
    """The steps of a `memcgctl -n --plan-json` plan, those inside a reclaim
    step included (dicts with "action", "path", "value")."""
    steps = []
    for step in json.loads(dry_run_output)["plan"]:
        steps.append(step)
        steps.extend(step.get("writes", ()))
    return steps


def planned_writes(dry_run_output: str) -> list:
    """[(file name, value)] of the writes a dry run's plan makes."""
    return [(os.path.basename(step["path"]), step["value"]) for step in planned_steps(dry_run_output)
            if step["action"] == "write"]


def kernel_bytes(text: str) -> int | None:
    """A planned limit as the kernel will hold it: None for unlimited, else
    rounded down to whole pages, as the kernel stores limits."""
    if text in UNLIMITED_TEXTS:
        return None
    page = os.sysconf("SC_PAGE_SIZE")
    return int(text) // page * page


def same_limit(planned: int | None, current: int | None) -> bool:
    # A fake tree (--root of plain files) keeps a value unrounded.
    if planned is None or current is None:
        return planned is current
    page = os.sysconf("SC_PAGE_SIZE")
    return current // page * page == planned
