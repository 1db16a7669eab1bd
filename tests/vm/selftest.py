#!/usr/bin/env python3
"""Check that the cgroup v2 test VM works: python3 tests/vm/selftest.py

Boots the VM a few times (about 3-5 s each under TCG) and checks: the memory
controller is there, exit codes come back, memory.reclaim drops page cache
on the ext4 /tmp, Python imports from the host work, pytest runs.
Exits 0 when all pass.  (Not named test_*.py so pytest does not collect it.)
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import run_in_vm  # noqa: E402

RECLAIM = r"""
set -e
mkdir /sys/fs/cgroup/t
echo $$ > /sys/fs/cgroup/t/cgroup.procs
dd if=/dev/zero of=/tmp/f bs=1M count=200 status=none
before=$(cat /sys/fs/cgroup/t/memory.current)
echo 100M > /sys/fs/cgroup/t/memory.reclaim
after=$(cat /sys/fs/cgroup/t/memory.current)
echo "before=$before after=$after"
[ $((before - after)) -ge $((90 * 1024 * 1024)) ]
"""

CHECKS = [
    ("memory controller", ["cat", "/sys/fs/cgroup/cgroup.controllers"],
     lambda rc, out: rc == 0 and "memory" in out.split()),
    ("subtree +memory", ["cat", "/sys/fs/cgroup/cgroup.subtree_control"],
     lambda rc, out: rc == 0 and "memory" in out.split()),
    ("exit code", ["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7"],
     lambda rc, out: rc == 7 and "to-stdout" in out and "to-stderr" in out),
    ("memory.reclaim", ["sh", "-c", RECLAIM],
     lambda rc, out: rc == 0 and "after=" in out),
    ("python import click", [sys.executable, "-c", "import click; print('click ok')"],
     lambda rc, out: rc == 0 and "click ok" in out),
    ("pytest --version", [sys.executable, "-m", "pytest", "--version"],
     lambda rc, out: rc == 0 and "pytest" in out),
    ("env + cwd", ["sh", "-c", 'echo "$MEMCGCTL_IN_VM $FOO $(pwd)"'],
     lambda rc, out: rc == 0 and out.split() == ["1", "bar", "/"]),
    # --init systemd: PID 1 is systemd, /etc writable, the command's own
    # delegated leaf group, its exit status back (one boot, ~40 s).
    ("init systemd", ["sh", "-c", 'touch /etc/written && echo "$(cat /proc/1/comm) $(systemctl is-active '
                                  'multi-user.target) $(cat /proc/self/cgroup)"; exit 3'],
     lambda rc, out: rc == 3 and out.split() == ["systemd", "active",
                                                 "0::/system.slice/memcgctl-vm-command.service/command"]),
]
INITS = {"init systemd": "systemd"}


def main():
    failed = 0
    for name, argv, ok in CHECKS:
        timings = {}
        env = {"FOO": "bar"} if name == "env + cwd" else None
        cwd = "/" if name == "env + cwd" else None
        t0 = time.monotonic()
        rc, out = run_in_vm(argv, timeout=300, env=env, cwd=cwd, timings=timings,
                            init=INITS.get(name, "busybox"))
        good = ok(rc, out)
        failed += not good
        last_line = out.strip().splitlines()[-1] if out.strip() else ""
        print(f"{'ok' if good else 'FAIL':<4} {name:<22} rc={rc:<3d} boot {timings.get('ready', -1):.1f}s "
              f"total {time.monotonic() - t0:.1f}s  {last_line}")
        if not good:
            print(out)
    print(f"{len(CHECKS) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
