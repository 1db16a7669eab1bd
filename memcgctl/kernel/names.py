"""The rules of group names: what a name may hold, and the names the kernel
gives to the files of a cgroup (which no group may take)."""

from __future__ import annotations

from ..errors import UsageError

# NAME_MAX and PATH_MAX of Linux, cgroupfs included.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4095


def clean_group_name(name: str, existing: bool = False) -> list[str]:
    """The components of a group name, or UsageError if it is not one.

    A leading '/' means the root; '..' and '.' are refused (never resolved), as
    are NUL and newline (the kernel refuses a newline in mkdir), unless
    EXISTING: the name of a group found under the root (a fake tree's may hold
    a newline, made by renaming).
    """
    if "\0" in name or ("\n" in name and not existing):
        raise UsageError(f"group '{name}'", "a group name cannot contain NUL or newline")
    parts = [part for part in name.split("/") if part]
    for part in parts:
        if part in (".", ".."):
            raise UsageError(f"group '{name}'", f"'{part}' is not allowed in a group name")
        if is_kernel_file_name(part):
            raise UsageError(f"group '{name}'", f"'{part}' is the name of a kernel file of a cgroup, "
                             "not of a group")
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise UsageError(f"group '{name}'", f"a name component is longer than {MAX_NAME_BYTES} bytes")
    return parts


def refuse_blank_name(parts: list[str], name: str) -> None:
    """UsageError for a new group whose name (or one of its components) is
    only blanks: legal for the kernel, but shown as nothing in a table, and
    a script's unset variable more often than a name anyone means."""
    if any(not part.strip(" \t") for part in parts):
        raise UsageError(f"group '{name}'", "a group name cannot be only blanks")



# --- names the kernel gives to the files of a cgroup --------------------------------

# Every cgroup directory holds cgroup.* files and, with the memory controller,
# memory.* files; v1 adds tasks (and notify_on_release, release_agent), v2 the
# cpu.stat and *.pressure files of the cgroup core (cpu.stat.local since 6.7,
# irq.pressure since 6.2).  A group named like one of them collides with the
# file in its parent (EEXIST) or, on a fake tree, is taken for it.
KERNEL_FILE_PREFIXES = ("cgroup.", "memory.")
KERNEL_FILE_NAMES = frozenset(("tasks", "notify_on_release", "release_agent", "cpu.stat", "cpu.stat.local",
                               "cpu.pressure", "io.pressure", "irq.pressure"))


def is_kernel_file_name(component: str) -> bool:
    """Whether COMPONENT (one name of a group path) is, or could be, a kernel file's."""
    return component.startswith(KERNEL_FILE_PREFIXES) or component in KERNEL_FILE_NAMES
