"""Crash safety for changes that must be undone: a per-group lock and a journal.

A v1 shrink lowers memory.limit_in_bytes for a moment.  Before it does, the
limit to restore is recorded here (written atomically and fsynced); the
record is removed once the limit is back.  If memcgctl dies in between
(SIGKILL, OOM, a power cut of the shell), the record stays, and the next
memcgctl that takes the group's lock finds it and writes the limit back.

The lock (flock on a file per group) also serialises memcgctl processes that
change the same group, so one shrink never "restores" over another's change.
A lock is released by the kernel when its holder dies, so a record found
while holding the lock always belongs to a dead process.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from pathlib import Path
from typing import NamedTuple

from .errors import Busy, MemcgError, error_from_oserror

DEFAULT_DIRECTORY = Path("/run/memcgctl")


def default_directory() -> Path:
    """/run/memcgctl for root; for a user (of a delegated subtree) their own
    runtime directory, so that they can lock and journal too.  Both are
    emptied at boot, when every cgroup limit is gone anyway."""
    if os.geteuid() == 0:
        return DEFAULT_DIRECTORY
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "memcgctl" if runtime else Path(f"/tmp/memcgctl-{os.geteuid()}")
LOCK_POLL_SECONDS = 0.01


# json and fcntl are imported where used: every command opens the journal (to
# recover), fewer lock, few record anything.


def _sha256(data: bytes):
    """hashlib.sha256, without loading OpenSSL (~2.5 ms of every locking
    command) where the interpreter has its own SHA-256, as random.py does."""
    try:
        from _sha2 import sha256  # Python 3.12+
    except ImportError:
        try:
            from _sha256 import sha256  # Python 3.10 and 3.11
        except ImportError:
            from hashlib import sha256
    return sha256(data)


class PendingRestore(NamedTuple):
    """A write that a dead memcgctl left undone: VALUE back into PATH."""

    path: Path
    value: str
    pid: int
    started: float


class Journal:
    """The journal directory (see default_directory(), or MEMCGCTL_JOURNAL_DIR)."""

    def __init__(self, directory: Path | str | None = None):
        self.directory = Path(directory) if directory else default_directory()

    def _key(self, group_path: Path) -> str:
        return _sha256(str(group_path).encode("utf-8", "surrogateescape")).hexdigest()[:32]

    def _record_path(self, group_path: Path) -> Path:
        return self.directory / f"{self._key(group_path)}.restore"

    def _ensure_directory(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as err:
            raise error_from_oserror(err, "create journal directory", str(self.directory)) from err

    # --- the lock -------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, group_path: Path, timeout: float | None = None):
        """Hold GROUP_PATH's lock for the block; wait up to TIMEOUT seconds
        (None: as long as it takes), then Busy (75)."""
        self._ensure_directory()
        lock_path = self.directory / f"{self._key(group_path)}.lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as err:
            raise error_from_oserror(err, "open lock file", str(lock_path)) from err
        try:
            self._acquire(fd, timeout, group_path)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    @staticmethod
    def _acquire(fd: int, timeout: float | None, group_path: Path) -> None:
        import fcntl

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise Busy("lock group", f"another memcgctl is changing it (waited {timeout:g} s)",
                               str(group_path)) from None
                time.sleep(LOCK_POLL_SECONDS)

    # --- records --------------------------------------------------------------

    def record(self, group_path: Path, restore_path: Path, value: str) -> None:
        """Durably note that VALUE must go back into RESTORE_PATH."""
        self._ensure_directory()
        import json

        record_path = self._record_path(group_path)
        temporary = record_path.with_suffix(f".tmp{os.getpid()}")
        content = json.dumps({"path": str(restore_path), "value": value, "pid": os.getpid(),
                              "started": time.time()})
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, content.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, record_path)
            self._sync_directory()
        except OSError as err:
            raise error_from_oserror(err, "write journal", str(record_path)) from err

    def clear(self, group_path: Path) -> None:
        """The restore is done: forget it."""
        try:
            os.unlink(self._record_path(group_path))
            self._sync_directory()
        except FileNotFoundError:
            pass
        except OSError as err:
            raise error_from_oserror(err, "clear journal", str(self._record_path(group_path))) from err

    def pending(self, group_path: Path) -> PendingRestore | None:
        """The restore a dead memcgctl left for GROUP_PATH, if any."""
        return self._read(self._record_path(group_path))

    def all_pending(self) -> list[tuple[Path, PendingRestore]]:
        """Every restore left behind: (group path, restore)."""
        found = []
        with contextlib.suppress(OSError):  # no directory, or not ours to read
            names = sorted(name for name in os.listdir(self.directory) if name.endswith(".restore"))
            for record_path in [self.directory / name for name in names]:
                restore = self._read(record_path)
                if restore is not None:
                    found.append((restore.path.parent, restore))
        return found

    def _read(self, record_path: Path) -> PendingRestore | None:
        try:
            text = record_path.read_text()
            import json  # only when there is a record

            data = json.loads(text)
            return PendingRestore(Path(data["path"]), str(data["value"]), int(data["pid"]), float(data["started"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise MemcgError("read journal", f"unreadable record ({err})", str(record_path)) from None

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        except OSError as err:
            if err.errno != errno.EINVAL:  # some filesystems cannot fsync a directory
                raise
        finally:
            os.close(fd)


# --- using it: what the operations call ------------------------------------------


@contextlib.contextmanager
def exclusive(backend, group_path: Path, timeout: float | None = None):
    """Hold the group's lock for a change, after undoing what a dead memcgctl
    left behind in it.  Without a journal (library default), no locking."""
    if backend.journal is None:
        yield
        return
    with backend.journal.locked(group_path, timeout):
        _restore_pending(backend, group_path, backend.journal.pending(group_path))
        yield


def recover(backend, strict: bool = True) -> None:
    """Undo every change left behind under BACKEND's root by a memcgctl that
    died, skipping groups a live memcgctl holds; see backend.recovered.
    Not STRICT: a restore that fails (say, for want of permission) is left
    for a later memcgctl instead of raising."""
    if backend.journal is None:
        return
    for group_path, _ in backend.journal.all_pending():
        if not _is_under(group_path, backend.fs.root):
            continue
        try:
            with backend.journal.locked(group_path, timeout=0):
                _restore_pending(backend, group_path, backend.journal.pending(group_path))
        except Busy:
            continue  # a live memcgctl holds it and will restore it itself
        except MemcgError:
            if strict:
                raise


def _restore_pending(backend, group_path: Path, pending: PendingRestore | None) -> None:
    if pending is None:
        return
    from .fs import Write

    if pending.path.parent.is_dir():
        backend.fs.apply(Write(pending.path, pending.value))
    backend.journal.clear(group_path)  # a group deleted since has nothing to restore
    backend.recovered.append(pending)


def _is_under(path: Path, root: Path) -> bool:
    return path == root or str(path).startswith(str(root) + os.sep)
