"""Where the memory groups live: found once, from /proc/self/mountinfo or --root."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from ..errors import MemcgError, NotAvailable, UntrustedRoot, UsageError
from ..files import DirectoryStatus, read_system_text
from .actions import Action, MakeDir, MakeFakeFile
from .backend import Backend, RestoreJournal
from .fs import CgroupFS
from .v1 import LIMIT as V1_MARKER
from .v1 import V1Backend
from .v2 import CONTROLLERS, V2Backend

MOUNTINFO = Path("/proc/self/mountinfo")
BACKENDS = {1: V1Backend, 2: V2Backend}


class CgroupMount(NamedTuple):
    """One line of mountinfo that mounts a cgroup hierarchy."""

    mount_point: Path
    device: str  # "major:minor"
    fstype: str  # "cgroup" (v1) or "cgroup2"
    super_options: frozenset

    @property
    def has_v1_memory(self) -> bool:
        return self.fstype == "cgroup" and "memory" in self.super_options


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    if "\\" not in field:
        return field
    return field.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


def read_cgroup_mounts(mountinfo: Path = MOUNTINFO) -> list[CgroupMount]:
    try:
        text = read_system_text(mountinfo, "find the memory controller")
    except MemcgError as error:
        raise NotAvailable(error.what, f"cannot read mountinfo ({error.why})", str(mountinfo)) from None
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        separator = fields.index("-")
        fstype = fields[separator + 1]
        if fstype in ("cgroup", "cgroup2"):
            mounts.append(CgroupMount(
                mount_point=Path(_unescape(fields[4])),
                device=fields[2],
                fstype=fstype,
                super_options=frozenset(fields[separator + 3].split(",")),
            ))
    return mounts


def _lists_memory(controllers_file: Path) -> bool:
    try:
        return "memory" in read_system_text(controllers_file, "read cgroup.controllers").split()
    except MemcgError:
        return False


def find_memory_root(mounts: list[CgroupMount]) -> tuple[Path, int]:
    """The memory hierarchy of this host: v2 if the unified one has the memory
    controller, else the v1 mount carrying it (hybrid hosts)."""
    for mount in mounts:
        if mount.fstype == "cgroup2" and _lists_memory(mount.mount_point / CONTROLLERS):
            return mount.mount_point, 2
    for mount in mounts:
        if mount.has_v1_memory:
            return mount.mount_point, 1
    raise NotAvailable(
        "find the memory controller",
        "no cgroup v2 hierarchy with memory and no cgroup v1 memory mount",
        str(MOUNTINFO),
    )


def detect_version(fs: CgroupFS) -> int:
    """The version of a --root directory, from the files it holds."""
    if fs.is_file(fs.root / CONTROLLERS):
        controllers = fs.read_optional_text(fs.root / CONTROLLERS) or ""
        if fs.is_kernel and "memory" not in controllers.split():
            raise NotAvailable("use root", "the memory controller is not enabled here "
                               "(cgroup.controllers lacks memory)", str(fs.root))
        return 2
    if fs.is_file(fs.root / V1_MARKER):
        return 1
    raise NotAvailable("use root", "not a memory cgroup: neither cgroup.controllers nor "
                       f"{V1_MARKER} is here (see `memcgctl init-fake`)", str(fs.root))


def refuse_untrusted(entry: DirectoryStatus, is_last: bool) -> None:
    """As root, refuse a root directory that another user could change under
    us: one owned by someone else, or writable by group or others, and the
    same for every ancestor (a sticky one such as /tmp is fine on the way:
    others cannot rename what root owns in it).  A delegated subtree is owned
    by its user: root uses it only with --trust-root."""
    import stat

    status = entry.status
    if status.st_uid != 0:
        raise UntrustedRoot("use root", f"{entry.path} is owned by uid {status.st_uid}, who could swap "
                            "files in it; as root memcgctl refuses it", str(entry.path))
    if status.st_mode & 0o022 and (is_last or not status.st_mode & stat.S_ISVTX):
        raise UntrustedRoot("use root", f"{entry.path} can be written by group or others, who could swap "
                            "files in it; as root memcgctl refuses it", str(entry.path))


def _root_check(trust_root: bool) -> Callable[[DirectoryStatus, bool], None] | None:
    return None if trust_root or os.geteuid() != 0 else refuse_untrusted


def open_hierarchy(root: str | os.PathLike | None = None, version: int | None = None,
                   mountinfo: Path = MOUNTINFO, journal: RestoreJournal | None = None,
                   trust_root: bool = False) -> Backend:
    """The backend for ROOT (None: this host's memory hierarchy).

    VERSION (1 or 2) overrides what the files of ROOT suggest.  JOURNAL (a
    journal.Journal) makes temporary changes crash-safe and serialises them.
    Run as root, a ROOT that another user owns or can write (or one of its
    ancestors) is refused (PermissionDenied, 77) unless TRUST_ROOT.
    """
    mounts = read_cgroup_mounts(mountinfo)
    if root is None:
        root_path, found_version = find_memory_root(mounts)
        if version is not None and version != found_version:
            raise _other_version(version, found_version, root_path)
        return BACKENDS[found_version](CgroupFS(root_path, is_kernel=True), journal)
    fs = CgroupFS(Path(root), is_kernel=False, check_directory=_root_check(trust_root))
    device, _ = fs.root_identity()  # opens the root, checking it and its ancestors
    fs.is_kernel = f"{os.major(device)}:{os.minor(device)}" in {mount.device for mount in mounts}
    if version not in (None, *BACKENDS):
        raise UsageError("use root", f"cgroup version must be 1 or 2, not {version}")
    found = files_version(fs)
    if version is not None and found is not None and found != version:
        raise _other_version(version, found, fs.root)
    return BACKENDS[version or detect_version(fs)](fs, journal)


def files_version(fs: CgroupFS) -> int | None:
    """The version the files of a --root directory show, None if neither's."""
    if fs.is_file(fs.root / CONTROLLERS):
        return 2
    return 1 if fs.is_file(fs.root / V1_MARKER) else None


def _other_version(asked: int, found: int, root: Path) -> UsageError:
    """A version asked for that the hierarchy is not: read or written as the
    other version, its files would be misread, or written where the kernel
    has none."""
    marker = CONTROLLERS if found == 2 else V1_MARKER
    return UsageError("use root", f"this is a cgroup v{found} hierarchy (it has {marker}), not v{asked}; "
                      "nothing was changed", str(root))


def plan_fake_root(directory: Path, version: int, trust_root: bool = False) -> list[Action | MakeFakeFile]:
    """The plan that lays out an empty fake hierarchy of VERSION in DIRECTORY,
    a NEW directory (its missing parents are made too): build_fake_root()
    carries it out, a dry run prints it.  UsageError (2) for a directory that
    exists, even an empty one: someone else may have made it to plant links
    in it before it is used."""
    backend = _fake_backend(directory, version, trust_root)
    backend.fs.check_new_root()
    files = backend.fake_root_files()
    return [MakeDir(backend.fs.root), *(MakeFakeFile(backend.fs.root / name, text) for name, text in files.items())]


def build_fake_root(directory: Path, version: int, plan: list[Action | MakeFakeFile] | None = None,
                    trust_root: bool = False) -> Backend:
    """Lay out an empty fake hierarchy of VERSION in DIRECTORY (plain files):
    carry out PLAN, the plan_fake_root() of the same arguments (None: make it).
    The root is made by the plan's first step, so an existing DIRECTORY is
    refused (UsageError) even if it appeared after the plan was made."""
    backend = _fake_backend(directory, version, trust_root)
    backend.carry_out(plan_fake_root(directory, version, trust_root) if plan is None else plan)
    return backend


def _fake_backend(directory: Path, version: int, trust_root: bool) -> Backend:
    return BACKENDS[version](CgroupFS(directory, is_kernel=False, check_directory=_root_check(trust_root)))
