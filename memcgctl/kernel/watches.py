"""Kernel notifiers that wake a daemon: file descriptors to poll.

Each watch has fileno() and poll_events (for select.poll), consume() to
clear it after a wake-up, and close().  The kernel keeps a v1 registration
only as long as its eventfd is open, so close() also unregisters.

The files a watch registers on are opened by the filesystem layer
(CgroupFS.open_for_watch: O_NOFOLLOW, O_NONBLOCK, checked to be the root's
cgroupfs files, never on a fake root); this module only registers on the
checked fds and says what a failed registration means.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select

from ..errors import MemcgError, error_from_oserror
from .fs import CgroupFS, Group

V1_USAGE = "memory.usage_in_bytes"
V1_EVENT_CONTROL = "cgroup.event_control"
V2_EVENTS = "memory.events"


class UsageThreshold:
    """cgroup v1 (since 2.6.34): an eventfd the kernel signals each time the
    group's usage crosses THRESHOLD bytes, upwards or downwards.  The kernel
    checks thresholds in batches of page events, so a crossing is seen within
    a few hundred KiB.  rmdir of the group signals it too."""

    poll_events = select.POLLIN

    def __init__(self, fs: CgroupFS, group: Group, threshold: int):
        self.group = group
        self.threshold = threshold
        try:
            self._eventfd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        except OSError as err:  # EMFILE, ENFILE
            raise error_from_oserror(err, f"watch usage of {group.label}", "eventfd") from err
        try:
            self._register(fs)
        except BaseException:
            os.close(self._eventfd)
            raise

    def _register(self, fs: CgroupFS) -> None:
        usage_fd = fs.open_for_watch(self.group, V1_USAGE, os.O_RDONLY)
        try:
            # The kernel needs the control file only while the write runs.
            control_fd = fs.open_for_watch(self.group, V1_EVENT_CONTROL, os.O_WRONLY)
            try:
                os.write(control_fd, f"{self._eventfd} {usage_fd} {self.threshold}".encode())
            except OSError as err:
                raise error_from_oserror(err, f"watch usage of {self.group.label}",
                                         str(self.group.path / V1_EVENT_CONTROL)) from err
            finally:
                os.close(control_fd)
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

    def __init__(self, fs: CgroupFS, group: Group):
        self.group = group
        self._fd = fs.open_for_watch(group, V2_EVENTS, os.O_RDONLY)
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
    # IN_ONLYDIR | IN_DONT_FOLLOW: a link planted where a directory was is
    # not followed out of the root.
    ONLY_DIRECTORIES = 0x01000000 | 0x02000000

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

    def _last_error(self, what: str, path: str) -> MemcgError:
        number = self._errno()
        return error_from_oserror(OSError(number, os.strerror(number)), what, path)

