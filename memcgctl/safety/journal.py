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
import errno
import os
import re
import stat
import time
from pathlib import Path
from typing import NamedTuple

from ..errors import LockHeld, MemcgError, NotFound, PermissionDenied, UntrustedJournal, error_from_oserror
from .deadline import NEVER, Deadline

DEFAULT_DIRECTORY = Path("/run/memcgctl")
LOCK_POLL_SECONDS = 0.01
# The only files a restore writes, and the only values it writes there.
RESTORABLE_FILES = ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes")
RESTORABLE_VALUE = re.compile(r"(-1|[0-9]{1,19})\Z")
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
    from ..kernel.fs import read_system_text

    return read_system_text(BOOT_ID, "read boot id").strip()


class PendingRestore(NamedTuple):
    """A write that a dead memcgctl left undone: VALUE back into PATH.
    IDENTITY: the root, group and boot it was made for (see Journal.record)."""

    path: Path
    value: str
    pid: int
    started: float
    identity: dict | None = None


class Journal:
    """The journal directory (see default_directory(), or MEMCGCTL_JOURNAL_DIR)."""

    def __init__(self, directory: Path | str | None = None):
        self.directory = Path(directory) if directory else default_directory()
        self._fd = None
        # What recovery dropped (stale records) and could not read, as
        # (record path, why): the command line says so.
        self.dropped = []
        self.unreadable = []

    def _key(self, group_path: Path) -> str:
        return _sha256(str(group_path).encode("utf-8", "surrogateescape")).hexdigest()[:32]

    def _record_name(self, group_path: Path) -> str:
        return f"{self._key(group_path)}.restore"

    def _record_path(self, group_path: Path) -> Path:
        return self.directory / self._record_name(group_path)

    # --- the directory: opened once, checked, then used through its fd --------

    def _directory_fd(self, create: bool = True) -> int:
        if self._fd is None:
            from ..kernel.fs import open_directory_chain

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
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600,
                         dir_fd=self._directory_fd())
        except OSError as err:
            raise error_from_oserror(err, what, str(self.directory / name)) from err
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise PermissionDenied(what, "not a regular file", str(self.directory / name))
        return fd

    def read_file(self, name: str, what: str, limit: int = 16 * 1024 * 1024) -> bytes | None:
        """The bytes of the regular file NAME in the journal directory (at
        most LIMIT), never through a link nor from a FIFO planted there;
        None when it or the directory does not exist (nothing is made)."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=self._directory_fd(create=False))
        except FileNotFoundError:
            return None
        except OSError as err:
            raise error_from_oserror(err, what, str(self.directory / name)) from err
        except NotFound:
            return None  # no journal directory yet: nothing ever ran here
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise PermissionDenied(what, "not a regular file", str(self.directory / name))
            data = os.read(fd, limit + 1)
        except OSError as err:
            raise error_from_oserror(err, what, str(self.directory / name)) from err
        finally:
            os.close(fd)
        if len(data) > limit:
            raise MemcgError(what, f"larger than {limit} bytes", str(self.directory / name))
        return data

    def replace_file(self, name: str, data: bytes, what: str, mode: int = 0o600, durable: bool = True) -> None:
        """Replace NAME in the journal directory with DATA, atomically: a new
        temporary file (O_EXCL, never a link) renamed over it.  DURABLE
        fsyncs the file and the directory (undo records must survive a crash;
        the daemon's counters, rewritten every few seconds, need not)."""
        directory = self._directory_fd()
        temporary = f"{name}.tmp{os.getpid()}"
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=directory)  # left by a dead process of the same pid
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                         dir_fd=directory)
            try:
                os.write(fd, data)
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
            if durable:
                self._sync_directory()
        except OSError as err:
            raise error_from_oserror(err, what, str(self.directory / name)) from err

    # --- the lock -------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, group_path: Path, deadline: Deadline = NEVER):
        """Hold GROUP_PATH's lock for the block; wait until DEADLINE, then
        LockHeld (75).  A passed deadline still makes one attempt."""
        fd = self.open_file(f"{self._key(group_path)}.lock", "open lock file")
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

    def record(self, group_path: Path, restore_path: Path, value: str, identity: dict | None = None) -> None:
        """Durably note that VALUE must go back into RESTORE_PATH.  IDENTITY
        (CgroupFS.identity()) binds the record to its root and to the group's
        directory: without it, the record is never replayed."""
        import json

        record = {"path": str(restore_path), "value": value, "pid": os.getpid(), "started": time.time()}
        if identity is not None:
            record.update(identity, file=restore_path.name, boot=current_boot())
        self.replace_file(self._record_name(group_path), json.dumps(record).encode(), "write journal")

    def clear(self, group_path: Path) -> None:
        """The restore is done: forget it."""
        self._remove(self._record_name(group_path))

    def _remove(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self._directory_fd())
            self._sync_directory()
        except FileNotFoundError:
            pass
        except OSError as err:
            raise error_from_oserror(err, "clear journal", str(self.directory / name)) from err

    def pending(self, group_path: Path) -> PendingRestore | None:
        """The restore a dead memcgctl left for GROUP_PATH, if any."""
        return self._read(self._record_name(group_path))

    def all_pending(self) -> list[tuple[Path, PendingRestore]]:
        """Every restore left behind: (group path, restore).  Records that
        cannot be read are listed in self.unreadable."""
        try:
            directory = self._directory_fd(create=False)
            names = sorted(name for name in os.listdir(directory) if name.endswith(".restore"))
        except (MemcgError, OSError):
            return []  # none yet, or not ours to read
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
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self._directory_fd())
        except FileNotFoundError:
            return None
        except OSError as err:
            raise self.unreadable_record(name, describe(err)) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise self.unreadable_record(name, "not a regular file")
            text = os.read(fd, 65536).decode("utf-8", "replace")
        except OSError as err:
            raise self.unreadable_record(name, describe(err)) from None
        finally:
            os.close(fd)
        try:
            import json  # only when there is a record

            data = json.loads(text)
            identity = {field: data[field] for field in IDENTITY_FIELDS} if "inode" in data else None
            if identity is not None:
                identity["file"] = data["file"]
            return PendingRestore(Path(data["path"]), str(data["value"]), int(data["pid"]), float(data["started"]),
                                  identity)
        except (ValueError, KeyError, TypeError) as err:
            raise self.unreadable_record(name, f"{type(err).__name__}: {err}") from None

    def unreadable_record(self, name: str, why: str) -> MemcgError:
        path = self.directory / name
        return MemcgError("read journal", f"unreadable record ({why}); what it would restore is unknown: check "
                          f"the limits of the groups memcgctl shrank, then remove it (rm {path})", str(path))

    def _sync_directory(self) -> None:
        try:
            os.fsync(self._directory_fd())
        except OSError as err:
            if err.errno != errno.EINVAL:  # some filesystems cannot fsync a directory
                raise


def describe(err: OSError) -> str:
    from ..errors import describe_errno

    return describe_errno(err.errno)


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
    died, skipping groups a live memcgctl holds; see backend.recovered and
    journal.dropped.  STRICT: a record that cannot be read or restored raises
    (after the others were done); otherwise it is left for a later memcgctl."""
    if backend.journal is None:
        return
    failures = []
    for group_path, _ in backend.journal.all_pending():
        if not _is_under(group_path, backend.fs.root):
            continue
        try:
            with backend.journal.locked(group_path, Deadline(0)):
                _restore_pending(backend, group_path, backend.journal.pending(group_path))
        except LockHeld:
            continue  # a live memcgctl holds it and will restore it itself
        except MemcgError as error:
            failures.append(error)
    if strict and backend.journal.unreadable:
        path, why = backend.journal.unreadable[0]
        more = f" (and {len(backend.journal.unreadable) - 1} more)" if len(backend.journal.unreadable) > 1 else ""
        raise MemcgError("recover", f"{why}{more}", str(path))
    if strict and failures:
        raise failures[0]


def plan_recover(backend) -> list:
    """The writes recover() would make (for a dry run)."""
    from ..kernel.fs import Write

    if backend.journal is None:
        return []
    writes = []
    for group_path, pending in backend.journal.all_pending():
        if _is_under(group_path, backend.fs.root) and _verdict(backend, group_path, pending) is None:
            writes.append(Write(pending.path, pending.value))
    return writes


def _restore_pending(backend, group_path: Path, pending: PendingRestore | None) -> None:
    if pending is None:
        return
    verdict = _verdict(backend, group_path, pending)
    journal = backend.journal
    if verdict == "gone":  # a group deleted since has nothing to restore
        journal.clear(group_path)
        return
    if isinstance(verdict, Stale):
        journal.dropped.append((pending, verdict.why))
        journal.clear(group_path)
        return
    if verdict is not None:
        raise MemcgError("recover", f"the journal record does not match its group ({verdict}); it was not "
                         f"applied: remove it once the group is checked (rm {journal._record_path(group_path)})",
                         str(journal.directory))
    from ..kernel.fs import Write

    group = backend.fs.group(pending.identity["group"])
    with backend.fs.pinned(group):
        # Checked again through the fd the write goes through: the group
        # may have been swapped since _verdict looked.
        if backend.fs.directory_identity(group) != (pending.identity["device"], pending.identity["inode"]):
            journal.dropped.append((pending, "the group was removed and made again"))
        else:
            backend.fs.apply(Write(pending.path, pending.value))
            backend.recovered.append(pending)
    journal.clear(group_path)


class Stale(NamedTuple):
    """A record made for something that no longer exists as it was."""

    why: str


def _verdict(backend, group_path: Path, pending: PendingRestore):
    """None if PENDING may be replayed as it is; 'gone' if its group is gone;
    a Stale if it belongs to a group or root or boot that was replaced;
    otherwise why it is refused (a planted or foreign record)."""
    identity = pending.identity
    fs = backend.fs
    if identity is None:
        return "it does not name its root and group directory"
    from ..errors import UsageError
    from ..kernel.fs import clean_group_name

    try:
        clean_group_name(str(identity["group"]))
    except UsageError:
        return f"{str(identity['group'])[:40]!r} is not a group name"
    if identity["root"] != str(fs.root) or group_path != fs.root.joinpath(*Path(identity["group"]).parts):
        return f"made for {identity['root']} / {identity['group']!r}"
    if pending.path.parent != group_path or identity.get("file") != pending.path.name \
            or pending.path.name not in RESTORABLE_FILES:
        return f"it names {pending.path}, not a limit of its group"
    if not RESTORABLE_VALUE.match(pending.value):
        return f"{pending.value[:40]!r} is not a limit"
    if identity["boot"] != current_boot():
        return Stale("it was made before the last reboot")
    if (identity["root_device"], identity["root_inode"]) != fs.root_identity():
        return Stale("the cgroup root was replaced since")
    group = fs.group(identity["group"])
    found = fs.directory_identity(group)
    if found is None:
        return "gone"
    if found != (identity["device"], identity["inode"]):
        return Stale("the group was removed and made again")
    return None


def _is_under(path: Path, root: Path) -> bool:
    return path == root or str(path).startswith(str(root) + os.sep)
