"""Memory pressure stall information (PSI): reading it, and waking on it.

PSI (4.20+, per cgroup v2 group since 5.2) says how much wall time the tasks
of a group (memory.pressure) or of the whole host (/proc/pressure/memory)
spent stalled on memory: reclaim, refaults of their working set, swap-in,
throttling.  Each file has two lines,

    some avg10=0.00 avg60=0.00 avg300=0.00 total=0
    full avg10=0.00 avg60=0.00 avg300=0.00 total=0

where the averages are percentages and `total` is the stalled time in
microseconds since the group was made: the difference of two totals is exact,
where avg10 is a 10-second decaying average that lags behind.

cgroup v1 groups have no memory.pressure; the host file is all there is.

A group's pressure file is read, and its trigger registered on an fd, through
the filesystem layer (CgroupFS.read_text, CgroupFS.open_for_watch); this
module opens only the host's file, which is no cgroup file.
"""

from __future__ import annotations

import errno
import os
import select
from pathlib import Path
from typing import NamedTuple

from ..errors import MemcgError, NotAvailable, NotFound, UsageError, describe_errno, error_from_oserror
from .fs import CgroupFS, Group

GROUP_PRESSURE = "memory.pressure"
HOST_PRESSURE = Path("/proc/pressure/memory")

# A trigger's window, in microseconds: the kernel accepts 500 ms to 10 s
# (kernel/sched/psi.c); since 6.4 a writer without CAP_SYS_RESOURCE needs a
# multiple of 2 s.
MIN_WINDOW_US = 500_000
MAX_WINDOW_US = 10_000_000
# A window every writer may use.
DEFAULT_WINDOW_US = 2_000_000

# Looked up by OSError.errno, which may be None (no reason of ours then).
TRIGGER_REASONS: dict[int | None, str] = {
    errno.EINVAL: "the kernel refused the trigger (window 500 ms to 10 s, a multiple of 2 s "
    "without CAP_SYS_RESOURCE since 6.4; stall no longer than the window)",
    errno.EBUSY: "this file descriptor already has a trigger",
    errno.EACCES: "permission denied: a trigger needs write permission on the file",
    errno.EPERM: "permission denied: a trigger needs write permission on the file",
}


class StallFigures(NamedTuple):
    """One line of a pressure file: averages in percent of wall time, total
    stalled time in microseconds."""

    avg10: float
    avg60: float
    avg300: float
    total_us: int


class MemoryPressure(NamedTuple):
    """A pressure file read once.  SCOPE is "group" (the group's own
    memory.pressure, cgroup v2) or "host" (/proc/pressure/memory, all a v1
    group can have); FULL is None where the kernel has no full line."""

    some: StallFigures
    full: StallFigures | None
    scope: str
    path: str


def parse_pressure(text: str, scope: str, path: str) -> MemoryPressure:
    """The figures of a pressure file's TEXT; MemcgError if it holds no some line."""
    lines = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        fields = dict(field.split("=", 1) for field in rest.split() if "=" in field)
        try:
            lines[kind] = StallFigures(float(fields["avg10"]), float(fields["avg60"]),
                                       float(fields["avg300"]), int(fields["total"]))
        except (KeyError, ValueError):
            continue
    if "some" not in lines:
        raise MemcgError("read memory pressure", f"unexpected text {text.strip()[:60]!r}", path)
    return MemoryPressure(lines["some"], lines.get("full"), scope, path)


NO_PRESSURE = "no pressure information here (cgroup v1, or a kernel without PSI or booted with psi=0)"


def _read_host_file(path: Path) -> str:
    """The text of the host's pressure file (/proc, not a cgroup file)."""
    try:
        with open(path, "rb") as file:
            return file.read().decode("ascii", "replace")
    except FileNotFoundError:
        if not path.parent.is_dir():
            raise NotFound("read memory pressure", "no such group", str(path.parent)) from None
        raise NotAvailable("read memory pressure", NO_PRESSURE, str(path)) from None
    except OSError as err:
        # A kernel built with CONFIG_PSI_DEFAULT_DISABLED and not booted with
        # psi=1 has the files but answers EOPNOTSUPP.
        raise error_from_oserror(err, "read memory pressure", str(path)) from err


def read_group_pressure(fs: CgroupFS, group_path: Path) -> MemoryPressure:
    """The memory pressure of the cgroup v2 group at GROUP_PATH under FS's
    root, read through the filesystem layer as every cgroup file is.

    NotAvailable (69) where the group has no memory.pressure (v1), NotFound (66)
    when the group is gone.  A kernel built with CONFIG_PSI_DEFAULT_DISABLED
    and not booted with psi=1 has the files but answers EOPNOTSUPP (69 too).
    """
    path = Path(group_path) / GROUP_PRESSURE
    try:
        text = fs.read_text(path)
    except NotAvailable:
        raise NotAvailable("read memory pressure", NO_PRESSURE, str(path)) from None
    return parse_pressure(text, "group", str(path))


def read_host_pressure(path: Path = HOST_PRESSURE) -> MemoryPressure:
    """The memory pressure of the whole host (/proc/pressure/memory, 4.20+)."""
    return parse_pressure(_read_host_file(Path(path)), "host", str(path))


def read_pressure(fs: CgroupFS, group_path: Path, host_path: Path = HOST_PRESSURE) -> MemoryPressure | None:
    """The best pressure signal for the group at GROUP_PATH: its own
    memory.pressure (v2), else the host's (v1 has no per-group PSI), else None
    (no PSI on this kernel).  NotFound when the group is gone."""
    try:
        return read_group_pressure(fs, group_path)
    except NotAvailable:
        pass
    try:
        return read_host_pressure(host_path)
    except (NotAvailable, NotFound):
        return None


def stalled_percent(before: MemoryPressure, after: MemoryPressure, seconds: float) -> float:
    """Percent of the SECONDS of wall time between two readings of one file in
    which some task was stalled on memory (the `some` totals' difference)."""
    if seconds <= 0:
        raise ValueError("the two readings must be taken at different times")
    stalled_us = max(0, after.some.total_us - before.some.total_us)
    return stalled_us / (seconds * 1e6) * 100


class PressureTrigger:
    """A PSI trigger: the kernel wakes us when tasks stalled at least STALL_US
    microseconds (KIND "some" or "full") within any window of WINDOW_US.

    Poll fileno() for POLLPRI (several triggers and eventfds can share one
    poll), then pass what poll returned to fired(); or call wait().  At most
    one event per window.  POLLERR means the group was removed: fired() then
    raises NotFound.  Close it (or use it as a context manager).
    """

    poll_events = select.POLLPRI | select.POLLERR

    def __init__(self, path: Path, stall_us: int, window_us: int, kind: str = "some", fd: int | None = None):
        """A trigger on the pressure file PATH: the host's, opened here, or a
        group's, whose FD the filesystem layer opened and checked (for_group)."""
        check_trigger(stall_us, window_us, kind)
        self.path = Path(path)
        self._fd = self._open() if fd is None else fd
        try:
            self._register(f"{kind} {stall_us} {window_us}")
        except BaseException:
            os.close(self._fd)
            raise

    @classmethod
    def for_group(cls, fs: CgroupFS, group: Group, stall_us: int, window_us: int,
                  kind: str = "some") -> PressureTrigger:
        """A trigger on GROUP's memory.pressure (cgroup v2), opened through the
        filesystem layer: NotAvailable on v1 (no such file) and on a fake root."""
        check_trigger(stall_us, window_us, kind)
        fd = fs.open_for_watch(group, GROUP_PRESSURE, os.O_RDWR)
        return cls(group.path / GROUP_PRESSURE, stall_us, window_us, kind, fd)

    def _open(self) -> int:
        """The host's /proc/pressure/memory (not a cgroup file)."""
        what = f"open {self.path.name} for a pressure trigger"
        try:
            return os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            if not self.path.parent.is_dir():
                raise NotFound(what, "no such group", str(self.path.parent)) from None
            raise NotAvailable(what, "no pressure information here (cgroup v1, or no PSI)", str(self.path)) from None
        except OSError as err:
            raise error_from_oserror(err, what, str(self.path), TRIGGER_REASONS.get(err.errno)) from err

    def _register(self, text: str) -> None:
        try:
            # The trailing NUL is what the kernel's own example writes.
            os.write(self._fd, text.encode() + b"\0")
        except OSError as err:
            why = TRIGGER_REASONS.get(err.errno) or describe_errno(err.errno)
            raise error_from_oserror(err, f"write {text!r} to {self.path.name}", str(self.path), why) from err

    def fileno(self) -> int:
        return self._fd

    def fired(self, events: int) -> bool:
        """Whether the poll EVENTS of this trigger's fd mean it fired; NotFound
        when they say the group went away (POLLERR)."""
        if events & (select.POLLERR | select.POLLNVAL):
            raise NotFound("wait for memory pressure", "the group was removed", str(self.path.parent))
        return bool(events & select.POLLPRI)

    def consume(self) -> None:
        """Nothing to clear: the kernel reports each event to one poll only."""

    def wait(self, timeout_seconds: float | None) -> bool:
        """Block until the trigger fires (True) or TIMEOUT_SECONDS pass (False)."""
        poller = select.poll()
        poller.register(self._fd, select.POLLPRI)
        timeout_ms = None if timeout_seconds is None else max(0, int(timeout_seconds * 1000))
        ready = poller.poll(timeout_ms)  # retried on EINTR by Python (PEP 475)
        return any(self.fired(events) for _, events in ready)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> PressureTrigger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def check_trigger(stall_us: int, window_us: int, kind: str = "some") -> None:
    """UsageError unless the kernel would accept this trigger (checked before
    anything is opened, so that the message names the values)."""
    if kind not in ("some", "full"):
        raise UsageError(f"pressure trigger {kind!r}", "the kind must be some or full")
    if not MIN_WINDOW_US <= window_us <= MAX_WINDOW_US:
        raise UsageError(f"pressure trigger window {window_us} us", "must be from 500000 us (500 ms) to 10000000 us "
                         "(10 s)")
    if not 0 < stall_us <= window_us:
        raise UsageError(f"pressure trigger stall {stall_us} us", f"must be more than 0 and at most the window "
                         f"({window_us} us)")
