"""One daemon per cgroup root: a flock held for the daemon's life, in the
journal's trusted directory, holding the holder's pid so that a second
daemon can name it."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from ..errors import Busy


def root_key(root: Path) -> str:
    """ROOT as a file name: the daemon's files of one root are daemon-<key>.*"""
    return hashlib.sha256(str(root).encode("utf-8", "surrogateescape")).hexdigest()[:32]


def lock_name(root: Path) -> str:
    return f"daemon-{root_key(root)}.lock"


@contextlib.contextmanager
def one_daemon_per_root(journal, root: Path):
    """Hold ROOT's daemon lock for the block; Busy (75) naming the pid of the
    daemon that holds it.  The kernel releases it when we die, even by SIGKILL."""
    import fcntl

    fd = journal.open_file(lock_name(root), "open daemon lock")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise Busy("start daemon", f"another memcgctl daemon (pid {holder}) runs on this root",
                       str(root)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
