"""One exception tree for memcgctl; each class carries its stable exit code.

The filesystem layer (files.py, and kernel/fs.py built on it for cgroup
files) is the only place where an OSError becomes one of these.  The command
line catches MemcgError in one place and prints
``memcgctl: <what failed>: <why> (<path>)``.
"""

from __future__ import annotations

import errno
import os

# errno 524 is the kernel-internal ENOTSUPP that leaks out of some memcg files
# (memory.kmem.limit_in_bytes since 5.16); Python has no name for it.
ENOTSUPP = 524


class MemcgError(Exception):
    """Base class: something memcgctl could not do.  Exit code 74."""

    exit_code = 74
    limit_name: str | None = None  # the limit concerned, as `stat --json` names it, where one is

    def __init__(self, what: str, why: str, path: str | None = None):
        super().__init__(what, why, path)
        self.what = what
        self.why = why
        self.path = path

    def __str__(self) -> str:
        # Raw: a group name in it may hold control characters, and whoever
        # shows the message (the command line, the daemon's log) escapes it
        # once (escape.printable), as one line.
        text = f"{self.what}: {self.why}"
        return f"{text} ({self.path})" if self.path else text


class Interrupted(BaseException):
    """A stop signal arrived (see signals.stop_signals_raise).  BaseException,
    like KeyboardInterrupt.  Here rather than in signals.py so that catching it
    does not import the signal module."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        import signal

        return signal.Signals(self.signum).name


class DeadlinePassed(Exception):  # noqa: N818 (a stop condition, like StopIteration)
    """The deadline of an operation passed in the middle of a kernel call.
    Not a MemcgError: a v1 limit write it cuts short may have been lowered
    and must be restored (see kernel.v1)."""


class UsageError(MemcgError):
    """A bad argument: a malformed size, a group name that leaves the root."""

    exit_code = 2


class InvalidValue(MemcgError):
    """The kernel rejected the value (EINVAL)."""

    exit_code = 65


class NotFound(MemcgError):
    """No such group or process (ENOENT, ESRCH)."""

    exit_code = 66


class NotAvailable(MemcgError):
    """Memory controller, file or option not available here (EOPNOTSUPP, 524)."""

    exit_code = 69


class AlreadyExists(MemcgError):
    """The group exists (EEXIST)."""

    exit_code = 73


class Busy(MemcgError):
    """Busy, try later: EBUSY, EAGAIN, target not reached, group not empty."""

    exit_code = 75


class LockHeld(Busy):
    """Another memcgctl holds the group's lock (and the deadline passed)."""


class NoProgress(Busy):
    """The kernel reclaims nothing more (v1 EBUSY on a lowered limit, v2
    memory.reclaim making no progress): what is left is in use."""


class OutputError(MemcgError):
    """Writing the output failed: a full disk (ENOSPC), a closed stdout (EBADF),
    EIO.  Exit 74."""


class OutputClosed(OutputError):
    """The reader of the output went away (EPIPE: `memcgctl stat | head -1`).
    Quiet, with exit 141 (128 + SIGPIPE), as a command killed by SIGPIPE."""

    exit_code = 141


class PermissionDenied(MemcgError):
    """Permission denied (EACCES, EPERM)."""

    exit_code = 77


class UntrustedRoot(PermissionDenied):
    """As root: a cgroup root (or an ancestor) that another user could change
    under us.  The command line says how to trust it all the same."""


class UntrustedJournal(PermissionDenied):
    """A journal directory (or an ancestor) that another user could swap.  The
    command line says how to use another."""


class NotRunning(MemcgError):
    """`daemon status`: no daemon runs on the root (3, as `systemctl status`
    says of a unit that is not active)."""

    exit_code = 3


class ConfigError(MemcgError):
    """The daemon's configuration file is invalid (EX_CONFIG of sysexits.h)."""

    exit_code = 78


class CommandNotExecutable(MemcgError):
    """`run`: the command exists but cannot be executed, as the shell says 126."""

    exit_code = 126


class CommandNotFound(MemcgError):
    """`run`: no such command, as the shell says 127."""

    exit_code = 127


EXIT_CODES = {
    0: "success",
    2: "usage error or bad size",
    3: "daemon status: no daemon runs on the root (as systemctl status says of a stopped unit)",
    65: "the kernel rejected the value (EINVAL)",
    66: "no such group or process (ENOENT, ESRCH)",
    69: "memory controller or feature not available (EOPNOTSUPP, errno 524, "
    "option not on this cgroup version)",
    73: "group exists (EEXIST)",
    74: "other I/O error",
    75: "busy, try later (EBUSY, EAGAIN, target not reached, group not empty)",
    77: "permission denied (EACCES, EPERM)",
    78: "daemon: invalid configuration file (EX_CONFIG)",
    126: "run: the command cannot be executed",
    127: "run: the command was not found",
    130: "interrupted by a signal (128 + its number: 129 SIGHUP, 130 SIGINT, 143 SIGTERM)",
    141: "the reader of the output went away (a closed pipe), said nothing, as if killed by SIGPIPE",
}

_CLASS_BY_ERRNO = {
    errno.EINVAL: InvalidValue,
    errno.ERANGE: InvalidValue,
    errno.ENOENT: NotFound,
    errno.ESRCH: NotFound,
    errno.EOPNOTSUPP: NotAvailable,
    ENOTSUPP: NotAvailable,
    errno.EEXIST: AlreadyExists,
    errno.ENOTEMPTY: Busy,
    errno.EBUSY: Busy,
    errno.EAGAIN: Busy,
    errno.EINTR: Busy,
    errno.EACCES: PermissionDenied,
    errno.EPERM: PermissionDenied,
    errno.EROFS: PermissionDenied,
}


def error_from_oserror(err: OSError, what: str, path: str, why: str | None = None) -> MemcgError:
    """Translate an OSError into the memcgctl error that carries its exit code."""
    error_class = MemcgError if err.errno is None else _CLASS_BY_ERRNO.get(err.errno, MemcgError)
    if why is None:
        why = describe_errno(err.errno)
    return error_class(what, why, path)


def describe_errno(number: int | None) -> str:
    if number == ENOTSUPP:
        return "not supported by this kernel (errno 524)"
    if number is None:
        return "unknown error"
    return f"{os.strerror(number).lower()} ({errno.errorcode.get(number, number)})"
