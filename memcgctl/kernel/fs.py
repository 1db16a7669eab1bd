"""The filesystem of one cgroup root: the only place that opens cgroup files.

Every path memcgctl touches is built here from a validated group name, and
every OSError becomes a memcgctl error here.  A root is either the kernel's
cgroupfs (a mount, or a delegated subtree of one) or a fake tree of plain
files; the difference is confined to this module.  The primitives it builds
on (directory chains, flags, the OSError translation) are ../files.py's.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from ..errors import (
    MemcgError,
    NotAvailable,
    NotFound,
    PermissionDenied,
    UsageError,
)
from ..files import (
    DIRECTORY_FLAGS,
    FILE_FLAGS,
    PERMISSION_TO_ENTER,
    PERMISSION_TO_READ,
    PERMISSION_TO_WRITE,
    REFUSED_LINKS,
    DirectoryCheck,
    DirectoryStatus,
    open_directory_chain,
)
from ..files import file_error as _error
from .actions import Action, MakeDir, MakeFakeFile, RemoveDir, Write
from .names import MAX_PATH_BYTES, clean_group_name

# The size of one os.read of a cgroup file: memory.stat (about 2 KiB) is one
# read, without the empty read of its end (see _read_to_end).
SMALL_READ_BYTES = 65536
# Half of the smallest seq_file buffer (a 4 KiB page; see _read_to_end).
SHORT_READ_BYTES = 2048


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


# What the user lacks when the kernel says EACCES or EPERM.
PERMISSION_TO_CHANGE_PARENT = dict.fromkeys(
    (errno.EACCES, errno.EPERM),
    "permission denied: creating or removing a group needs write permission on its parent directory")


class CgroupFS:
    """Files under one cgroup ROOT.  IS_KERNEL is False for a fake tree.

    Every access starts from an fd of the root (or of a pinned group) and
    walks down with openat and O_NOFOLLOW, so that paths of any length work
    (no ENAMETOOLONG in deep trees) and nothing is followed out of the root.
    A file is refused unless it is a regular file (fake root) or a file of the
    root's own cgroupfs mount (kernel).  CHECK_DIRECTORY(DirectoryStatus,
    is_last) is called for the root and each of its ancestors when the root
    is first opened (see discovery.refuse_untrusted)."""

    def __init__(self, root: Path, is_kernel: bool, check_directory: DirectoryCheck | None = None):
        self.root = Path(os.path.realpath(root))
        self._root_text = str(self.root).rstrip("/")
        self.is_kernel = is_kernel
        self.check_directory = check_directory
        self._root_fd: int | None = None
        self._root_status: os.stat_result | None = None
        # group parts -> fd, for groups held with pinned()
        self._pinned: dict[tuple, int] = {}
        # The groups' files kept open between rounds (keep_files_open); None: none.
        self._held: HeldFiles | None = None

    # --- names ----------------------------------------------------------------

    def group(self, name: str, existing: bool = False) -> Group:
        """The group NAME ('web', 'batch/job1', '/web'), refused if it leaves the root.

        Raises UsageError (exit 2) before anything is touched.  EXISTING: a
        name found under the root (see clean_group_name).
        """
        parts = clean_group_name(name, existing)
        path = self.root.joinpath(*parts)
        if len(os.fsencode(path)) > MAX_PATH_BYTES:
            raise UsageError(f"group '{name[:40]}...'", f"the path would be longer than {MAX_PATH_BYTES} bytes")
        if self._leads_through_a_link(parts):
            raise UsageError(f"group '{name}'", "leads outside the cgroup root", str(self.root))
        return Group("/".join(parts), path)

    def _leads_through_a_link(self, parts: list[str]) -> bool:
        """Whether an existing component of PARTS is a symlink or not a directory."""
        if not parts:
            return False
        try:
            status = self._entry_status(tuple(parts), "open group")
        except UsageError:
            return True
        except MemcgError:
            return False  # unreadable: said where it is used
        return status is not None and stat.S_ISLNK(status.st_mode)

    def require_group(self, group: Group, marker: str) -> None:
        """Raise NotFound unless GROUP exists (a directory holding MARKER)."""
        kind = self.kind(group.path / marker)
        if kind in ("link", "other") and self.is_dir(group.path):
            raise PermissionDenied(f"group {group.label}", f"refused: its {marker} is not a regular file",
                                   str(group.path / marker))
        if kind != "file":
            if self.exists(group.path) and not self.is_dir(group.path):
                raise UsageError(f"group {group.label}", "names a file, not a group", str(group.path))
            raise NotFound(f"group {group.label}", "no such group", str(group.path))

    def children(self, group: Group) -> list[Group]:
        """The groups directly under GROUP, sorted by name."""
        fd = self._open_directory(self._parts(group.path), f"list groups under {group.label}")
        try:
            return self._children_at(fd, group)
        finally:
            os.close(fd)

    def _children_at(self, fd: int, group: Group) -> list[Group]:
        return [child for child, _ in self._child_directories(fd, group, with_links=False)]

    def _child_directories(self, fd: int, group: Group, with_links: bool) -> list[tuple[Group, int | None]]:
        """(group, link count or None) of the directories in GROUP (its open
        FD), sorted by name.  Files kept open (keep_files_open) learn the
        inode each child has now."""
        prefix = f"{group.name}/" if group.name else ""
        found = []
        for name, links, inode in sorted(self._subdirectories(fd, group, with_links)):
            child = Group(prefix + name, group.path / name)
            if self._held is not None:
                self._held.listed[str(child.path)] = inode
            found.append((child, links))
        return found

    def _subdirectories(self, fd: int, group: Group, with_links: bool) -> list[tuple[str, int | None, int]]:
        """(name, link count or None, inode) of the directories in GROUP (its
        open FD), unsorted.  WITH_LINKS costs an fstatat per child, relative
        to FD (never a path); a child removed since the listing is left out.
        The inode is the listing's own (getdents), free."""
        children = []
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    if not entry.is_dir(follow_symlinks=False):
                        continue
                    try:
                        links = entry.stat(follow_symlinks=False).st_nlink if with_links else None
                    except FileNotFoundError:
                        continue
                    children.append((entry.name, links, entry.inode()))
        except OSError as err:
            raise _error(err, f"list groups under {group.label}", group.path, PERMISSION_TO_ENTER) from err
        return children

    def child_names(self, group: Group) -> list[str]:
        """The names of the groups directly under GROUP, unsorted: children()
        without building a path for each (for a daemon that lists often).
        Reached like every directory (from the root's fd, O_NOFOLLOW), never
        by its path."""
        fd = self._open_directory(self._parts(group.path), f"list groups under {group.label}")
        try:
            return [name for name, _, _ in self._subdirectories(fd, group, with_links=False)]
        finally:
            os.close(fd)

    def descendants(self, group: Group) -> list[Group]:
        """Every group below GROUP, parents before children.

        The walk holds an fd of each directory on the way down and opens the
        next relative to it: a tree deeper than PATH_MAX reads like any other."""
        return self._walk(group, skip_leaves=False)

    def descendants_quickly(self, group: Group) -> list[Group]:
        """descendants(), in the same order, for less CPU on a kernel root: a
        cgroupfs (kernfs) directory's link count is 2 plus its subdirectories,
        so a group whose count is 2 has no child groups and is not opened or
        listed.  For `top`, which walks the tree at every frame (a third of a
        frame's CPU went to listing leaf groups).  Groups removed meanwhile are
        left out."""
        return self._walk(group, skip_leaves=self.is_kernel)

    def _walk(self, group: Group, skip_leaves: bool) -> list[Group]:
        found = []
        top = self._open_directory(self._parts(group.path), f"list groups under {group.label}")
        # (fd, (child, link count) still to visit, reversed) per level
        stack: list[tuple[int, list]] = [(top, [])]
        try:
            stack[0] = (top, list(reversed(self._child_directories(top, group, skip_leaves))))
            while stack:
                fd, pending = stack[-1]
                if not pending:
                    os.close(stack.pop()[0])
                    continue
                child, links = pending.pop()
                found.append(child)
                if links is not None and links <= 2:
                    continue  # kernfs: no subdirectory, so no child group
                try:
                    child_fd = os.open(child.path.name, DIRECTORY_FLAGS, dir_fd=fd)
                except (FileNotFoundError, NotADirectoryError):
                    continue  # removed while we walked (containers come and go)
                except OSError as err:
                    raise _error(err, f"list groups under {child.label}", child.path,
                                      {**PERMISSION_TO_ENTER, **REFUSED_LINKS}) from err
                stack.append((child_fd, []))
                try:
                    grandchildren = self._child_directories(child_fd, child, skip_leaves)
                except NotFound:
                    grandchildren = []
                stack[-1] = (child_fd, list(reversed(grandchildren)))
        finally:
            for fd, _ in stack:
                os.close(fd)
        if self._held is not None:
            self._held.forget_below(str(group.path), {str(each.path) for each in found})
        return found

    # --- probes (pathlib's is_file/exists/is_dir, inside the error boundary) ---

    def kind(self, path: Path) -> str | None:
        """'file', 'directory', 'link' or 'other' for PATH under the root; None
        if it does not exist.  Never follows a symlink; PermissionDenied (77)
        naming the directory that cannot be searched."""
        parts = self._parts(path)
        if not parts:
            return "directory"
        try:
            status = self._entry_status(parts, f"look for {path.name}")
        except UsageError:
            return "other"  # a link or a file on the way: PATH is not what it seems
        if status is None:
            return None
        if stat.S_ISLNK(status.st_mode):
            return "link"
        if stat.S_ISDIR(status.st_mode):
            return "directory"
        return "file" if stat.S_ISREG(status.st_mode) else "other"

    def _entry_status(self, parts: tuple, what: str) -> os.stat_result | None:
        """The lstat of PARTS (not the root), relative to an fd of its parent;
        None if it or a directory on the way does not exist.  UsageError for a
        link or a file on the way, another MemcgError if it cannot be looked at."""
        try:
            fd = self._open_directory(parts[:-1], what)
        except NotFound:
            return None
        try:
            return os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            raise _error(err, what, self.root.joinpath(*parts), PERMISSION_TO_ENTER) from err
        finally:
            os.close(fd)

    def is_file(self, path: Path) -> bool:
        return self.kind(path) == "file"

    def is_dir(self, path: Path) -> bool:
        return self.kind(path) == "directory"

    def exists(self, path: Path) -> bool:
        return self.kind(path) is not None

    @staticmethod
    def process_exists(pid: int) -> bool:
        """Whether process PID exists (/proc/PID)."""
        try:
            os.stat(f"/proc/{pid}")
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as err:
            raise _error(err, f"look for process {pid}", Path(f"/proc/{pid}")) from err
        return True

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
        what = f"read {path.name}"
        fd = self._open_file(path, os.O_RDONLY, what, PERMISSION_TO_READ)
        if fd is None:
            return None
        try:
            return _read_to_end(fd)
        except OSError as err:
            raise _error(err, what, path, PERMISSION_TO_READ) from err
        finally:
            os.close(fd)

    def read_group_files(self, directory: Path, names: tuple) -> dict:
        """{name: text, or None when absent} of the files NAMES of one group.

        One fd of the group's directory, reached like any other (O_NOFOLLOW,
        from the root or a pinned group); each file opened relative to it,
        checked as every file is (_open_file_at) and read with bare os.read:
        a Prometheus scrape reads a thousand groups this way and `top` every
        group at each frame, and the path walks and file objects of
        read_optional_text() were a good part of their time.  NotFound if the
        group is gone; a file of a group removed while it is read (ENODEV,
        cgroupfs) reads as absent.
        """
        if self._held is not None and not self._pinned:
            texts = self._held.read(str(directory), names)
            if texts is not None:
                return texts
        what = f"read group {directory.name}"
        try:
            directory_fd = self._open_directory(self._parts(directory), what)
        except UsageError as error:
            raise PermissionDenied(what, f"refused: {error.why}", error.path) from None
        try:
            return {name: self._read_at(directory_fd, directory, name) for name in names}
        finally:
            os.close(directory_fd)

    def _read_at(self, directory_fd: int, directory: Path, name: str) -> str | None:
        what = f"read {name}"
        fd = self._open_file_at(directory_fd, directory, name, os.O_RDONLY, what, PERMISSION_TO_READ)
        if fd is None:
            return None
        # O_NONBLOCK is left on: it changes nothing for a regular file or a
        # cgroupfs file, the only kinds _open_file_at lets through.
        try:
            return _read_to_end(fd)
        except OSError as err:
            # EOPNOTSUPP: memory.pressure of a kernel booted with PSI off.
            if err.errno in (errno.ENODEV, errno.ENOENT, errno.EOPNOTSUPP):
                return None
            raise _error(err, what, directory / name, PERMISSION_TO_READ) from err
        finally:
            os.close(fd)

    # --- kernel notifiers ------------------------------------------------------

    def open_for_watch(self, group: Group, name: str, flags: int) -> int:
        """An fd of the kernel file NAME of GROUP for a kernel notifier (a v1
        usage threshold's cgroup.event_control and memory.usage_in_bytes, v2
        memory.events, a PSI trigger's memory.pressure), opened and checked
        as every file is (from the group's directory fd, O_NOFOLLOW and
        O_NONBLOCK, a file of this root's cgroupfs); the caller closes it.

        Only on a kernel root: a fake tree's plain files notify nothing, and
        a registration written there would go to whatever file someone put
        in its place, so NotAvailable (the daemon reads such groups at every
        interval).  NotFound when the group is gone, NotAvailable when the
        kernel has no such file."""
        path = group.path / name
        what = f"watch {name} of {group.label}"
        if not self.is_kernel:
            raise NotAvailable(what, "a fake root has no kernel notifiers", str(path))
        reasons = PERMISSION_TO_READ if (flags & os.O_ACCMODE) == os.O_RDONLY else PERMISSION_TO_WRITE
        fd = self._open_file(path, flags, what, reasons)
        if fd is None:
            raise self._missing(what, path)
        return fd

    # --- changing -------------------------------------------------------------

    def apply(self, action: Action) -> None:
        """Carry out one action; raises the memcgctl error for any failure."""
        # Each kind dispatched by name: a new kind must never be taken for another.
        if isinstance(action, Write):
            self._write(action)
        elif isinstance(action, MakeDir):
            self._make_dir(action)
        elif isinstance(action, RemoveDir):
            self._remove_dir(action)
        elif isinstance(action, MakeFakeFile):
            # kernel/fake.py builds on this module's openers (it imports it):
            # imported here, where only init-fake's plan needs it.
            from .fake import make_fake_file

            make_fake_file(self, action)
        else:
            raise TypeError(f"not an action the cgroup filesystem carries out: {action!r}")

    def write_new_file(self, path: Path, content: str, what: str) -> None:
        """Create the plain file PATH holding CONTENT: only ever a new file
        (O_CREAT|O_EXCL, O_NOFOLLOW), opened relative to its directory's fd,
        so nothing planted is written through (PermissionDenied, 77)."""
        parts = self._parts(path)
        try:
            directory = self._open_directory(parts[:-1], what)
        except UsageError as error:
            raise PermissionDenied(what, f"refused: {error.why}", error.path) from None
        try:
            _write_new_file(directory, parts[-1], content)
        except OSError as err:
            raise _error(err, what, path, {**PERMISSION_TO_WRITE, **REFUSED_LINKS}) from err
        finally:
            os.close(directory)

    def check_permitted(self, plan: list) -> None:
        """For a dry run: raise the PermissionDenied (77) the real run would, worded
        the same, for the first Write whose file, or MakeDir/RemoveDir whose parent
        directory, this process may not write, as access(2) tells without writing.
        Other steps, and paths below a directory the plan makes, are not checked."""
        made: list[Path] = []
        for action in plan:
            if isinstance(action, Write):
                target, what, reasons = action.path, f"write {action.value} to {action.path.name}", {
                    **PERMISSION_TO_WRITE, **action.reasons}
            elif isinstance(action, (MakeDir, RemoveDir)):
                target = action.path.parent
                what = "create group" if isinstance(action, MakeDir) else "delete group"
                reasons = PERMISSION_TO_CHANGE_PARENT
            else:
                continue
            if any(target == path or path in target.parents for path in made):
                continue
            if isinstance(action, MakeDir):
                made.append(action.path)
            if not self._may_write(target):
                raise _error(OSError(errno.EACCES, os.strerror(errno.EACCES)), what,
                             action.path, reasons)

    def _may_write(self, path: Path) -> bool:
        """Whether access(2) lets this process write PATH (a file or a directory
        under the root); True when it cannot tell (missing: the real run says so)."""
        parts = self._parts(path)
        if not parts:
            return os.access(self.root, os.W_OK, effective_ids=True)
        try:
            parent = self._open_directory(parts[:-1])
        except MemcgError:
            return True
        try:
            # effective_ids: the ids and capabilities the write would use (a
            # service with CAP_DAC_OVERRIDE but not uid 0), not the real ones.
            if os.access(parts[-1], os.W_OK, dir_fd=parent, effective_ids=True, follow_symlinks=False):
                return True
            os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)  # access() is False for a missing one too
            return False
        except OSError:
            return True
        finally:
            os.close(parent)

    def _write(self, action: Write) -> None:
        # os.open + os.write so that the errno comes from the write itself: a
        # buffered write would only fail at close.  Kernel files must not be
        # truncated; plain files of a fake tree must, but only once checked
        # (O_TRUNC at open would truncate whatever was planted there) and only
        # after the write went through, so that a failed write leaves the old
        # value, as a kernel file keeps it.
        what = f"write {action.value} to {action.path.name}"
        reasons = {**PERMISSION_TO_WRITE, **action.reasons}
        fd = self._open_file(action.path, os.O_WRONLY, what, reasons)
        if fd is None:
            raise self._missing(what, action.path)
        try:
            data = action.value.encode()
            os.write(fd, data)
            if not self.is_kernel:
                os.ftruncate(fd, len(data))
        except OSError as err:
            raise _error(err, what, action.path, reasons) from err
        finally:
            os.close(fd)

    def _make_dir(self, action: MakeDir) -> None:
        reasons = {
            **PERMISSION_TO_CHANGE_PARENT,
            errno.EEXIST: "the group exists",
            errno.ENOENT: "the parent group does not exist",
            errno.EAGAIN: "too deep or too many groups (cgroup.max.depth, cgroup.max.descendants)",
        }
        parts = self._parts(action.path)
        if not parts:
            self._make_root()
            return
        try:
            parent = self._open_directory(parts[:-1], "create group")
        except NotFound as error:
            raise NotFound("create group", "the parent group does not exist", error.path) from None
        try:
            os.mkdir(parts[-1], 0o755, dir_fd=parent)
            if not self.is_kernel:
                self._lay_out_files(parent, parts[-1], action.fake_files)
        except OSError as err:
            raise _error(err, "create group", action.path, reasons) from err
        finally:
            os.close(parent)

    @staticmethod
    def _lay_out_files(parent: int, name: str, files: dict) -> None:
        directory = os.open(name, DIRECTORY_FLAGS, dir_fd=parent)
        try:
            for file_name, content in files.items():
                _write_new_file(directory, file_name, content)
        finally:
            os.close(directory)

    def _remove_dir(self, action: RemoveDir) -> None:
        reasons = {
            **PERMISSION_TO_CHANGE_PARENT,
            errno.EBUSY: "the group still has processes or child groups",
            errno.ENOTEMPTY: "the group still has child groups",
        }
        parts = self._parts(action.path)
        parent = self._open_directory(parts[:-1], "delete group")
        try:
            if not self.is_kernel:
                self._remove_fake_files(parent, parts[-1])
            os.rmdir(parts[-1], dir_fd=parent)
        except OSError as err:
            raise _error(err, "delete group", action.path, {**reasons, **REFUSED_LINKS}) from err
        finally:
            os.close(parent)

    @staticmethod
    def _remove_fake_files(parent: int, name: str) -> None:
        """Empty a fake group of its plain files, unless it has child groups."""
        directory = os.open(name, DIRECTORY_FLAGS, dir_fd=parent)
        try:
            with os.scandir(directory) as scan:
                entries = list(scan)
            if any(entry.is_dir(follow_symlinks=False) for entry in entries):
                raise OSError(errno.ENOTEMPTY, "has child groups")
            for entry in entries:
                os.unlink(entry.name, dir_fd=directory)
        finally:
            os.close(directory)

    def read_extended_attribute(self, path: Path, name: str) -> bytes | None:
        """The extended attribute NAME of the directory PATH, or None if it has none."""
        try:
            fd = self._open_directory(self._parts(path), "read extended attribute")
        except MemcgError:
            return None
        try:
            return os.getxattr(fd, name)
        except OSError:
            return None
        finally:
            os.close(fd)

    def _make_root(self) -> None:
        """Make the root of a fake tree, a NEW directory (its missing parents
        too), and keep an fd of it for the rest of the plan.  An existing
        directory is refused: someone else may have made it to plant links in
        it before it is used."""
        if self.is_kernel:
            raise UsageError("build fake root", "the directory is on a cgroup filesystem", str(self.root))
        parent = open_directory_chain(self.root.parent, "build fake root", self._check_ancestor, create_mode=0o755)
        try:
            os.mkdir(self.root.name, 0o755, dir_fd=parent)
            fd = os.open(self.root.name, DIRECTORY_FLAGS, dir_fd=parent)
        except FileExistsError:
            raise self._root_exists() from None
        except OSError as err:
            raise _error(err, "build fake root", self.root, {**PERMISSION_TO_CHANGE_PARENT, **REFUSED_LINKS}
                              ) from err
        finally:
            os.close(parent)
        try:
            status = os.fstat(fd)
            if self.check_directory is not None:
                self.check_directory(DirectoryStatus(self.root, status), True)
        except BaseException:
            os.close(fd)
            raise
        self.close()
        self._root_fd, self._root_status = fd, status

    def check_new_root(self) -> None:
        """UsageError unless MakeDir of the root can make it (init-fake's plan)."""
        try:
            parent = open_directory_chain(self.root.parent, "build fake root", self._check_ancestor)
        except NotFound:
            return  # the missing parents would be made
        try:
            os.stat(self.root.name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return
        except OSError as err:
            raise _error(err, "build fake root", self.root) from err
        finally:
            os.close(parent)
        raise self._root_exists()

    def _root_exists(self) -> UsageError:
        return UsageError("build fake root", "the directory exists: init-fake makes a new one "
                          "(someone else may have made this one)", str(self.root))

    def _check_ancestor(self, entry: DirectoryStatus, is_last: bool) -> None:
        # The parent of a new fake root may be /tmp: sticky, others cannot
        # rename or replace what we make in it.
        if self.check_directory is not None:
            self.check_directory(entry, False)

    # --- pinned groups: one directory for the whole of a change ---------------

    @contextlib.contextmanager
    def pinned(self, group: Group) -> Iterator[None]:
        """Within the block, every file of GROUP is reached through one fd of
        its directory, opened now: a group renamed away meanwhile (and another
        renamed into its place) does not divert the rest of the change."""
        parts = self._parts(group.path)
        if parts in self._pinned:
            yield
            return
        fd = self._open_directory(parts, f"open group {group.label}")
        self._pinned[parts] = fd
        try:
            yield
        finally:
            del self._pinned[parts]
            os.close(fd)

    def identity(self, group: Group) -> dict:
        """What names GROUP beyond its path: this root and the device and inode
        of the root's and the group's directories (a journal record keeps them)."""
        root_status = self._root_directory_status()
        fd = self._open_directory(self._parts(group.path), f"open group {group.label}")
        try:
            status = os.fstat(fd)
        finally:
            os.close(fd)
        return {"root": str(self.root), "root_device": root_status.st_dev, "root_inode": root_status.st_ino,
                "group": group.name, "device": status.st_dev, "inode": status.st_ino}

    def directory_identity(self, group: Group) -> tuple[int, int] | None:
        """(device, inode) of GROUP's directory, or None if it does not exist."""
        try:
            fd = self._open_directory(self._parts(group.path), f"open group {group.label}")
        except NotFound:
            return None
        try:
            status = os.fstat(fd)
        finally:
            os.close(fd)
        return status.st_dev, status.st_ino

    def root_identity(self) -> tuple[int, int]:
        status = self._root_directory_status()
        return status.st_dev, status.st_ino

    # --- opening, relative to the root -----------------------------------------

    def _root_directory(self) -> int:
        if self._root_fd is None:
            fd = open_directory_chain(self.root, "use root", self.check_directory)
            self._root_status = os.fstat(fd)
            self._root_fd = fd
        return self._root_fd

    def _root_directory_status(self) -> os.stat_result:
        self._root_directory()
        assert self._root_status is not None  # set with the fd
        return self._root_status

    def keep_files_open(self) -> None:
        """From now on keep the files read_group_files() opens, for readers
        that walk the tree and read every group at each round (`top`'s
        frames, export's scrapes): the next round reads them again with
        pread, without open, fstat and close.  Only on a kernel root: a
        fake tree's plain files may be replaced by a new file under the same
        name, which an open fd would not see."""
        if self.is_kernel and self._held is None:
            self._held = HeldFiles(self)

    def let_go_of(self, group: Group) -> None:
        """Close the files kept open of GROUP and of every group below it: a
        group named by a reader is gone, so no walk under it will find its
        children gone (their fds would keep the dead groups in the kernel)."""
        if self._held is not None:
            self._held.forget_below(str(group.path), set())
            self._held.drop(str(group.path))

    def close(self) -> None:
        """Close the fd of the root (opened again when next needed) and the
        files kept open."""
        if self._held is not None:
            self._held.close()
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None

    def __del__(self):
        # A program that opens many roots (tests, a daemon re-reading its
        # configuration) must not run out of file descriptors.
        self.close()

    def _parts(self, path: Path) -> tuple:
        # By its text first: relative_to() was a good part of a frame of `top`.
        text, root = str(path), self._root_text
        if text.startswith(root) and text[len(root):len(root) + 1] == "/" and "/." not in text:
            return tuple(part for part in text[len(root) + 1:].split("/") if part)
        try:
            return Path(path).relative_to(self.root).parts
        except ValueError:
            raise UsageError(f"use {path}", "not under the cgroup root", str(self.root)) from None

    def _open_directory(self, parts: tuple, what: str = "open group") -> int:
        """A new fd of the directory PARTS below the root (the caller closes it).
        NotFound if missing, UsageError for a link or file on the way."""
        start = len(parts)
        while start > 0 and tuple(parts[:start]) not in self._pinned:
            start -= 1
        base = self._pinned[tuple(parts[:start])] if start else self._root_directory()
        if start == len(parts):
            return os.dup(base)
        fd: int | None = None  # the base itself is never closed here
        reached = start  # the components opened; the path is made only for an error
        try:
            for part in parts[start:]:
                child = os.open(part, DIRECTORY_FLAGS, dir_fd=base if fd is None else fd)
                reached += 1
                if fd is not None:
                    os.close(fd)
                fd = child
        except OSError as err:
            if fd is not None:
                os.close(fd)
            path = self.root.joinpath(*parts[:reached + 1])
            if err.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UsageError(what, "leads outside the cgroup root: "
                                 f"{'a symbolic link' if err.errno == errno.ELOOP else 'not a directory'} "
                                 "on the way", str(path)) from None
            if err.errno == errno.ENOENT:
                raise NotFound(what, "no such group", str(path)) from None
            raise _error(err, what, path, PERMISSION_TO_ENTER) from err
        assert fd is not None  # parts[start:] was not empty
        return fd

    def _open_file(self, path: Path, flags: int, what: str, reasons: dict) -> int | None:
        """An fd of the file PATH, checked to be what this root holds: a regular
        file of a fake tree, or a file of the root's own cgroupfs mount.  None
        if it (or its directory) does not exist."""
        parts = self._parts(path)
        try:
            parent = self._open_directory(parts[:-1], what)
        except NotFound:
            return None
        except UsageError as error:
            raise PermissionDenied(what, f"refused: {error.why}", error.path) from None
        try:
            fd = self._open_file_at(parent, path.parent, parts[-1], flags, what, reasons)
        finally:
            os.close(parent)
        if fd is not None:
            try:
                os.set_blocking(fd, True)
            except BaseException:
                os.close(fd)
                raise
        return fd

    def _open_file_at(self, directory_fd: int, directory: Path, name: str, flags: int, what: str,
                      reasons: dict) -> int | None:
        """An fd (O_NONBLOCK) of the file NAME in the open DIRECTORY, checked
        as _open_file() says; None if it does not exist.  DIRECTORY (its path)
        only names it in errors."""
        try:
            fd = os.open(name, flags | FILE_FLAGS, dir_fd=directory_fd)
        except FileNotFoundError:
            return None
        except OSError as err:
            path = directory / name
            if err.errno == errno.ENXIO:  # O_NONBLOCK write-open of a FIFO without a reader
                raise PermissionDenied(what, "refused: not a regular file (a FIFO)", str(path)) from None
            if err.errno == errno.ELOOP:
                raise PermissionDenied(what, REFUSED_LINKS[errno.ELOOP], str(path)) from None
            raise _error(err, what, path, {**reasons, **REFUSED_LINKS}) from err
        try:
            refusal = self._file_refusal(os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise
        if refusal:
            os.close(fd)
            raise PermissionDenied(what, refusal, str(directory / name))
        return fd

    def _file_refusal(self, status: os.stat_result) -> str | None:
        """Why a file with STATUS is not one this root holds; None if it is."""
        if self.is_kernel:
            root_status = self._root_status or self._root_directory_status()
            if status.st_dev != root_status.st_dev:
                return "refused: not a file of this cgroup filesystem"
        elif not stat.S_ISREG(status.st_mode):
            return "refused: not a regular file (a fake root holds only plain files)"
        elif status.st_nlink != 1:
            return "refused: the file has other names (a hard link), so it may be a file outside the root"
        return None

    def _missing(self, what: str, path: Path) -> MemcgError:
        # A missing file means the group is gone only if its directory is;
        # otherwise this kernel (or this fake tree) lacks the feature.
        if not self.is_dir(path.parent):
            return NotFound(what, "no such group", str(path.parent))
        return NotAvailable(what, "not available on this kernel or root", str(path))


class HeldFiles:
    """The files of groups kept open between rounds (CgroupFS.keep_files_open).

    A group's directory fd and its files, opened and checked as every file
    is, are read again from offset 0 (a cgroupfs file is made afresh at each
    read from the start).  Each use is checked cheaply: a group is read
    through its held files only while the last listing of its parent saw
    the same directory inode (a group removed and made again, or another
    renamed into its place, is opened afresh), and a file of a removed group
    answers ENODEV (the group is then opened by its path, which says
    NotFound).  A walk closes the files of the groups below its start that
    it no longer finds: an fd held on a removed group would keep the kernel's
    copy of that memory cgroup alive.  At most half of RLIMIT_NOFILE is held."""

    def __init__(self, fs: CgroupFS):
        self.fs = fs
        # group path -> (directory inode, directory fd, {file name: fd})
        self.groups: dict[str, tuple[int, int, dict[str, int]]] = {}
        # group path -> its directory's inode at the last listing of its parent
        self.listed: dict[str, int] = {}
        import resource  # here: only top and export hold files

        self.fds = 0
        self.max_fds = resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 2 - 64

    def read(self, path: str, names: tuple) -> dict | None:
        """{name: text or None} of the files NAMES of the group at PATH, read
        through held files; None when the group must be opened by its path
        (not listed, changed, removed, or no fds to spare)."""
        held = self.groups.get(path)
        inode = self.listed.get(path)
        if held is None or held[0] != inode:
            if held is not None:
                self.drop(path)
            if inode is None or self.fds + len(names) + 1 > self.max_fds:
                return None
            held = self._open(path, inode)
            if held is None:
                return None
        _, directory_fd, files = held
        texts: dict[str, str | None] = {}
        try:
            for name in names:
                fd = files.get(name)
                if fd is None:
                    fd = self._open_file(path, directory_fd, name)
                    if fd is None:
                        texts[name] = None
                        continue
                    files[name] = fd
                    self.fds += 1
                texts[name] = self._read_held(fd)
        except OSError as err:
            self.drop(path)
            if err.errno in (errno.ENODEV, errno.ENOENT):
                return None  # removed meanwhile: opened by its path, which says so
            raise _error(err, "read group files", Path(path), PERMISSION_TO_READ) from err
        return texts

    @staticmethod
    def _read_held(fd: int) -> str | None:
        try:
            return _pread_to_end(fd)
        except OSError as err:
            if err.errno == errno.EOPNOTSUPP:  # memory.pressure of a kernel booted with PSI off, as _read_at
                return None
            raise

    def _open(self, path: str, inode: int) -> tuple[int, int, dict[str, int]] | None:
        fs = self.fs
        try:
            directory_fd = fs._open_directory(fs._parts(Path(path)), f"read group {Path(path).name}")
        except MemcgError:
            return None  # said by the read through its path
        if os.fstat(directory_fd).st_ino != inode:
            os.close(directory_fd)
            return None
        held: tuple[int, int, dict[str, int]] = (inode, directory_fd, {})
        self.groups[path] = held
        self.fds += 1
        return held

    def _open_file(self, path: str, directory_fd: int, name: str) -> int | None:
        return self.fs._open_file_at(directory_fd, Path(path), name, os.O_RDONLY, f"read {name}", PERMISSION_TO_READ)

    def drop(self, path: str) -> None:
        held = self.groups.pop(path, None)
        if held is None:
            return
        _, directory_fd, files = held
        for fd in (directory_fd, *files.values()):
            os.close(fd)
        self.fds -= 1 + len(files)

    def forget_below(self, top: str, found: set[str]) -> None:
        """Close the files of the groups below TOP that a walk did not FIND."""
        prefix = top.rstrip("/") + "/"
        for path in [path for path in self.groups if path.startswith(prefix) and path not in found]:
            self.drop(path)
        for path in [path for path in self.listed if path.startswith(prefix) and path not in found]:
            del self.listed[path]

    def close(self) -> None:
        for path in list(self.groups):
            self.drop(path)
        self.listed.clear()


def _pread_to_end(fd: int) -> str:
    """The text of the held file FD from its start (_read_to_end's rule for
    a short read)."""
    chunk = os.pread(fd, SMALL_READ_BYTES, 0)
    if len(chunk) < SHORT_READ_BYTES:
        return chunk.decode("utf-8", "replace")
    chunks = [chunk]
    offset = len(chunk)
    while chunk := os.pread(fd, SMALL_READ_BYTES, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _read_to_end(fd: int) -> str:
    """The text of the open file FD, read until EOF: a cgroupfs seq_file
    (cgroup.procs) may return less than asked for before its end, but only
    when its next line would not fit its buffer (a page, 4 KiB, or more):
    a read of less than SHORT_READ_BYTES is the end, without the empty read
    that would say so (a frame of `top` saves a thousand system calls)."""
    chunk = os.read(fd, SMALL_READ_BYTES)
    if len(chunk) < SHORT_READ_BYTES:
        return chunk.decode("utf-8", "replace")
    chunks = [chunk]
    while chunk := os.read(fd, SMALL_READ_BYTES):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _write_new_file(directory_fd: int, name: str, content: str) -> None:
    """Create the plain file NAME in DIRECTORY_FD holding CONTENT: only ever a
    new file (O_CREAT|O_EXCL, O_NOFOLLOW), so nothing planted is written through."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | FILE_FLAGS, 0o644, dir_fd=directory_fd)
    try:
        os.write(fd, content.encode())
    finally:
        os.close(fd)


def to_int(text: str, path: Path) -> int:
    """The number a kernel file holds, or a MemcgError saying what it held.
    Never negative: the kernel's byte and event counts are unsigned."""
    try:
        value = int(text.strip())
    except ValueError:  # not a number, or past Python's 4,300-digit limit
        value = -1
    if value < 0:
        raise MemcgError(f"read {path.name}", f"expected a number of 0 or more, found '{text.strip()[:40]}'",
                         str(path))
    return value


def resolves_to_root(fs: CgroupFS, group: Group) -> bool:
    """Whether GROUP is the root itself: the same directory (device and inode),
    however it was named.  No path is resolved: fs.group() has already refused
    a symbolic link on the way."""
    return not group.name or fs.directory_identity(group) == fs.root_identity()
