"""Running memcgctl as `nobody`, the attacker (or the unprivileged user) of
the security tests: setpriv --reuid=nobody --regid=nogroup --clear-groups.

nobody cannot read this tree or the test's interpreter (under /root), so the
package and click are copied into a directory of their own that nobody can
read, and run by the system's python3.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import click
import pytest

from conftest import PROJECT

NOBODY = pwd.getpwnam("nobody")
SETPRIV = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
# A python3 that nobody may run (the test's own may live under /root).
SYSTEM_PYTHON = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.access(p, os.X_OK)),
                     sys.executable)


def needs_root_and_setpriv():
    return pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                              reason="needs root and setpriv (util-linux) to act as nobody")


def readable_copy() -> Path:
    """memcgctl and click, copied where nobody can read them."""
    directory = Path(tempfile.mkdtemp(prefix="memcgctl-nobody-code-"))
    directory.chmod(0o755)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(PROJECT / "memcgctl", directory / "memcgctl", ignore=ignore)
    shutil.copytree(Path(click.__file__).parent, directory / "click", ignore=ignore)
    import humanfriendly  # sizes in messages (rich only renders for a terminal)

    shutil.copytree(Path(humanfriendly.__file__).parent, directory / "humanfriendly", ignore=ignore)
    for path in directory.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return directory


def nobody_directory(parent: Path | None = None, mode: int = 0o755) -> Path:
    """A new directory that nobody owns (the attacker's, or the user's)."""
    directory = Path(tempfile.mkdtemp(prefix="memcgctl-nobody-", dir=parent))
    os.chown(directory, NOBODY.pw_uid, NOBODY.pw_gid)
    directory.chmod(mode)
    return directory


def as_nobody(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """ARGV run as nobody (a shell command: ["sh", "-c", ...])."""
    return subprocess.run([*SETPRIV, *argv], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, **kwargs)


def memcgctl_as_nobody(code: Path, *args: str, env: dict | None = None, cwd: Path | None = None):
    """memcgctl ARGS as nobody, from the readable copy CODE."""
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": "1",
                   "LC_ALL": "C.UTF-8", **(env or {})}
    return as_nobody([SYSTEM_PYTHON, "-m", "memcgctl", *args], env=environment, cwd=cwd or "/")


def remove_tree(path: Path) -> None:
    """rm -rf PATH, whatever nobody left in it (modes included)."""
    if not path.exists() and not path.is_symlink():
        return
    for each in [path, *path.rglob("*")] if path.is_dir() and not path.is_symlink() else []:
        if each.is_dir() and not each.is_symlink():
            each.chmod(stat.S_IRWXU)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink()
