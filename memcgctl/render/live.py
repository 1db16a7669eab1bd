"""The live display of `memcgctl top`: rich's Live on the alternate screen,
keys read in cbreak mode, the terminal always given back as it was.

The terminal is restored on q, on Ctrl-C, SIGTERM and SIGHUP (raised as
Interrupted by safety.signals and passed on after the restore), around a
suspend (Ctrl-Z, SIGTSTP: restored, stopped, and set up again on `fg`), and
when writing fails.  A resized window is redrawn at once (SIGWINCH).
"""

from __future__ import annotations

import contextlib
import math
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
from .columns import aligned_lines, column_widths
from .frames import frame_columns, frame_title, sort_by_key, table_cells

ESCAPE, ENTER, BACKSPACES = "\x1b", ("\r", "\n"), ("\x7f", "\x08")
ALERT_STYLE = "bold red"
# Lines besides the rows: the title, the header, the footer.
CHROME_LINES = 3
# The keys that scroll, as terminals send them (xterm, tmux, the Linux console).
ESCAPE_SEQUENCES = {
    "\x1b[A": "up", "\x1bOA": "up", "\x1b[B": "down", "\x1bOB": "down",
    "\x1b[5~": "page-up", "\x1b[6~": "page-down",
    "\x1b[H": "home", "\x1bOH": "home", "\x1b[1~": "home", "\x1b[7~": "home",
    "\x1b[F": "end", "\x1bOF": "end", "\x1b[4~": "end", "\x1b[8~": "end",
}
SCROLL_KEYS = ("up", "down", "page-up", "page-down", "home", "end")
# The delays + and - step through (seconds).
DELAY_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 86400)
HELP = """\
Keys of memcgctl top

  q               quit
  h ?             this help (any key returns)
  Up Down         scroll one row
  PgUp PgDn       scroll one screen
  Home End        first rows, last rows
  t               tree or flat
  /               filter by name (Enter apply, Esc cancel; empty: all)
  d               delay: type seconds, Enter (Esc cancel)
  + -             longer, shorter delay
  space           pause
  {sort_keys}
                  sort (again: reverse)

Rows at 90% of their limit or more, or with any OOM kill, stand out.
Events: totals, with what is new since start in brackets: 12(+3).
A narrow window hides the least important columns first (WSET/AGE,
ZSWAP, SWAP, pressure, FILE, ANON, PIDS, ...); the sorted column stays.
WSET/AGE, while a daemon runs a pressure rule on the group: its
working-set estimate and how long ago it last changed."""


class View:
    """What the person chose: sort column and direction, tree or flat, the
    name filter (and the one being typed), the delay, the first row shown,
    help shown, paused or not."""

    def __init__(self, version: int, interval: float = 1.0, interval_range: tuple = (0.1, 86400.0)):
        self.sort_keys = sort_by_key(version)
        self.sort = "usage"
        self.reverse = False
        self.tree = False
        self.name_filter = ""
        self.typing: str | None = None  # what is typed after '/' or 'd'
        self.prompt = "filter"  # what is being typed: "filter" or "delay"
        self.message = ""  # a complaint about what was typed, until the next key
        self.interval = interval
        self.interval_range = interval_range
        self.first = 0  # index of the first row shown
        self.page = 1  # rows on one screen, as last drawn
        self.help = False
        self.paused = False
        self.quit = False

    def press(self, key: str) -> None:
        self.message = ""
        if self.help:
            self.help = False  # any key returns from the help
        elif self.typing is not None:
            self._type(self.typing, key)
        elif key == "q":
            self.quit = True
        elif key in ("h", "?"):
            self.help = True
        elif key == "t":
            self.tree = not self.tree
        elif key == " ":
            self.paused = not self.paused
        elif key in ("/", "d"):
            self.prompt = "filter" if key == "/" else "delay"
            self.typing = self.name_filter if key == "/" else ""
        elif key in ("+", "-"):
            self._step_delay(longer=key == "+")
        elif key in SCROLL_KEYS:
            self._scroll(key)
        elif key in self.sort_keys:
            chosen = self.sort_keys[key]
            self.reverse = not self.reverse if chosen == self.sort else False
            self.sort = chosen

    def _type(self, typed: str, key: str) -> None:
        """KEY pressed while TYPED is what was typed so far."""
        if key in ENTER:
            self.typing = None
            if self.prompt == "filter":
                self.name_filter = typed
            else:
                self._set_delay(typed)
        elif key == ESCAPE:
            self.typing = None
        elif key in BACKSPACES:
            self.typing = typed[:-1]
        elif len(key) == 1 and key.isprintable():
            self.typing = typed + key

    def _set_delay(self, typed: str) -> None:
        shortest, longest = self.interval_range
        try:
            seconds = float(typed)
        except ValueError:
            seconds = math.nan
        if math.isfinite(seconds) and shortest <= seconds <= longest:
            self.interval = seconds
        else:
            self.message = f"delay {typed!r} not changed: give seconds from {shortest:g} to {longest:g}"

    def _step_delay(self, longer: bool) -> None:
        shortest, longest = self.interval_range
        steps = [step for step in DELAY_STEPS if shortest <= step <= longest]
        if longer:
            self.interval = next((step for step in steps if step > self.interval), self.interval)
        else:
            self.interval = next((step for step in reversed(steps) if step < self.interval), self.interval)

    def _scroll(self, key: str) -> None:
        if key == "home":
            self.first = 0
        elif key == "end":
            self.first = sys.maxsize  # window() brings it back to the last screen
        else:
            step = {"up": -1, "down": 1, "page-up": -self.page, "page-down": self.page}[key]
            self.first = max(0, self.first + step)

    def window(self, total: int, rows: int) -> slice:
        """The rows to show of TOTAL when ROWS fit: from the first chosen, but
        never past the last screen (rows vanish, windows grow)."""
        self.page = max(1, rows)
        self.first = max(0, min(self.first, total - rows))
        return slice(self.first, self.first + max(0, rows))

    def footer(self, width: int = 200) -> str:
        """The keys; the sort keys by name, or if that does not fit in WIDTH
        as letters in the order of the columns."""
        if self.typing is not None:
            what = "filter by name" if self.prompt == "filter" else "delay in seconds"
            return f"{what}: {self.typing}_   (Enter apply, Esc cancel)"
        if self.message:
            return self.message
        if self.help:
            return "press any key to return"
        named = " ".join(f"{key}={name}" for key, name in self.sort_keys.items())
        letters = " ".join(self.sort_keys)
        for footer in (f"q quit  h help  t tree  / filter  space pause  sort: {named}",
                       f"q quit  h help  sort: {named}",
                       f"q quit  h help  t tree  / filter  sort by column: {letters}"):
            if len(footer) <= width:
                return footer
        return "q quit  h help (keys)"


def fitting_columns(shown: list, header: list[str], cells: list[list[str]], width: int, sort: str) -> list[int]:
    """The indices of the columns (SHOWN) to show in WIDTH: all of them if
    they fit, else without the least important ones (never the group, nor the
    sorted column); the group's name is cut at the right if even that is too wide."""
    widths = column_widths(header, cells)
    kept = list(range(len(shown)))
    for index in sorted(kept[1:], key=lambda index: shown[index].importance):
        if sum(widths[i] for i in kept) + 2 * (len(kept) - 1) <= width:
            break
        if shown[index].sort != sort:
            kept.remove(index)
    return kept


def render(frame: Frame, view: View, width: int, height: int) -> Text:
    """The screen for FRAME: only the rows that fit are formatted."""
    ordered = order_rows(frame.rows, view.sort, view.reverse, view.tree, view.name_filter)
    rows = max(0, height - CHROME_LINES)
    window = view.window(len(ordered), rows)
    visible = ordered[window]
    scrolled = (window.start + 1, window.start + len(visible)) if 0 < len(visible) < len(ordered) else None
    title = frame_title(frame, view.interval, len(ordered), scrolled)
    title += (f" - filter: {view.name_filter}" if view.name_filter else "") + ("  PAUSED" if view.paused else "")
    # A narrow window: which rows show matters more than the delay, then the name.
    for dispensable in (f" - every {view.interval:g} s", "memcgctl top - "):
        if len(title) > width:
            title = title.replace(dispensable, "", 1)
    text = Text(no_wrap=True, overflow="crop")
    text.append(title[:width] + "\n", style="bold")
    if view.help:
        return _help_screen(text, view, width, height)
    header, cells = table_cells(frame, visible)
    shown = frame_columns(frame)
    sorted_index = next(i for i, column in enumerate(shown) if column.sort == view.sort)
    header[sorted_index] += "^" if view.reverse else "v"
    kept = fitting_columns(shown, header, cells, width, view.sort)
    lines = aligned_lines([header[i] for i in kept], [[line[i] for i in kept] for line in cells])
    text.append(lines[0][:width] + "\n", style="reverse")
    for line, (_, row) in zip(lines[1:], visible, strict=True):
        text.append(line[:width] + "\n", style=ALERT_STYLE if row.stands_out else None)
    text.append(view.footer(width)[:width], style="dim")
    return text


def _help_screen(text: Text, view: View, width: int, height: int) -> Text:
    sort_keys = " ".join(f"{key}={name}" for key, name in view.sort_keys.items())
    lines = HELP.format(sort_keys=sort_keys).splitlines()[:max(0, height - 2)]
    for line in lines:
        text.append(line[:width] + "\n")
    text.append(view.footer(width)[:width], style="dim")
    return text


def split_keys(data: str) -> list[str]:
    """The keys in DATA as read from the terminal: characters, and the
    escape sequences of SCROLL_KEYS by name; other sequences (F1, ...) are
    dropped, and a lone Esc stays Esc."""
    keys, index = [], 0
    while index < len(data):
        if data[index] == ESCAPE and data[index + 1:index + 2] in ("[", "O"):
            end = index + 2
            if data[index + 1] == "[":
                while end < len(data) and "\x20" <= data[end] <= "\x3f":
                    end += 1  # parameters (5 in ESC [ 5 ~)
            sequence = data[index:end + 1]
            if sequence in ESCAPE_SEQUENCES:
                keys.append(ESCAPE_SEQUENCES[sequence])
            index = end + 1
        else:
            keys.append(data[index])
            index += 1
    return keys


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
        return split_keys(data)


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

    def __init__(self, sampler: Sampler, interval: float, count: int | None,
                 interval_range: tuple = (0.1, 86400.0)):
        self.sampler = sampler
        self.count = count
        self.view = View(sampler.backend.version, interval, interval_range)
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
        live.update(render(frame, self.view, width, height), refresh=True)

    def _loop(self, live: Live, frame: Frame, wake: int, arrived: set) -> None:
        shown, last = 1, time.monotonic()
        self._draw(live, frame)
        while not self.view.quit and (self.count is None or shown < self.count):
            # The delay may have changed (d, + and -): the next frame is due one delay after the last.
            interval = self.view.interval
            due = last + interval
            now = time.monotonic()
            if now >= due:
                last = due + interval * int((now - due) // interval)  # frames missed (a stop) are skipped
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
