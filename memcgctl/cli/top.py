"""memcgctl top: a live view of memory groups; -b plain frames, --json JSON lines."""

from __future__ import annotations

import contextlib
import math
import sys
import time

import click

from .options import Settings, complete_group

# A refresh more often than this only measures itself.
SHORTEST_INTERVAL = 0.1
LONGEST_INTERVAL = 86400.0


class IntervalType(click.ParamType):
    """Seconds between two frames: a finite number from 0.1 to 86400."""

    name = "seconds"

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            return value
        try:
            seconds = float(value)
        except ValueError:
            self.fail(f"'{value}' is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or not SHORTEST_INTERVAL <= seconds <= LONGEST_INTERVAL:
            self.fail(f"'{value}': give seconds from {SHORTEST_INTERVAL:g} to {LONGEST_INTERVAL:g}", param, ctx)
        return seconds


@click.command()
@click.argument("groups", nargs=-1, metavar="[GROUP]...", shell_complete=complete_group)
@click.option("-d", "--delay", "interval", type=IntervalType(), default=1.0, show_default=True,
              metavar="SECONDS", help="Seconds between two frames (0.1 to 86400).")
@click.option("-n", "--iterations", "count", type=click.IntRange(min=1), metavar="COUNT",
              help="Stop after COUNT frames.")
@click.option("-b", "--batch", is_flag=True, help="Plain frames one after another, for logs (like top -b).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per frame (JSON lines), sizes in bytes.")
@click.pass_obj
def top(settings: Settings, groups, interval, count, batch, as_json):
    """Watch memory groups live: usage, limit, % of limit, change per second,
    anonymous, file and swap memory, pressure, events, processes.
    With no GROUP, every group under the root; a GROUP includes those below it.

    Keys: q quit, h or ? help, arrows, PgUp/PgDn and Home/End scroll (the
    title says which rows show), t tree or flat, / filter by name, d delay
    (type seconds) or + and - to step it, space pause, and the keys shown in
    the footer sort (again: reverse).  Events are totals, with what is new
    since start in brackets: 12(+3).  Rows at 90% of their limit or more, or
    with any OOM kill, stand out.  A narrow window hides the least important
    columns first.  While a daemon runs a pressure rule on a group, WSET/AGE
    shows its working-set estimate and how long ago it last changed.  Without
    a terminal, or with -b, plain frames are printed.

    \b
    Example:
      memcgctl top -d 2 batch
      memcgctl top -b -n 3 > memory.log
    """
    from ..operations.sampling import Sampler
    from ..render.frames import frame_parts

    backend = settings.backend()
    sampler = Sampler(backend, groups, parts=frame_parts(backend.version),
                      working_sets=lambda: _daemon_working_sets(backend))
    if not (as_json or batch) and sys.stdout.isatty():
        from ..render.live import LiveTop

        _guard_output(LiveTop(sampler, interval, count, (SHORTEST_INTERVAL, LONGEST_INTERVAL)).run)
    else:
        _guard_output(lambda: _print_frames(sampler, interval, count, as_json))
    # After the frames (and the live screen) are done: said once per group.
    settings.exit_with_unreadable("top", list(sampler.unreadable.items()))


def _daemon_working_sets(backend) -> dict:
    """{group: (bytes, unix time of its last change)}: a running daemon's
    working-set estimates, read again each frame (the daemon rewrites its
    counters file after each change); the first policy's where two have one."""
    from ..export.daemon_counters import working_sets

    found: dict = {}
    for each in working_sets(backend):
        found.setdefault(each.group, (each.size, each.updated))
    return found


def _print_frames(sampler, interval: float, count: int | None, as_json: bool) -> None:
    from ..operations.sampling import order_rows
    from ..safety.signals import stop_signals_raise

    if as_json:
        from ..render.json_text import dumps_utf8
    else:
        from ..render.frames import batch_text
    shown, due = 0, time.monotonic()
    with stop_signals_raise():
        while count is None or shown < count:
            if shown:
                time.sleep(max(0.0, due - time.monotonic()))
            due += interval
            frame = sampler.next_frame()
            shown += 1
            if as_json:
                sys.stdout.write(dumps_utf8(frame.to_json(), separators=(",", ":")) + "\n")
            else:
                sys.stdout.write(batch_text(frame, order_rows(frame.rows), interval))
            sys.stdout.flush()


def _guard_output(show) -> None:
    """Run SHOW; a reader that went away (`top -b | head`) ends top quietly
    with 141, as every command, any other failure to write is one line and 74."""
    from ..errors import OutputClosed, OutputError

    try:
        show()
        sys.stdout.flush()
    except OutputError as error:  # the command line's checked stdout (cli/output.py) says it this way
        _output_failed(None if isinstance(error, OutputClosed) else error.why)
    except OSError as error:
        from ..errors import describe_errno

        _output_failed(None if isinstance(error, BrokenPipeError) else describe_errno(error.errno))


def _output_failed(why: str | None) -> None:
    """End top with 74 saying WHY, or quietly with 141 if the reader went away (None)."""
    import os

    if why is not None:
        with contextlib.suppress(OSError):  # stderr may be the same closed terminal
            click.echo(f"memcgctl: write output: {why} (stdout)", err=True)
    # Else Python would fail again when it flushes stdout at exit.
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    raise SystemExit(141 if why is None else 74) from None
