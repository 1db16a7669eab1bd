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
import stat
import time
from pathlib import Path
from typing import NamedTuple

from ..errors import LockHeld, MemcgError, PermissionDenied, error_from_oserror
from .deadline import NEVER, Deadline

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
        if not self._trusted():
            raise PermissionDenied("use journal directory", "it must be a directory of yours that no one else "
                                   "can write (someone may have planted it)", str(self.directory))

    def trusted_directory(self) -> Path:
        """The journal directory, created if need be and checked to be ours
        alone: for other files memcgctl keeps beside the records (the
        daemon's lock and counters)."""
        self._ensure_directory()
        return self.directory

    def _trusted(self) -> bool:
        """Whether the directory is ours alone: records in it say what to write
        where, so a directory others can write (say /tmp/memcgctl-UID made by
        someone else first) must not be used."""
        try:
            status = os.lstat(self.directory)
        except OSError:
            return False
        return stat.S_ISDIR(status.st_mode) and status.st_uid == os.geteuid() and not status.st_mode & 0o022

    # --- the lock -------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, group_path: Path, deadline: Deadline = NEVER):
        """Hold GROUP_PATH's lock for the block; wait until DEADLINE, then
        LockHeld (75).  A passed deadline still makes one attempt."""
        self._ensure_directory()
        lock_path = self.directory / f"{self._key(group_path)}.lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as err:
            raise error_from_oserror(err, "open lock file", str(lock_path)) from err
        try:
            self._acquire(fd, deadline, group_path)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    @staticmethod
    def _acquire(fd: int, deadline: Deadline, group_path: Path) -> None:
        import fcntl

        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass  # held by another memcgctl
            except OSError as err:
                raise error_from_oserror(err, "lock group", str(group_path)) from err
            if deadline.expired:
                raise LockHeld("lock group", "another memcgctl is changing it", str(group_path))
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
        if not self._trusted():
            return []
        try:
            names = sorted(name for name in os.listdir(self.directory) if name.endswith(".restore"))
        except OSError:
            return []  # not ours to read
        found = []
        for name in names:
            with contextlib.suppress(MemcgError):  # unreadable or corrupt: left for a person to look at
                restore = self._read(self.directory / name)
                # A record counts only under the name of the group it restores.
                if restore is not None and name == self._record_path(restore.path.parent).name:
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
def exclusive(backend, group_path: Path, deadline: Deadline = NEVER):
    """Hold the group's lock for a change, after undoing what a dead memcgctl
    left behind in it.  Without a journal (library default), no locking."""
    if backend.journal is None:
        yield
        return
    with backend.journal.locked(group_path, deadline):
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
        if not _is_under(Path(os.path.realpath(group_path)), backend.fs.root):
            continue
        try:
            with backend.journal.locked(group_path, Deadline(0)):
                _restore_pending(backend, group_path, backend.journal.pending(group_path))
        except LockHeld:
            continue  # a live memcgctl holds it and will restore it itself
        except MemcgError:
            if strict:
                raise


def plan_recover(backend) -> list:
    """The writes recover() would make (for a dry run)."""
    from ..kernel.fs import Write

    if backend.journal is None:
        return []
    return [Write(pending.path, pending.value) for group_path, pending in backend.journal.all_pending()
            if _is_restorable(pending, group_path, backend.fs.root) and group_path.is_dir()]


def _restore_pending(backend, group_path: Path, pending: PendingRestore | None) -> None:
    if pending is None:
        return
    if not _is_restorable(pending, group_path, backend.fs.root):
        raise MemcgError("recover", f"the journal record does not match its group ({pending.path})",
                         str(backend.journal.directory))
    from ..kernel.fs import Write

    if pending.path.parent.is_dir():  # a group deleted since has nothing to restore
        backend.fs.apply(Write(pending.path, pending.value))
        backend.recovered.append(pending)
    backend.journal.clear(group_path)


def _is_restorable(pending: PendingRestore, group_path: Path, root: Path) -> bool:
    """A record may only write a memory.* file of its own group, under ROOT."""
    real_group = Path(os.path.realpath(group_path))
    return pending.path.parent == group_path and pending.path.name.startswith("memory.") and _is_under(real_group, root)


def _is_under(path: Path, root: Path) -> bool:
    return path == root or str(path).startswith(str(root) + os.sep)
