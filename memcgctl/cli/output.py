"""Standard output of the command line: a write that fails is a memcgctl error.

`stat > /dev/full`, `stat >&-` (stdout closed) and `stat | head -0` (the reader
went away) make Python raise OSError when the output is written or flushed,
often only at exit, after the work is done.  CheckedOutput turns that into
OutputError (exit 74, one line) or OutputClosed (exit 141, quiet, like a
command killed by SIGPIPE), at the moment it happens, and sends what is still
buffered to /dev/null so that the interpreter's last flush cannot fail again.
"""

from __future__ import annotations

import errno
import os
import sys

from ..errors import OutputClosed, OutputError, describe_errno

WHAT = "write standard output"


class CheckedOutput:
    """Wraps sys.stdout (None when fd 1 was closed at start).  QUIET (for
    stderr): a failing write is dropped instead, as there is no one left to
    tell, and the exit status still says what happened."""

    def __init__(self, stream, quiet: bool = False):
        self._stream = stream
        self._quiet = quiet
        self._failed = False

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str:
        return getattr(self._stream, "errors", None) or "strict"

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # as a text stream does (click probes with b"")
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self._failed or not text:
            return len(text)
        if self._stream is None:
            self._fail(errno.EBADF, "standard output is closed (EBADF)")
            return len(text)
        try:
            return self._stream.write(text)
        except OSError as err:
            self._fail(err.errno)
            return len(text)

    def flush(self) -> None:
        if self._failed or self._stream is None:
            return
        try:
            self._stream.flush()
        except OSError as err:
            self._fail(err.errno)

    @property
    def buffer(self):
        """The binary stream under the text one (click.echo writes bytes there,
        as `export` does), which reports its own OSError; with fd 1 closed at
        start, one whose writes fail with EBADF, as a closed fd's would."""
        if self._stream is None:
            return _ClosedBinaryOutput()
        return self._stream.buffer

    def isatty(self) -> bool:
        return self._stream is not None and self._stream.isatty()

    def fileno(self) -> int:
        if self._stream is None:
            raise OSError(errno.EBADF, "standard output is closed")
        return self._stream.fileno()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)

    def _fail(self, number: int | None, why: str | None = None):
        self._failed = True
        self._discard_buffered()
        if self._quiet:
            return
        error_class = OutputClosed if number == errno.EPIPE else OutputError
        raise error_class(WHAT, why or describe_errno(number))

    def _discard_buffered(self) -> None:
        """Point fd 1 at /dev/null: the text still buffered goes nowhere."""
        try:
            fd = self._stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
        except (OSError, ValueError, AttributeError):
            return
        os.dup2(null, fd)
        os.close(null)


class _ClosedBinaryOutput:
    """CheckedOutput.buffer when standard output was closed at start."""

    def write(self, data) -> int:
        if not data:  # click probes a binary stream with b""
            return 0
        raise OSError(errno.EBADF, "standard output is closed")

    def flush(self) -> None:
        pass


def say_error(line: str) -> None:
    """LINE on stderr, escaped (escape.printable: a name in it may hold
    anything), if stderr can take it (see CheckedOutput's QUIET)."""
    import click

    from ..escape import printable

    try:
        click.echo(printable(line), err=True)
    except OSError:
        pass


def exit_now(code: str | int | None) -> None:
    """End the process with exit status CODE (as sys.exit takes it), without
    the interpreter's shutdown, once the output is flushed.

    Freeing every module and object at exit takes about 10 ms here, a sixth of
    what a command costs, and nothing memcgctl holds needs it: kernel files are
    closed as soon as they are written, locks are released by closing their
    file in a finally block, and no atexit handler of ours exists.  When some
    other thread still runs (a command that started one), Python's own exit
    waits for it, as it always did.
    """
    import threading  # already imported by click

    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("text") prints the text and exits 1
        print(code, file=sys.stderr)
        code = 1
    try:
        if sys.stderr is not None:  # None: fd 2 was closed at start
            sys.stderr.flush()
    except (OSError, ValueError):
        pass  # a full stderr: nothing more can be said
    if threading.active_count() > 1:
        sys.exit(code)
    os._exit(code)
