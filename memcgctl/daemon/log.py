"""The daemon's log: one line per action on stderr (journald takes it), a
line for what a person must know (a backoff, a reload), and with -v the
detail of each pass.  A log that cannot be written (stderr closed or full)
never stops the daemon.  Names are spelled as everywhere else (escape.printable).

Where stderr goes decides the form of each line, as systemd's own tools do:
- the journal (JOURNAL_STREAM names stderr's device and inode): a priority
  prefix of sd-daemon(3), "<3>" error to "<7>" debug, so that
  `journalctl -p warning` finds backoffs and failed reloads;
- a terminal: the local time first (the journal has its own);
- anything else (a file, a pipe, cron's mail): the line alone.
"""

from __future__ import annotations

import os
import sys
import time

from ..escape import printable
from ..sizes import format_size

PREFIX = "memcgctl daemon: "
# sd-daemon(3) priorities (syslog's levels).
ERROR, WARNING, INFO, DEBUG = 3, 4, 6, 7


def stream_form(fd: int | None) -> str:
    """"journal", "terminal" or "plain": what the stream of FD is."""
    if fd is None:
        return "plain"
    try:
        status = os.fstat(fd)
    except OSError:
        return "plain"
    if os.environ.get("JOURNAL_STREAM") == f"{status.st_dev}:{status.st_ino}":
        return "journal"
    return "terminal" if os.isatty(fd) else "plain"


def _fd_of(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


class DaemonLog:
    def __init__(self, verbose: int = 0, stream=None):
        self.verbose = verbose
        self.stream = stream
        # stderr itself (fd 2) unless a stream is given: the command line
        # wraps sys.stderr in an object that has no fd.
        self.form = stream_form(2 if stream is None else _fd_of(stream))

    def _write(self, text: str, priority: int = INFO) -> None:
        stream = self.stream or sys.stderr
        # Every line escaped whole: a newline in a group's name cannot start
        # a line of its own (a forged action), nor ESC rewrite one.
        text = printable(text)
        if self.form == "journal":
            line = f"<{priority}>{PREFIX}{text}\n"
        elif self.form == "terminal":
            line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {PREFIX}{text}\n"
        else:
            line = f"{PREFIX}{text}\n"
        try:
            stream.write(line)
            stream.flush()
        except (OSError, ValueError):
            pass  # no one to tell: keep reclaiming

    def action(self, group: str, policy: str, why: str, before: int, after: int, seconds: float,
               outcome: str = "") -> None:
        """One line per step: group, policy, why, before -> after, seconds."""
        tail = f" ({outcome})" if outcome else ""
        self._write(f"{group}: {policy}: {why}: {format_size(before)} -> {format_size(after)} "
                    f"in {seconds:.3f} s{tail}")

    def would(self, group: str, policy: str, why: str, shell_lines: list[str]) -> None:
        """--dry-run: the writes a step would make."""
        self._write(f"{group}: {policy}: {why}: would run: {'; '.join(shell_lines) or 'nothing'}")

    def note(self, text: str) -> None:
        """What happened that a person should know, and is no trouble."""
        self._write(text)

    def warning(self, text: str) -> None:
        """Something is not as it should be, and the daemon goes on (a backoff, a group it cannot read)."""
        self._write(text, WARNING)

    def error(self, text: str) -> None:
        """Something failed that a person must fix (a reload refused)."""
        self._write(text, ERROR)

    def detail(self, text: str) -> None:
        if self.verbose:
            self._write(text, DEBUG)
