"""Crash safety for changes that must be undone: a per-group lock and a journal.

A v1 shrink lowers memory.limit_in_bytes for a moment.  Before it does, the
limit to restore and the lowered value it is about to write are recorded here
(written atomically and fsynced); the record is removed once the limit is
back.  If memcgctl dies in between (SIGKILL, OOM, a power cut of the shell),
the record stays, and the next memcgctl that takes the group's lock finds it
and writes the limit back, but only while the file still holds the lowered
value: a limit someone set since is theirs (operations/recovery.py replays
records; this module only keeps them).

The lock (flock on a file per group) also serialises memcgctl processes that
change the same group, so one shrink never "restores" over another's change.
A lock is released by the kernel when its holder dies, so a record found
while holding the lock always belongs to a dead process.

A record says what to write where, as root: whoever can change the journal
directory, or swap a group under it, steers root.  So the directory is opened
once (each component with O_NOFOLLOW, every ancestor owned by root or us and
not writable by others) and everything in it is reached through that fd; a
record names its root and the device and inode of its group's directory
(and the boot), and is replayed only on an exact match, only into a limit
file, only as a decimal number.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from pathlib import Path
from typing import NamedTuple

from ..errors import LockHeld, MemcgError, NotFound, PermissionDenied, UntrustedJournal, error_from_oserror
from ..files import open_directory_chain, open_regular_at, read_regular_at, read_system_text, remove_at, replace_at
from .deadline import NEVER, Deadline

DEFAULT_DIRECTORY = Path("/run/memcgctl")
LOCK_POLL_SECONDS = 0.01
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
# The fields a record must hold to be replayed (see Journal.record).
IDENTITY_FIELDS = ("root", "root_device", "root_inode", "group", "device", "inode", "boot")


def default_directory() -> Path:
    """/run/memcgctl for root (XDG_RUNTIME_DIR is ignored: it may be inherited
    from a user); for a user of a delegated subtree their runtime directory,
    else ~/.cache/memcgctl: a directory only they can make (not
    /tmp/memcgctl-UID, which anyone can make first).  Records carry the boot
    they were made in, so one that outlives a reboot is never replayed."""
    if os.geteuid() == 0:
        return DEFAULT_DIRECTORY
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "memcgctl"
    home = os.environ.get("HOME")
    if not home:
        import pwd

        home = pwd.getpwuid(os.geteuid()).pw_dir
    return Path(home) / ".cache" / "memcgctl"


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


def current_boot() -> str:
    return read_system_text(BOOT_ID, "read boot id").strip()


class PendingRestore(NamedTuple):
    """A write that a dead memcgctl left undone: VALUE back into PATH, while
    PATH holds one of LOWERED (what that memcgctl wrote there; None in a
    record of a memcgctl older than this field, which did not note it).
    IDENTITY: the root, group and boot it was made for (see Journal.record)."""

    path: Path
    value: str
    pid: int
    started: float
    identity: dict | None = None
    lowered: tuple | None = None


class Journal:
    """The journal directory (see default_directory(), or MEMCGCTL_JOURNAL_DIR)."""

    def __init__(self, directory: Path | str | None = None):
        self.directory = Path(directory) if directory else default_directory()
        self._fd: int | None = None
        # The records recovery could not read, as (record path, why): the
        # recover command says so.
        self.unreadable: list[tuple[Path, str]] = []

    def _key(self, group_path: Path) -> str:
        return _sha256(str(group_path).encode("utf-8", "surrogateescape")).hexdigest()[:32]

    def _record_name(self, group_path: Path) -> str:
        return f"{self._key(group_path)}.restore"

    def _record_path(self, group_path: Path) -> Path:
        return self.directory / self._record_name(group_path)

    # --- the directory: opened once, checked, then used through its fd --------

    def _directory_fd(self, create: bool = True) -> int:
        if self._fd is None:
            self._fd = open_directory_chain(self.directory, "use journal directory", self._refuse_untrusted,
                                            create_mode=0o700 if create else None)
        return self._fd

    def _refuse_untrusted(self, entry, is_last: bool) -> None:
        """Records in the directory say what to write where: it must be ours
        alone, and no ancestor may let anyone else swap it (a sticky /tmp or
        /dev/shm is fine on the way: others cannot rename what we own in it)."""
        status = entry.status
        euid = os.geteuid()
        if is_last:
            if status.st_uid != euid or status.st_mode & 0o022:
                raise PermissionDenied("use journal directory", "it must be a directory of yours that no one "
                                       "else can write (someone may have planted it)", str(entry.path))
            return
        if status.st_uid not in (0, euid):
            raise UntrustedJournal("use journal directory", f"{entry.path} is owned by uid {status.st_uid}, "
                                   "who could swap the journal directory", str(self.directory))
        if status.st_mode & 0o022 and not status.st_mode & stat.S_ISVTX:
            raise UntrustedJournal("use journal directory", f"{entry.path} can be written by others, who could "
                                   "swap the journal directory", str(self.directory))

    def close(self) -> None:
        """Close the directory's fd (opened and checked again when next needed)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        self.close()

    # --- files beside the records: locks, the daemon's counters ----------------

    def open_file(self, name: str, what: str) -> int:
        """A read-write fd of the regular file NAME in the journal directory,
        made if missing (0600), never through a link: for locks, the group
        locks here and the daemon's."""
        return open_regular_at(self._directory_fd(), name, os.O_RDWR | os.O_CREAT, what, self.directory / name)

    def read_file(self, name: str, what: str, max_bytes: int) -> bytes | None:
        """The bytes of the regular file NAME in the journal directory (checked
        as for records), or None if it or the directory is missing; never
        through a link, never waiting on a FIFO, at most MAX_BYTES.  For
        `memcgctl export`, reading the daemon's counters."""
        try:
            directory = self._directory_fd(create=False)
        except NotFound:
            return None
        return read_regular_at(directory, name, what, self.directory / name, max_bytes)

    def replace_file(self, name: str, data: bytes, what: str, mode: int = 0o600, durable: bool = True) -> None:
        """Replace NAME in the journal directory with DATA, atomically: a new
        temporary file (O_EXCL, never a link) renamed over it.  DURABLE
        fsyncs the file and the directory (undo records must survive a crash;
        the daemon's counters, rewritten every few seconds, need not)."""
        replace_at(self._directory_fd(), name, data, what, self.directory / name, mode, durable)

    # --- the lock -------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, group_path: Path, deadline: Deadline = NEVER):
        """Hold GROUP_PATH's lock for the block; wait until DEADLINE, then
        LockHeld (75).  A passed deadline still makes one attempt."""
        fd = self._locked_fd(f"{self._key(group_path)}.lock", deadline, group_path)
        try:
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _locked_fd(self, name: str, deadline: Deadline, group_path: Path) -> int:
        """An fd of the lock file NAME, flocked.  forget_lock() may remove the
        file between our open and our flock: then the lock is on a file no one
        else will open, so take the one now under NAME instead."""
        while True:
            fd = self.open_file(name, "open lock file")
            try:
                self._acquire(fd, deadline, group_path)
                if self._still_named(fd, name):
                    return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def _still_named(self, fd: int, name: str) -> bool:
        try:
            named = os.stat(name, dir_fd=self._directory_fd(), follow_symlinks=False)
        except FileNotFoundError:
            return False
        opened = os.fstat(fd)
        return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)

    def forget_lock(self, group_path: Path) -> None:
        """Remove the lock file of GROUP_PATH, a group that is gone, unless
        someone holds it: lock files of short-lived groups must not pile up.
        Removed while we hold its flock, so that a memcgctl that opened it
        meanwhile sees it unnamed and takes a new one (_locked_fd)."""
        import fcntl

        name = f"{self._key(group_path)}.lock"
        try:
            fd = os.open(name, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self._directory_fd())
        except OSError:
            return  # none (or not ours to remove)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if self._still_named(fd, name):
                os.unlink(name, dir_fd=self._directory_fd())
        except OSError:
            pass  # held by a live memcgctl (it stays), or removed meanwhile
        finally:
            os.close(fd)

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

    def record(self, group_path: Path, restore_path: Path, value: str, lowered: tuple,
               identity: dict | None = None) -> None:
        """Durably note that VALUE must go back into RESTORE_PATH while it holds
        one of LOWERED (the values about to be written there).  IDENTITY
        (CgroupFS.identity()) binds the record to its root and to the group's
        directory: without it, the record is never replayed."""
        import json

        record = {"path": str(restore_path), "value": value, "lowered": [str(text) for text in lowered],
                  "pid": os.getpid(), "started": time.time()}
        if identity is not None:
            record.update(identity, file=restore_path.name, boot=current_boot())
        self.replace_file(self._record_name(group_path), json.dumps(record).encode(), "write journal")

    def clear(self, group_path: Path) -> None:
        """The restore is done: forget it."""
        self._remove(self._record_name(group_path))

    def _remove(self, name: str) -> None:
        remove_at(self._directory_fd(), name, "clear journal", self.directory / name)

    def pending(self, group_path: Path) -> PendingRestore | None:
        """The restore a dead memcgctl left for GROUP_PATH, if any."""
        return self._read(self._record_name(group_path))

    def all_pending(self, strict: bool = False) -> list[tuple[Path, PendingRestore]]:
        """Every restore left behind: (group path, restore).  Records that
        cannot be read are listed in self.unreadable.  No directory: none.
        A directory that cannot be used (not ours, not a directory) is none
        too, but for STRICT (`recover`, which must not say all is well
        without having looked): then its error."""
        try:
            directory = self._directory_fd(create=False)
            names = sorted(name for name in os.listdir(directory) if name.endswith(".restore"))
        except NotFound:
            return []  # nothing ever ran here
        except MemcgError:
            if strict:
                raise
            return []  # not ours to read
        except OSError as err:
            if strict:
                raise error_from_oserror(err, "list journal records", str(self.directory)) from err
            return []
        found = []
        self.unreadable = []
        for name in names:
            try:
                restore = self._read(name)
            except MemcgError as error:
                self.unreadable.append((self.directory / name, error.why))
                continue
            # A record counts only under the name of the group it restores.
            if restore is not None and name == self._record_name(restore.path.parent):
                found.append((restore.path.parent, restore))
        return found

    def _read(self, name: str) -> PendingRestore | None:
        directory = self._directory_fd()
        try:
            data = read_regular_at(directory, name, "read journal", self.directory / name, 65536)
        except MemcgError as error:
            raise self.unreadable_record(name, error.why) from None
        if data is None:
            return None
        text = data.decode("utf-8", "replace")
        try:
            import json  # only when there is a record

            data = json.loads(text)
            identity = {field: data[field] for field in IDENTITY_FIELDS} if "inode" in data else None
            if identity is not None:
                identity["file"] = data["file"]
            lowered = None
            if "lowered" in data:
                if not isinstance(data["lowered"], list):
                    raise TypeError("'lowered' is not a list")
                lowered = tuple(str(text) for text in data["lowered"])
            return PendingRestore(Path(data["path"]), str(data["value"]), int(data["pid"]), float(data["started"]),
                                  identity, lowered)
        except (ValueError, KeyError, TypeError) as err:
            raise self.unreadable_record(name, f"{type(err).__name__}: {err}") from None

    def unreadable_record(self, name: str, why: str) -> MemcgError:
        path = self.directory / name
        return MemcgError("read journal", f"unreadable record ({why}); what it would restore is unknown: check "
                          f"the limits of the groups memcgctl shrank, then remove it (rm {path})", str(path))
