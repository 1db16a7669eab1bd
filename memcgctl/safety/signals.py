"""Signals as exceptions, so that a try/finally can always undo a change.

A v1 shrink lowers memory.limit_in_bytes for a moment; whatever happens next
(Ctrl-C, SIGTERM, SIGHUP, a timeout) the previous limit must be written back.
These helpers only work in the main thread, as Python's signal handlers do.
"""

from __future__ import annotations

# _signal is what the signal module wraps, with the same names; signal.py adds
# enums made at import (about 0.7 ms of every `limit` and `shrink`).  Signal
# numbers here are plain ints.
import _signal as signal
import contextlib
import threading

from ..errors import DeadlinePassed, Interrupted
from .deadline import ATTEMPT_FLOOR_SECONDS, Deadline

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def stop_signals_raise():
    """Within the block, SIGINT, SIGTERM and SIGHUP raise Interrupted."""
    if not _in_main_thread():
        yield
        return

    def handler(signum, _frame):
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old_handler in previous.items():
            signal.signal(signum, old_handler)


@contextlib.contextmanager
def stop_signals_blocked():
    """Hold stop signals (and the timeout alarm) back until the block is done.

    Used around a restore write: a signal arriving then must not cut it short;
    it is delivered as soon as the block ends.
    """
    held = set(STOP_SIGNALS) | {signal.SIGALRM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def run_despite_signals(action) -> None:
    """Run ACTION (a restore) to its end with stop signals held back.

    A signal that slips in just before they are held raises there, before
    ACTION ran: run it again, and raise that signal's exception afterwards.
    ACTION must be safe to run twice, and must never block: with stop signals
    held only SIGKILL could end it.  The restore it runs opens files through
    kernel.fs, which opens with O_NONBLOCK and checks the file before writing,
    so a FIFO planted in place of memory.limit_in_bytes is refused at once
    instead of waiting for a reader (issue 13, finding 1).
    """
    interrupted = None
    while True:
        try:
            with stop_signals_blocked():
                action()
            break
        except (Interrupted, DeadlinePassed) as exception:
            interrupted = exception
    if interrupted is not None:
        raise interrupted


@contextlib.contextmanager
def alarm_at(deadline: Deadline):
    """Raise DeadlinePassed in the block when DEADLINE passes.

    Only for a kernel call that nothing else can bound: a v1 write to
    memory.limit_in_bytes reclaims synchronously inside the write, and only a
    signal (EINTR) ends it early.  SIGALRM works in the main thread only;
    elsewhere the block runs unbounded.  A deadline already passed still
    gives the call ATTEMPT_FLOOR_SECONDS: a timeout of 0 means one attempt.
    """
    remaining = deadline.remaining()
    if remaining is None or not _in_main_thread():
        yield
        return

    def handler(_signum, _frame):
        raise DeadlinePassed()

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(remaining, ATTEMPT_FLOOR_SECONDS))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
