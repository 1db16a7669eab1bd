"""Kernel notifiers that wake a daemon: file descriptors to poll.

Each watch has fileno() and poll_events (for select.poll), consume() to
clear it after a wake-up, and close().  The kernel keeps a v1 registration
only as long as its eventfd is open, so close() also unregisters.

This module opens the files it registers on (a registration needs their
file descriptors); every OSError becomes a memcgctl error here, as in fs.py.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select

from ..errors import NotAvailable, NotFound, error_from_oserror
from .fs import Group

V1_USAGE = "memory.usage_in_bytes"
V1_EVENT_CONTROL = "cgroup.event_control"
V2_EVENTS = "memory.events"


class UsageThreshold:
    """cgroup v1 (since 2.6.34): an eventfd the kernel signals each time the
    group's usage crosses THRESHOLD bytes, upwards or downwards.  The kernel
    checks thresholds in batches of page events, so a crossing is seen within
    a few hundred KiB.  rmdir of the group signals it too."""

    poll_events = select.POLLIN

    def __init__(self, group: Group, threshold: int):
        self.group = group
        self.threshold = threshold
        self._eventfd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            self._register()
        except BaseException:
            os.close(self._eventfd)
            raise

    def _register(self) -> None:
        usage_path = self.group.path / V1_USAGE
        control_path = self.group.path / V1_EVENT_CONTROL
        what = f"watch usage of {self.group.label}"
        try:
            usage_fd = os.open(usage_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            raise _error(err, what, usage_path, self.group) from err
        try:
            # The kernel needs the control file only while the write runs.
            control_fd = os.open(control_path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(control_fd, f"{self._eventfd} {usage_fd} {self.threshold}".encode())
            finally:
                os.close(control_fd)
        except OSError as err:
            raise _error(err, what, control_path, self.group) from err
        finally:
            os.close(usage_fd)

    def fileno(self) -> int:
        return self._eventfd

    def consume(self) -> None:
        """Clear the wake-up (the counter of crossings since the last read)."""
        try:
            os.read(self._eventfd, 8)
        except BlockingIOError:
            pass  # a spurious wake-up: nothing to clear

    def close(self) -> None:
        if self._eventfd >= 0:
            os.close(self._eventfd)
            self._eventfd = -1


class EventsFileWatch:
    """cgroup v2: memory.events raises POLLPRI when one of its counters
    changes (a `high` or `max` event, an OOM).  kernfs signals each change
    once per open file, until that file is read again."""

    poll_events = select.POLLPRI | select.POLLERR

    def __init__(self, group: Group):
        self.group = group
        path = group.path / V2_EVENTS
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            raise _error(err, f"watch events of {group.label}", path, group) from err
        self.consume()

    def fileno(self) -> int:
        return self._fd

    def consume(self) -> None:
        # Reading re-arms the notification (kernfs compares an event count
        # per open file).  A removed group answers ENODEV: the engine notices
        # when it reads the group.
        try:
            os.lseek(self._fd, 0, os.SEEK_SET)
            os.read(self._fd, 4096)
        except OSError:
            pass

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class DirectoryWatch:
    """inotify (since 2.6.13) on directories of the hierarchy: mkdir and rmdir
    of a group raise IN_CREATE and IN_DELETE on its parent (the VFS reports
    them for cgroupfs as for any filesystem).  One inotify instance holds the
    watches of every directory, so that a glob over many parents costs one
    file descriptor (max_user_instances is 128 by default)."""

    poll_events = select.POLLIN
    EVENTS = 0x100 | 0x200 | 0x40 | 0x80 | 0x400  # IN_CREATE, IN_DELETE, IN_MOVED_FROM/TO, IN_DELETE_SELF
    ONLY_DIRECTORIES = 0x01000000  # IN_ONLYDIR

    def __init__(self):
        import ctypes

        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise self._last_error("watch for new groups", "inotify")
        self._descriptors: dict = {}  # directory -> watch descriptor

    def watch_only(self, directories: set) -> None:
        """Watch exactly DIRECTORIES (Paths); a directory gone meanwhile is skipped."""
        for directory in set(self._descriptors) - directories:
            self._libc.inotify_rm_watch(self._fd, self._descriptors.pop(directory))
        for directory in directories - set(self._descriptors):
            descriptor = self._libc.inotify_add_watch(self._fd, os.fsencode(directory),
                                                      self.EVENTS | self.ONLY_DIRECTORIES)
            if descriptor >= 0:
                self._descriptors[directory] = descriptor
            elif self._errno() != errno.ENOENT:
                raise self._last_error("watch for new groups", str(directory))

    def fileno(self) -> int:
        return self._fd

    def consume(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._fd, 65536):
                pass

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self._descriptors.clear()

    def _errno(self) -> int:
        import ctypes

        return ctypes.get_errno()

    def _last_error(self, what: str, path: str):
        number = self._errno()
        return error_from_oserror(OSError(number, os.strerror(number)), what, path)


def _error(err: OSError, what: str, path, group: Group):
    # As in fs.py: a missing file means the group is gone only if its
    # directory is; otherwise this kernel or root lacks the notifier (v1
    # built without it, a fake tree).
    if isinstance(err, FileNotFoundError):
        if not group.path.is_dir():
            return NotFound(what, "no such group", str(group.path))
        return NotAvailable(what, "not available on this kernel or root", str(path))
    return error_from_oserror(err, what, str(path))
