"""Building a fake root (init-fake): its plain files, made through the
filesystem layer's openers (kernel/fs.py), never on the kernel's tree."""

from __future__ import annotations

import os

from ..errors import PermissionDenied, UsageError
from .actions import MakeFakeFile
from .fs import PERMISSION_TO_WRITE, REFUSED_LINKS, CgroupFS, _error, _write_new_file


def make_fake_file(fs: CgroupFS, action: MakeFakeFile) -> None:
    """Carry out a MakeFakeFile: only ever a new plain file (O_CREAT|O_EXCL,
    O_NOFOLLOW), opened relative to its directory's fd, never on the kernel's tree."""
    what = "build fake root"
    if fs.is_kernel:
        raise UsageError(what, "the directory is on a cgroup filesystem", str(action.path))
    parts = fs._parts(action.path)
    try:
        directory = fs._open_directory(parts[:-1], what)
    except UsageError as error:
        raise PermissionDenied(what, f"refused: {error.why}", error.path) from None
    try:
        _write_new_file(directory, parts[-1], action.content)
    except OSError as err:
        raise _error(err, what, action.path, {**PERMISSION_TO_WRITE, **REFUSED_LINKS}) from err
    finally:
        os.close(directory)
