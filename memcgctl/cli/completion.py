"""Dynamic shell completion: group names and process ids.  Runs on every TAB,
so it lists one directory and never fails loudly."""

from __future__ import annotations

import os

from ..errors import MemcgError

COMPLETE_VARIABLE = "_MEMCGCTL_COMPLETE"


def completion_script(command, shell: str) -> str:
    """The script that SHELL sources to complete memcgctl (click's protocol)."""
    from click.shell_completion import get_completion_class

    return get_completion_class(shell)(command, {}, "memcgctl", COMPLETE_VARIABLE).source()


def group_names(settings, incomplete: str) -> list[str]:
    """Groups whose names start with INCOMPLETE ('ba' -> batch, 'batch/' -> its children)."""
    from ..kernel.discovery import open_hierarchy

    parent, _, prefix = incomplete.rpartition("/")
    try:
        # Not settings.backend(): a TAB must never write (it would recover).
        backend = open_hierarchy(settings.root, settings.cgroup_version)
        groups = backend.fs.children(backend.group(parent, must_exist=False))
    except (MemcgError, OSError):
        return []
    lead = "/" if incomplete.startswith("/") else ""
    return [lead + group.name for group in groups if group.name.rpartition("/")[2].startswith(prefix)]


def process_ids(incomplete: str) -> list:
    """Running processes whose id starts with INCOMPLETE, with their command names."""
    from click.shell_completion import CompletionItem

    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    items = []
    for entry in entries:
        if entry.isdigit() and entry.startswith(incomplete):
            try:
                with open(f"/proc/{entry}/comm") as comm:
                    items.append(CompletionItem(entry, help=comm.read().strip()))
            except OSError:
                continue  # the process ended meanwhile
    return items
