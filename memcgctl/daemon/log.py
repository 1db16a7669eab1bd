"""The daemon's log: one line per action on stderr (journald takes it), a
line for what a person must know (a backoff, a reload), and with -v the
detail of each pass.  A log that cannot be written (stderr closed or full)
never stops the daemon.  Names are spelled as everywhere else (escape.printable)."""

from __future__ import annotations

import sys

from ..escape import printable
from ..sizes import format_size

PREFIX = "memcgctl daemon: "


class DaemonLog:
    def __init__(self, verbose: int = 0, stream=None):
        self.verbose = verbose
        self.stream = stream

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        try:
            # Every line escaped whole: a newline in a group's name cannot
            # start a line of its own (a forged action), nor ESC rewrite one.
            stream.write(PREFIX + printable(text) + "\n")
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
        self._write(text)

    def detail(self, text: str) -> None:
        if self.verbose:
            self._write(text)
