"""Building a fake root (init-fake): its plain files, made through the
filesystem layer (kernel/fs.py, which alone opens files and turns OSError
into a memcgctl error), never on the kernel's tree."""

from __future__ import annotations

from ..errors import UsageError
from .actions import MakeFakeFile
from .fs import CgroupFS


def make_fake_file(fs: CgroupFS, action: MakeFakeFile) -> None:
    """Carry out a MakeFakeFile: only ever a new plain file (CgroupFS.write_new_file),
    never on the kernel's tree."""
    what = "build fake root"
    if fs.is_kernel:
        raise UsageError(what, "the directory is on a cgroup filesystem", str(action.path))
    fs.write_new_file(action.path, action.content, what)
