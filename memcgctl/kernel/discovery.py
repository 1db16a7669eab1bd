"""Where the memory groups live: found once, from /proc/self/mountinfo or --root."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from ..errors import NotAvailable, NotFound, UsageError
from .backend import Backend
from .fs import Action, CgroupFS, MakeDir, MakeFakeFile, is_empty_directory
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
        text = mountinfo.read_text()
    except OSError as err:
        raise NotAvailable("find the memory controller", f"cannot read mountinfo ({err.strerror})",
                           str(mountinfo)) from err
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
        return "memory" in controllers_file.read_text().split()
    except OSError:
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


def detect_version(root: Path, is_kernel: bool) -> int:
    """The version of a --root directory, from the files it holds."""
    if (root / CONTROLLERS).is_file():
        if is_kernel and not _lists_memory(root / CONTROLLERS):
            raise NotAvailable("use root", "the memory controller is not enabled here "
                               "(cgroup.controllers lacks memory)", str(root))
        return 2
    if (root / V1_MARKER).is_file():
        return 1
    raise NotAvailable("use root", "not a memory cgroup: neither cgroup.controllers nor "
                       f"{V1_MARKER} is here (see `memcgctl init-fake`)", str(root))


def _device_of(path: Path) -> str:
    device = os.stat(path).st_dev
    return f"{os.major(device)}:{os.minor(device)}"


def open_hierarchy(root: str | os.PathLike | None = None, version: int | None = None,
                   mountinfo: Path = MOUNTINFO, journal=None) -> Backend:
    """The backend for ROOT (None: this host's memory hierarchy).

    VERSION (1 or 2) overrides what the files of ROOT suggest.  JOURNAL (a
    journal.Journal) makes temporary changes crash-safe and serialises them.
    """
    mounts = read_cgroup_mounts(mountinfo)
    if root is None:
        root_path, found_version = find_memory_root(mounts)
        return BACKENDS[version or found_version](CgroupFS(root_path, is_kernel=True), journal)
    root_path = Path(root)
    if not root_path.is_dir():
        raise NotFound("use root", "no such directory", str(root_path))
    is_kernel = _device_of(root_path) in {mount.device for mount in mounts}
    if version is None:
        version = detect_version(root_path, is_kernel)
    if version not in BACKENDS:
        raise UsageError("use root", f"cgroup version must be 1 or 2, not {version}")
    return BACKENDS[version](CgroupFS(root_path, is_kernel=is_kernel), journal)


def plan_fake_root(directory: Path, version: int) -> list[Action]:
    """The plan that lays out an empty fake hierarchy of VERSION in DIRECTORY
    (new, or an empty directory): build_fake_root() carries it out, a dry run
    prints it.  UsageError (2) for a directory that is not empty."""
    backend = BACKENDS[version](CgroupFS(directory, is_kernel=False))
    empty = is_empty_directory(backend.fs)
    if empty is False:
        raise UsageError("build fake root", "the directory is not empty", str(backend.fs.root))
    files = backend.fake_root_files()
    make_root = [MakeDir(backend.fs.root)] if empty is None else []
    return make_root + [MakeFakeFile(backend.fs.root / name, text) for name, text in files.items()]


def build_fake_root(directory: Path, version: int, plan: list[Action] | None = None) -> Backend:
    """Lay out an empty fake hierarchy of VERSION in DIRECTORY (plain files):
    carry out PLAN, the plan_fake_root() of the same arguments (None: make it)."""
    backend = BACKENDS[version](CgroupFS(directory, is_kernel=False))
    backend.carry_out(plan_fake_root(directory, version) if plan is None else plan)
    return backend
