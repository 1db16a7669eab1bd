"""The live display of `memcgctl top`: rich's Live on the alternate screen,
keys read in cbreak mode, the terminal always given back as it was.

The terminal is restored on q, on Ctrl-C, SIGTERM and SIGHUP (raised as
Interrupted by safety.signals and passed on after the restore), around a
suspend (Ctrl-Z, SIGTSTP: restored, stopped, and set up again on `fg`), and
when writing fails.  A resized window is redrawn at once (SIGWINCH).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import termios
import time
import tty

from rich.console import Console
from rich.live import Live
from rich.text import Text

from ..operations.sampling import Frame, Sampler, order_rows
from .columns import aligned_lines
from .frames import columns, frame_title, sort_by_key, table_cells

ESCAPE, ENTER, BACKSPACES = "\x1b", ("\r", "\n"), ("\x7f", "\x08")
ALERT_STYLE = "bold red"
# Lines besides the rows: the title, the header, the footer.
CHROME_LINES = 3


class View:
    """What the person chose: sort column and direction, tree or flat, the
    name filter (and the one being typed), paused or not."""

    def __init__(self, version: int):
        self.sort_keys = sort_by_key(version)
        self.sort = "usage"
        self.reverse = False
        self.tree = False
        self.name_filter = ""
        self.typing: str | None = None  # the filter being typed after '/'
        self.paused = False
        self.quit = False

    def press(self, key: str) -> None:
        if self.typing is not None:
            self._type(key)
        elif key == "q":
            self.quit = True
        elif key == "t":
            self.tree = not self.tree
        elif key == " ":
            self.paused = not self.paused
        elif key == "/":
            self.typing = self.name_filter
        elif key in self.sort_keys:
            chosen = self.sort_keys[key]
            self.reverse = not self.reverse if chosen == self.sort else False
            self.sort = chosen

    def _type(self, key: str) -> None:
        if key in ENTER:
            self.name_filter, self.typing = self.typing, None
        elif key == ESCAPE:
            self.typing = None
        elif key in BACKSPACES:
            self.typing = self.typing[:-1]
        elif key.isprintable():
            self.typing += key

    def footer(self, width: int = 200) -> str:
        """The keys; the sort keys by name, or if that does not fit in WIDTH
        as letters in the order of the columns."""
        if self.typing is not None:
            return f"filter by name: {self.typing}_   (Enter apply, Esc cancel)"
        named = " ".join(f"{key}={name}" for key, name in self.sort_keys.items())
        full = f"q quit  t tree  / filter  space pause  sort: {named}"
        if len(full) <= width:
            return full
        return f"q quit  t tree  / filter  space pause  sort by column: {' '.join(self.sort_keys)}"


def render(frame: Frame, view: View, interval: float, width: int, height: int) -> Text:
    """The screen for FRAME: only the rows that fit are formatted."""
    ordered = order_rows(frame.rows, view.sort, view.reverse, view.tree, view.name_filter)
    visible = ordered[:max(0, height - CHROME_LINES)]
    header, cells = table_cells(frame, visible)
    sorted_index = next(i for i, column in enumerate(columns(frame.cgroup_version)) if column.sort == view.sort)
    header[sorted_index] += "^" if view.reverse else "v"
    lines = aligned_lines(header, cells)
    title = frame_title(frame, interval, len(ordered))
    title += (f" - filter: {view.name_filter}" if view.name_filter else "") + ("  PAUSED" if view.paused else "")
    text = Text(no_wrap=True, overflow="crop")
    text.append(title[:width] + "\n", style="bold")
    text.append(lines[0][:width] + "\n", style="reverse")
    for line, (_, row) in zip(lines[1:], visible, strict=True):
        text.append(line[:width] + "\n", style=ALERT_STYLE if row.stands_out else None)
    text.append(view.footer(width)[:width], style="dim")
    return text


class Keyboard:
    """Standard input in cbreak mode (keys arrive one by one, unechoed;
    Ctrl-C and Ctrl-Z still send their signals), restored by restore()."""

    def __init__(self, fd: int):
        self.fd = fd
        self.saved = termios.tcgetattr(fd) if os.isatty(fd) else None

    def enter(self) -> None:
        if self.saved is not None:
            tty.setcbreak(self.fd, termios.TCSANOW)

    def restore(self) -> None:
        if self.saved is not None:
            # A terminal that went away (window closed: SIGHUP) has nothing to restore.
            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)

    def read_keys(self) -> list[str] | None:
        """The keys pressed; None at the end of input (no more keys to wait for)."""
        data = os.read(self.fd, 64).decode("utf-8", "replace")
        if not data:
            return None
        if data.startswith(ESCAPE) and len(data) > 1:
            return []  # an arrow or function key: not ours
        return list(data)


@contextlib.contextmanager
def _wake_on(signals: tuple):
    """A pipe that SIGNALS write to, so that select() returns at once; and
    the set of those that arrived."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    arrived: set[int] = set()

    def handler(signum, _frame):
        arrived.add(signum)
        with contextlib.suppress(OSError):
            os.write(write_end, b"!")

    previous = {signum: signal.signal(signum, handler) for signum in signals}
    try:
        yield read_end, arrived
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        os.close(read_end)
        os.close(write_end)


class LiveTop:
    """Runs the live display until q, COUNT frames, or a stop signal."""

    def __init__(self, sampler: Sampler, interval: float, count: int | None):
        self.sampler = sampler
        self.interval = interval
        self.count = count
        self.view = View(sampler.backend.version)
        self.console = Console()
        self.keyboard = Keyboard(sys.stdin.fileno()) if sys.stdin.isatty() else None

    def run(self) -> None:
        from ..safety.signals import stop_signals_raise

        frame = self.sampler.next_frame()
        live = Live(console=self.console, screen=True, auto_refresh=False, redirect_stdout=False,
                    redirect_stderr=False)
        wake_signals = (signal.SIGWINCH, signal.SIGTSTP, signal.SIGCONT)
        with stop_signals_raise(), _wake_on(wake_signals) as (wake, arrived):
            try:
                self._enter(live)
                self._loop(live, frame, wake, arrived)
            finally:
                self._leave(live)

    def _enter(self, live: Live) -> None:
        if self.keyboard:
            self.keyboard.enter()
        live.start()

    def _leave(self, live: Live) -> None:
        try:
            # Leaving the alternate screen writes to the terminal: if it went
            # away, there is no screen to give back, and the reason we stop
            # (SIGHUP) must not turn into a write error.
            with contextlib.suppress(OSError):
                live.stop()
        finally:
            if self.keyboard:
                self.keyboard.restore()

    def _draw(self, live: Live, frame: Frame) -> None:
        # The terminal's size now, not rich's guess: exported COLUMNS and
        # LINES would pin it, and the window may have been resized.
        with contextlib.suppress(OSError):
            self.console.size = os.get_terminal_size(sys.stdout.fileno())
        width, height = self.console.size
        live.update(render(frame, self.view, self.interval, width, height), refresh=True)

    def _loop(self, live: Live, frame: Frame, wake: int, arrived: set) -> None:
        shown, due = 1, time.monotonic() + self.interval
        self._draw(live, frame)
        while not self.view.quit and (self.count is None or shown < self.count):
            if time.monotonic() >= due:
                due += self.interval * max(1, int((time.monotonic() - due) // self.interval) + 1)
                if not self.view.paused:
                    frame, shown = self.sampler.next_frame(), shown + 1
                self._draw(live, frame)
                continue
            if self._wait(due, wake, arrived, live):
                self._draw(live, frame)

    def _wait(self, due: float, wake: int, arrived: set, live: Live) -> bool:
        """Wait for a key, a signal or DUE; True when the screen must be redrawn."""
        watched = [wake] + ([self.keyboard.fd] if self.keyboard else [])
        ready, _, _ = select.select(watched, [], [], max(0.0, due - time.monotonic()))
        redraw = False
        if wake in ready:
            os.read(wake, 64)
            if signal.SIGTSTP in arrived:
                self._suspend(live)
            elif signal.SIGCONT in arrived and self.keyboard:
                self.keyboard.enter()  # stopped by SIGSTOP: the shell may have reset the terminal
            arrived.clear()
            redraw = True  # resized, or back from a stop
        if self.keyboard and self.keyboard.fd in ready:
            keys = self.keyboard.read_keys()
            if keys is None:
                self.keyboard.restore()
                self.keyboard = None
            for key in keys or []:
                self.view.press(key)
            redraw = True
        return redraw

    def _suspend(self, live: Live) -> None:
        """Ctrl-Z: give the terminal back, stop, and take it again on `fg`."""
        self._leave(live)
        previous = signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        try:
            os.kill(os.getpid(), signal.SIGTSTP)  # stops here until SIGCONT
        finally:
            signal.signal(signal.SIGTSTP, previous)
        self._enter(live)
