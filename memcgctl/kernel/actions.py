"""The changes a command makes, as data, and the shell lines that would make them.

A plan is a list of these; CgroupFS.apply() (kernel/fs.py) carries each out,
and a dry run prints its shell() instead.  Nothing here opens a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

# --- Actions: the changes a command makes, as data -------------------------------
# A command computes a list of actions; CgroupFS.apply() carries them out, and a
# dry run prints them instead as the shell lines that would do the same.


def _quote(text: str) -> str:
    from ..escape import shell_quote  # only dry runs print shell lines

    return shell_quote(text)


class Write:
    """Write VALUE (plain text) to the kernel file PATH.  Immutable by
    convention; equal (and hashed) by PATH and VALUE only."""

    __slots__ = ("path", "value", "reasons")

    def __init__(self, path: Path, value: str, reasons: dict | None = None):
        self.path = path
        self.value = value
        # errno -> why, for errors this file gives a meaning of its own (EBUSY on a
        # limit means "could not reclaim", on subtree_control "has processes").
        self.reasons = {} if reasons is None else reasons

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.path, self.value) == (other.path, other.value)

    def __hash__(self):
        return hash((self.path, self.value))

    def __repr__(self) -> str:
        return f"Write(path={self.path!r}, value={self.value!r})"

    def shell(self) -> str:
        # echo supplies the final newline itself
        return f"echo {_quote(self.value.removesuffix(chr(10)))} > {_quote(str(self.path))}"


class WriteOwnPid(Write):
    """Write the PID of the process that carries it out (`run` moving itself);
    a dry run prints `$$`, the shell's own, never the PID of the dry run."""

    __slots__ = ()

    def __init__(self, path: Path, reasons: dict | None = None):
        super().__init__(path, str(os.getpid()), reasons)

    def shell(self) -> str:
        return f"echo $$ > {_quote(str(self.path))}"


class MakeDir:
    """Create a group.  On a fake root, also lay out its FAKE_FILES.  Equal by PATH."""

    __slots__ = ("path", "fake_files")

    def __init__(self, path: Path, fake_files: dict | None = None):
        self.path = path
        self.fake_files = {} if fake_files is None else fake_files

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self.path == other.path

    def __hash__(self):
        return hash(self.path)

    def __repr__(self) -> str:
        return f"MakeDir(path={self.path!r})"

    def shell(self) -> str:
        return f"mkdir {_quote(str(self.path))}"


class RemoveDir(NamedTuple):
    """Remove an empty group."""

    path: Path

    def shell(self) -> str:
        return f"rmdir {_quote(str(self.path))}"


Action = Write | MakeDir | RemoveDir  # WriteOwnPid is a Write; MakeFakeFile (init-fake) is at the end


# --- init-fake: the plain files of a fake root -------------------------------------


class MakeFakeFile(NamedTuple):
    """Create the plain file PATH holding CONTENT (a fake root's own files)."""

    path: Path
    content: str

    def shell(self) -> str:
        if self.content.endswith("\n") and "\n" not in self.content[:-1]:
            return f"echo {_quote(self.content[:-1])} > {_quote(str(self.path))}"
        # One line: printf's %b turns the \n back into newlines.
        escaped = self.content.replace("\\", "\\\\").replace("\n", "\\n")
        return f"printf %b {_quote(escaped)} > {_quote(str(self.path))}"
