"""The filesystem of one cgroup root: the only place that opens files.

Every path memcgctl touches is built here from a validated group name, and
every OSError becomes a memcgctl error here.  A root is either the kernel's
cgroupfs (a mount, or a delegated subtree of one) or a fake tree of plain
files; the difference is confined to this module.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import NamedTuple

from ..errors import (
    MemcgError,
    NotAvailable,
    NotFound,
    UsageError,
    describe_errno,
    error_from_oserror,
)

# NAME_MAX and PATH_MAX of Linux, cgroupfs included.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4095


# The small value classes of memcgctl are NamedTuples or plain classes, not
# dataclasses: defining a dataclass costs about 0.5 ms (it compiles its methods),
# and every command pays for each one it imports before doing anything.


class Group(NamedTuple):
    """A memory cgroup: its name relative to the root ('' is the root) and its path."""

    name: str
    path: Path

    @property
    def label(self) -> str:
        return self.name or "/"


# --- Actions: the changes a command makes, as data -------------------------------
# A command computes a list of actions; CgroupFS.apply() carries them out, and a
# dry run prints them instead as the shell lines that would do the same.


def _quote(text: str) -> str:
    import shlex  # only dry runs print shell lines

    return shlex.quote(text)


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


Action = Write | MakeDir | RemoveDir

# What the user lacks when the kernel says EACCES or EPERM.
PERMISSION_TO_READ = dict.fromkeys(
    (errno.EACCES, errno.EPERM), "permission denied: reading this file needs read permission on it")
PERMISSION_TO_WRITE = dict.fromkeys(
    (errno.EACCES, errno.EPERM),
    "permission denied: writing this file needs write permission on it (root, or a group delegated to you)")
PERMISSION_TO_CHANGE_PARENT = dict.fromkeys(
    (errno.EACCES, errno.EPERM),
    "permission denied: creating or removing a group needs write permission on its parent directory")


class CgroupFS:
    """Files under one cgroup ROOT.  IS_KERNEL is False for a fake tree."""

    def __init__(self, root: Path, is_kernel: bool):
        self.root = Path(os.path.realpath(root))
        self.is_kernel = is_kernel

    # --- names ----------------------------------------------------------------

    def group(self, name: str) -> Group:
        """The group NAME ('web', 'batch/job1', '/web'), refused if it leaves the root.

        Raises UsageError (exit 2) before anything is touched.
        """
        parts = clean_group_name(name)
        path = self.root.joinpath(*parts)
        if len(os.fsencode(path)) > MAX_PATH_BYTES:
            raise UsageError(f"group {name[:40]!r}...", f"the path would be longer than {MAX_PATH_BYTES} bytes")
        resolved = os.path.realpath(path)
        if resolved != str(self.root) and not resolved.startswith(str(self.root) + os.sep):
            raise UsageError(f"group {name!r}", "leads outside the cgroup root", str(self.root))
        return Group("/".join(parts), path)

    def require_group(self, group: Group, marker: str) -> None:
        """Raise NotFound unless GROUP exists (a directory holding MARKER)."""
        if not (group.path / marker).is_file():
            if group.path.exists() and not group.path.is_dir():
                raise UsageError(f"group {group.label}", "names a file, not a group", str(group.path))
            raise NotFound(f"group {group.label}", "no such group", str(group.path))

    def children(self, group: Group) -> list[Group]:
        """The groups directly under GROUP, sorted by name."""
        try:
            entries = sorted(e.name for e in os.scandir(group.path) if e.is_dir(follow_symlinks=False))
        except OSError as err:
            raise self._error(err, f"list groups under {group.label}", group.path) from err
        prefix = f"{group.name}/" if group.name else ""
        return [Group(prefix + name, group.path / name) for name in entries]

    def child_names(self, group: Group) -> list[str]:
        """The names of the groups directly under GROUP, unsorted: children()
        without building a path for each (for a daemon that lists often)."""
        try:
            with os.scandir(group.path) as entries:
                return [entry.name for entry in entries if entry.is_dir(follow_symlinks=False)]
        except OSError as err:
            raise self._error(err, f"list groups under {group.label}", group.path) from err

    def descendants(self, group: Group) -> list[Group]:
        """Every group below GROUP, parents before children."""
        found = []
        pending = list(reversed(self.children(group)))
        while pending:
            each = pending.pop()
            found.append(each)
            try:
                pending.extend(reversed(self.children(each)))
            except NotFound:
                continue  # removed while we walked (containers come and go)
        return found

    # --- reading --------------------------------------------------------------

    def read_text(self, path: Path) -> str:
        text = self.read_optional_text(path)
        if text is None:
            raise self._missing(f"read {path.name}", path)
        return text

    def read_int(self, path: Path) -> int:
        return to_int(self.read_text(path), path)

    def read_optional_text(self, path: Path) -> str | None:
        """The text of PATH, or None when the file does not exist."""
        try:
            with open(path, "rb") as file:
                return file.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return None
        except OSError as err:
            raise self._error(err, f"read {path.name}", path, PERMISSION_TO_READ) from err

    # --- changing -------------------------------------------------------------

    def apply(self, action: Action) -> None:
        """Carry out one action; raises the memcgctl error for any failure."""
        if isinstance(action, Write):
            self._write(action)
        elif isinstance(action, MakeDir):
            self._make_dir(action)
        else:
            self._remove_dir(action)

    def _write(self, action: Write) -> None:
        # os.open + os.write so that the errno comes from the write itself: a
        # buffered write would only fail at close.  Kernel files must not be
        # truncated; plain files of a fake tree must.
        flags = os.O_WRONLY if self.is_kernel else os.O_WRONLY | os.O_TRUNC
        what = f"write {action.value} to {action.path.name}"
        try:
            fd = os.open(action.path, flags)
        except FileNotFoundError:
            raise self._missing(what, action.path) from None
        except OSError as err:
            raise self._error(err, what, action.path, {**PERMISSION_TO_WRITE, **action.reasons}) from err
        try:
            os.write(fd, action.value.encode())
        except OSError as err:
            raise self._error(err, what, action.path, {**PERMISSION_TO_WRITE, **action.reasons}) from err
        finally:
            os.close(fd)

    def _make_dir(self, action: MakeDir) -> None:
        try:
            os.mkdir(action.path)
            if not self.is_kernel:
                for name, content in action.fake_files.items():
                    (action.path / name).write_text(content)
        except OSError as err:
            raise self._error(err, "create group", action.path, {
                **PERMISSION_TO_CHANGE_PARENT,
                errno.EEXIST: "the group exists",
                errno.ENOENT: "the parent group does not exist",
                errno.EAGAIN: "too deep or too many groups (cgroup.max.depth, cgroup.max.descendants)",
            }) from err

    def _remove_dir(self, action: RemoveDir) -> None:
        reasons = {
            **PERMISSION_TO_CHANGE_PARENT,
            errno.EBUSY: "the group still has processes or child groups",
            errno.ENOTEMPTY: "the group still has child groups",
        }
        try:
            if not self.is_kernel:
                self._remove_fake_files(action.path)
            os.rmdir(action.path)
        except OSError as err:
            raise self._error(err, "delete group", action.path, reasons) from err

    def read_extended_attribute(self, path: Path, name: str) -> bytes | None:
        """The extended attribute NAME of PATH, or None if it has none."""
        try:
            return os.getxattr(path, name)
        except OSError:
            return None

    def lay_out_fake_root(self, files: dict) -> None:
        """Make the root a fake hierarchy holding FILES; it must be new or empty."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if any(self.root.iterdir()):
                raise UsageError("build fake root", "the directory is not empty", str(self.root))
            for name, content in files.items():
                (self.root / name).write_text(content)
        except OSError as err:
            raise self._error(err, "build fake root", self.root) from err

    @staticmethod
    def _remove_fake_files(path: Path) -> None:
        """Empty a fake group of its plain files, unless it has child groups."""
        entries = list(os.scandir(path))
        if any(entry.is_dir(follow_symlinks=False) for entry in entries):
            raise OSError(errno.ENOTEMPTY, "has child groups")
        for entry in entries:
            os.unlink(entry.path)

    @staticmethod
    def _missing(what: str, path: Path) -> MemcgError:
        # A missing file means the group is gone only if its directory is;
        # otherwise this kernel (or this fake tree) lacks the feature.
        if not path.parent.is_dir():
            return NotFound(what, "no such group", str(path.parent))
        return NotAvailable(what, "not available on this kernel or root", str(path))

    @staticmethod
    def _error(err: OSError, what: str, path: Path, reasons: dict | None = None) -> MemcgError:
        why = (reasons or {}).get(err.errno) or describe_errno(err.errno)
        return error_from_oserror(err, what, str(path), why)


def to_int(text: str, path: Path) -> int:
    """The number a kernel file holds, or a MemcgError saying what it held."""
    try:
        return int(text.strip())
    except ValueError:
        raise MemcgError(f"read {path.name}", f"expected a number, found {text.strip()[:40]!r}", str(path)) from None


def clean_group_name(name: str) -> list[str]:
    """The components of a group name, or UsageError if it is not one.

    A leading '/' means the root; '..' and '.' are refused (never resolved), as
    are NUL and newline (the kernel would refuse or mangle them).
    """
    if "\0" in name or "\n" in name:
        raise UsageError(f"group {name!r}", "a group name cannot contain NUL or newline")
    parts = [part for part in name.split("/") if part]
    for part in parts:
        if part in (".", ".."):
            raise UsageError(f"group {name!r}", f"'{part}' is not allowed in a group name")
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise UsageError(f"group {name!r}", f"a name component is longer than {MAX_NAME_BYTES} bytes")
    return parts

