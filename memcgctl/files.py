"""The filesystem layer for files that are not cgroup files: the journal's
directory and records, the daemon's configuration, units, export's textfile,
/proc.  Every such file is opened here, never through a symbolic link nor
waiting on a FIFO, and every OSError on one becomes a memcgctl error here.
kernel/fs.py builds on it for cgroup files; safety/journal.py uses it
without the kernel layer.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from .errors import MemcgError, NotFound, PermissionDenied, describe_errno, error_from_oserror

# What the user lacks when the kernel says EACCES or EPERM.
PERMISSION_TO_READ = dict.fromkeys(
    (errno.EACCES, errno.EPERM), "permission denied: reading this file needs read permission on it")
PERMISSION_TO_WRITE = dict.fromkeys(
    (errno.EACCES, errno.EPERM),
    "permission denied: writing this file needs write permission on it (root, or a group delegated to you)")
PERMISSION_TO_ENTER = dict.fromkeys(
    (errno.EACCES, errno.EPERM), "permission denied: this directory cannot be searched or listed")
# O_NOFOLLOW on the last component answers ELOOP for a symlink; O_DIRECTORY
# answers ENOTDIR for anything else where a group directory should be.
REFUSED_LINKS = {
    errno.ELOOP: "refused: a symbolic link where memcgctl expects a group or a file (it never follows one)",
    errno.ENOTDIR: "refused: not a directory where memcgctl expects a group",
}

# Every directory is opened relative to the one above it (openat), never by a
# path that someone could change between a check and its use.
DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted in place of a file must not wait for a
# writer (it would hang a restore); the file is checked before any read or write.
FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


class DirectoryStatus(NamedTuple):
    """One directory on the way to a root or journal: its path and os.stat_result."""

    path: Path
    status: os.stat_result


# Called for each directory on the way (and True for the last): raises to refuse it.
DirectoryCheck = Callable[["DirectoryStatus", bool], None]


def open_directory_chain(path: Path, what: str, check: DirectoryCheck | None = None, create_mode: int | None = None,
                         resolve_links: bool = True) -> int:
    """An O_DIRECTORY fd of PATH, opened one component at a time from '/',
    each with O_NOFOLLOW.  CHECK(DirectoryStatus, is_last) may raise to refuse
    a directory (ownership); CREATE_MODE makes missing components.  The caller
    closes the fd.  Symlinks in PATH itself are resolved first (unless not
    RESOLVE_LINKS: then any is refused): the walk then refuses any that
    someone swaps in meanwhile."""
    path = Path(os.path.realpath(path) if resolve_links else os.path.abspath(path))
    fd = os.open("/", DIRECTORY_FLAGS)
    current = Path("/")
    try:
        if check is not None:
            check(DirectoryStatus(current, os.fstat(fd)), not path.parts[1:])
        for index, part in enumerate(path.parts[1:], start=2):
            current = current / part
            try:
                child = os.open(part, DIRECTORY_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if create_mode is None:
                    raise
                try:
                    os.mkdir(part, create_mode, dir_fd=fd)
                except FileExistsError:
                    pass  # made meanwhile: it is checked like any other
                child = os.open(part, DIRECTORY_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
            if check is not None:
                check(DirectoryStatus(current, os.fstat(fd)), index == len(path.parts))
        return fd
    except OSError as err:
        os.close(fd)
        raise file_error(err, what, current, {**PERMISSION_TO_ENTER, **REFUSED_LINKS}) from err
    except BaseException:
        os.close(fd)
        raise


def read_system_text(path: Path, what: str) -> str:
    """The text of a file of the system (/proc), not of a cgroup root."""
    try:
        with open(path, "rb") as file:
            return file.read().decode("utf-8", "replace")
    except OSError as err:
        raise file_error(err, what, path, PERMISSION_TO_READ) from err


def read_optional_system_text(path: Path, what: str) -> str | None:
    """The text of a plain file of the system (a unit in /etc/systemd/system),
    None when there is none.  A link or anything but a plain file is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | FILE_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise file_error(err, what, path, REFUSED_LINKS) from err
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise MemcgError(what, "refused: not a plain file", str(path))
        return _read_all(fd).decode("utf-8", "replace")
    except OSError as err:
        raise file_error(err, what, path) from err
    finally:
        os.close(fd)


def install_system_file(path: Path, content: str, what: str, mode: int = 0o644) -> None:
    """Put CONTENT at PATH as replace_file_atomically() does, durably (fsynced):
    a unit or a configuration root's services read.  The parent directory is
    made (0755) when missing."""
    try:
        os.makedirs(path.parent, mode=0o755, exist_ok=True)
    except OSError as err:
        raise file_error(err, what, path.parent, REFUSED_LINKS) from err
    replace_file_atomically(path, content.encode(), what, mode, durable=True)


# --- files root trusts: the daemon's configuration -------------------------------

# A daemon's configuration is a few kilobytes; a bigger file is a mistake (or /dev/zero's kind).
MAX_TRUSTED_FILE_BYTES = 1024 * 1024


def read_trusted_file(path: Path, what: str, max_bytes: int = MAX_TRUSTED_FILE_BYTES) -> bytes:
    """The bytes of the regular file PATH, which steers what we do as root:
    PermissionDenied (77) unless the file and every directory above it are
    owned by root (or by us) and writable by no one else, as systemd asks of
    a unit's files.  The file is opened with O_NOFOLLOW and O_NONBLOCK (a
    symbolic link, a FIFO or a device is refused, never followed or waited
    on), relative to its checked directory, and read up to MAX_BYTES."""
    path = Path(path)
    def refuse_writable_by_others(entry: DirectoryStatus, is_last: bool) -> None:
        refusal = _trusted_directory_refusal(entry)
        if refusal is not None:
            raise PermissionDenied(what, refusal, str(path))

    directory = open_directory_chain(Path(os.path.abspath(path)).parent, what, refuse_writable_by_others)
    try:
        fd = os.open(path.name, os.O_RDONLY | FILE_FLAGS, dir_fd=directory)
    except OSError as err:
        if err.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
            raise PermissionDenied(what, REFUSED_LINKS[errno.ELOOP], str(path)) from err
        raise file_error(err, what, path, PERMISSION_TO_READ) from err
    finally:
        os.close(directory)
    try:
        status = os.fstat(fd)
        refusal = _trusted_file_refusal(status, max_bytes)
        if refusal is not None:
            raise PermissionDenied(what, refusal, str(path))
        data = os.read(fd, max_bytes + 1)  # a regular file gives all it has up to the count
        if len(data) > max_bytes:
            raise PermissionDenied(what, f"refused: larger than {max_bytes} bytes", str(path))
        return data
    except OSError as err:
        raise file_error(err, what, path, PERMISSION_TO_READ) from err
    finally:
        os.close(fd)


def _trusted_owner(status: os.stat_result) -> bool:
    return status.st_uid in (0, os.geteuid())


def _writable_by_others(status: os.stat_result) -> bool:
    """Whether someone other than its owner (or root's group) may write it."""
    return bool(status.st_mode & stat.S_IWOTH or (status.st_mode & stat.S_IWGRP and status.st_gid != 0))


def _trusted_directory_refusal(entry: DirectoryStatus) -> str | None:
    """Why a directory above a trusted file is refused: others could swap the
    file (a sticky directory such as /tmp is fine: others cannot rename what
    root owns in it)."""
    status = entry.status
    if not _trusted_owner(status):
        return f"refused: {entry.path} is owned by uid {status.st_uid}, who could replace the file"
    if _writable_by_others(status) and not status.st_mode & stat.S_ISVTX:
        return f"refused: {entry.path} can be written by others, who could replace the file"
    return None


def _trusted_file_refusal(status: os.stat_result, max_bytes: int) -> str | None:
    if not stat.S_ISREG(status.st_mode):
        return "refused: not a regular file (a FIFO, a device or a directory)"
    if not _trusted_owner(status):
        return f"refused: owned by uid {status.st_uid}, who could rewrite it (chown root, chmod go-w)"
    if _writable_by_others(status):
        return "refused: others can write it (chmod go-w)"
    if status.st_size > max_bytes:
        return f"refused: larger than {max_bytes} bytes"
    return None


# --- files root writes where others may have a hand: export's textfile ----------


def replace_file_atomically(path: Path, data: bytes, what: str, mode: int = 0o644, durable: bool = False) -> None:
    """Replace PATH with DATA, whole or not at all: a new temporary file beside
    it (O_EXCL | O_NOFOLLOW: nothing planted is written through) renamed over
    it.  The directory is reached without following any symbolic link (one
    swapped in by whoever owns a directory on the way is refused), and both
    the file and the rename go through its fd.  MODE whatever the umask;
    DURABLE: as replace_at()."""
    path = Path(path)
    try:
        directory = open_directory_chain(path.parent, what, resolve_links=False)
    except MemcgError as error:
        if error.why != REFUSED_LINKS[errno.ENOTDIR]:
            raise
        raise MemcgError(what, "refused: a symbolic link or not a directory on the way (memcgctl never follows "
                         "one here)", error.path) from None
    try:
        replace_at(directory, path.name, data, what, path, mode, durable, {**PERMISSION_TO_WRITE, **REFUSED_LINKS})
    finally:
        os.close(directory)


def replace_at(directory_fd: int, name: str, data: bytes, what: str, path: Path | str, mode: int = 0o600,
               durable: bool = False, reasons: dict | None = None) -> None:
    """Replace NAME in DIRECTORY_FD (PATH, for errors) with DATA, whole or not
    at all: a new temporary file (O_EXCL | O_NOFOLLOW: nothing planted is
    written through) renamed over it.  MODE whatever the umask; DURABLE: the
    file fsynced before the rename, the directory after it."""
    temporary = f".{name}.{os.getpid()}.tmp"
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=directory_fd)  # left by a dead process of the same pid
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | FILE_FLAGS, mode, dir_fd=directory_fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, name, src_dir_fd=directory_fd, dst_dir_fd=directory_fd)
        if durable:
            sync_directory(directory_fd)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=directory_fd)
        raise file_error(err, what, path, reasons) from err


def file_error(err: OSError, what: str, path: Path | str, reasons: dict | None = None) -> MemcgError:
    """The memcgctl error for ERR: REASONS (errno -> why) or the errno's own words."""
    why = (reasons or {}).get(err.errno) or describe_errno(err.errno)
    return error_from_oserror(err, what, str(path), why)


# --- files in a directory already opened (and checked): the journal's -----------


def open_regular_at(directory_fd: int, name: str, flags: int, what: str, path: Path | str,
                    mode: int = 0o600) -> int:
    """An fd of the regular file NAME in DIRECTORY_FD (PATH, for errors),
    opened with FLAGS (O_CREAT makes it, MODE): never through a link, never
    waiting on a FIFO; anything but a regular file is refused."""
    try:
        fd = os.open(name, flags | FILE_FLAGS, mode, dir_fd=directory_fd)
    except OSError as err:
        raise file_error(err, what, path) from err
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError as err:
        os.close(fd)
        raise file_error(err, what, path) from err
    if not regular:
        os.close(fd)
        raise PermissionDenied(what, "refused: not a regular file", str(path))
    return fd


def read_regular_at(directory_fd: int, name: str, what: str, path: Path | str, max_bytes: int) -> bytes | None:
    """The bytes of the regular file NAME in DIRECTORY_FD (as open_regular_at()),
    None if it is missing; refused if larger than MAX_BYTES."""
    try:
        fd = open_regular_at(directory_fd, name, os.O_RDONLY, what, path)
    except NotFound:
        return None
    try:
        data = _read_all(fd, max_bytes + 1)
    except OSError as err:
        raise file_error(err, what, path) from err
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise MemcgError(what, f"refused: larger than {max_bytes} bytes", str(path))
    return data


def remove_at(directory_fd: int, name: str, what: str, path: Path | str) -> None:
    """Remove NAME from DIRECTORY_FD, durably (the directory fsynced); gone already is fine."""
    try:
        os.unlink(name, dir_fd=directory_fd)
        sync_directory(directory_fd)
    except FileNotFoundError:
        pass
    except OSError as err:
        raise file_error(err, what, path) from err


def sync_directory(directory_fd: int) -> None:
    """fsync a directory (a rename or unlink in it survives a crash); raw OSError."""
    try:
        os.fsync(directory_fd)
    except OSError as err:
        if err.errno != errno.EINVAL:  # some filesystems cannot fsync a directory
            raise


def _read_all(fd: int, limit: int | None = None) -> bytes:
    """The bytes of the open file FD up to its end (or LIMIT bytes)."""
    chunks, size = [], 0
    while limit is None or size < limit:
        chunk = os.read(fd, 65536 if limit is None else min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
