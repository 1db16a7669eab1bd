"""Dynamic shell completion: group names and process ids.  Runs on every TAB,
so it lists one directory and never fails loudly."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..errors import MemcgError

if TYPE_CHECKING:
    import click

COMPLETE_VARIABLE = "_MEMCGCTL_COMPLETE"


# click's bash script does `COMPREPLY+=($value)`: a group named `pwn;id>x`
# (any user can make one in a subtree delegated to them) is word-split, globbed
# and inserted unquoted, and root runs `id` when she presses Enter.  This one
# reads each line with `read -r` (no backslash processing, no globbing) and
# inserts `printf %q` of the value, quoted for the shell as one word.  Not
# with `compopt -o filenames` as well: bash would quote the quoting again.
BASH_SCRIPT = r"""%(complete_func)s() {
    local IFS=$'\n'
    local response line type value quoted

    response=$(env COMP_WORDS="${COMP_WORDS[*]}" COMP_CWORD=$COMP_CWORD %(complete_var)s=bash_complete "$1")
    COMPREPLY=()
    while IFS= read -r line; do
        [[ -n $line ]] || continue
        type=${line%%%%,*}
        value=${line#*,}
        if [[ $type == 'dir' ]]; then
            COMPREPLY=()
            compopt -o dirnames
        elif [[ $type == 'file' ]]; then
            COMPREPLY=()
            compopt -o default
        elif [[ $type == 'plain' ]]; then
            printf -v quoted '%%q' "$value"
            COMPREPLY+=("$quoted")
        fi
    done <<< "$response"

    return 0
}

%(complete_func)s_setup() {
    complete -o nosort -F %(complete_func)s %(prog_name)s
}

%(complete_func)s_setup;
"""


def completion_script(command: click.Command, shell: str) -> str:
    """The script that SHELL sources to complete memcgctl (click's protocol;
    for bash, a script of ours that quotes what it inserts)."""
    from click.shell_completion import BashComplete, FishComplete, ShellComplete, ZshComplete

    class QuotingBashComplete(BashComplete):
        source_template = BASH_SCRIPT

    completers: dict[str, type[ShellComplete]] = {"bash": QuotingBashComplete, "zsh": ZshComplete,
                                                  "fish": FishComplete}
    return completers[shell](command, {}, "memcgctl", COMPLETE_VARIABLE).source()


def group_names(settings, incomplete: str) -> list[str]:
    """Groups whose names start with INCOMPLETE ('ba' -> batch, 'batch/' -> its children)."""
    from ..kernel.discovery import open_hierarchy

    parent, _, prefix = incomplete.rpartition("/")
    try:
        # Not settings.backend(): a TAB must never write (it would recover).
        backend = open_hierarchy(settings.root, settings.cgroup_version, trust_root=settings.trust_root)
        groups = backend.fs.children(backend.group(parent, must_exist=False))
    except (MemcgError, OSError):
        return []
    lead = "/" if incomplete.startswith("/") else ""
    # A name with a newline cannot travel in the shells' line-based protocol.
    return [lead + group.name for group in groups
            if group.name.rpartition("/")[2].startswith(prefix) and "\n" not in group.name]


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
