"""Creating, deleting and populating groups.  Never kills or moves a process
that the user did not name."""

from __future__ import annotations

from ..errors import AlreadyExists, Busy, MemcgError, NotFound, UsageError
from ..kernel.backend import Backend
from ..kernel.fs import Action, Group, RemoveDir, Write


def _not_root(group: Group, verb: str) -> None:
    if not group.name:
        raise UsageError(f"{verb} group /", "the root of the hierarchy is not a group memcgctl manages")


def plan_create(backend: Backend, name: str, parents: bool = False, exist_ok: bool = False,
                limit: int | None | bool = False) -> list[Action]:
    """Actions that create group NAME (and with PARENTS its missing ancestors).

    LIMIT: a memory limit to set on the new group (bytes, None for unlimited,
    False for none).  AlreadyExists (73) unless EXIST_OK; NotFound (66) for a
    missing parent without PARENTS.
    """
    group = backend.group(name, must_exist=False)
    _not_root(group, "create")
    if backend.is_group(group):
        if exist_ok:
            return []
        raise AlreadyExists(f"create group {group.label}", "the group exists", str(group.path))
    if backend.fs.is_file(group.path):
        raise UsageError(f"create group {group.label}", "names a file, not a group", str(group.path))
    missing = _missing_ancestors(backend, group)
    if missing and not parents:
        raise NotFound(f"create group {group.label}", "the parent group does not exist (use -p)",
                       str(missing[0].path))
    actions: list[Action] = []
    for each in [*missing, group]:
        actions += backend.plan_create(each)
    if limit is not False:
        actions += backend.plan_limits(group, {"limit": limit}, current=backend.unlimited_limits())
    return actions


def _missing_ancestors(backend: Backend, group: Group) -> list[Group]:
    """The ancestors of GROUP that do not exist yet, outermost first."""
    missing = []
    parts = group.name.split("/")
    for depth in range(1, len(parts)):
        ancestor = backend.group("/".join(parts[:depth]), must_exist=False)
        if backend.fs.is_file(ancestor.path):
            raise UsageError(f"create group {group.label}", f"{ancestor.label} names a file, not a group",
                             str(ancestor.path))
        if not backend.fs.is_dir(ancestor.path):
            missing.append(ancestor)
    return missing


def plan_delete(backend: Backend, name: str, recursive: bool = False) -> list[Action]:
    """Actions that remove group NAME (with RECURSIVE its children first).

    Busy (75) if any group to remove has processes, or children without
    RECURSIVE; then nothing is removed.
    """
    group = backend.group(name)
    _not_root(group, "delete")
    descendants = backend.fs.descendants(group)
    if descendants and not recursive:
        raise Busy(f"delete group {group.label}", f"it has {len(descendants)} child group(s) (use -r)",
                   str(group.path))
    for each in [group, *descendants]:
        pids = backend.process_ids(each)
        if pids:
            raise Busy(f"delete group {each.label}", f"it still has {len(pids)} process(es); "
                       "memcgctl never kills or moves them", str(each.path))
    return [RemoveDir(each.path) for each in reversed([group, *descendants])]


def parse_pid(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise UsageError(f"bad process id {text!r}", "expected a positive whole number")
    return int(text)


def plan_attach(backend: Backend, group: Group, pid: int, threads: bool = False) -> Write:
    """The write that moves process (or with THREADS, thread) PID into GROUP."""
    if not backend.fs.process_exists(pid):
        raise NotFound(f"attach {pid} to {group.label}", "no such process", f"/proc/{pid}")
    return backend.attach_action(group, pid, threads)


def attach(backend: Backend, group: Group, pids: list[int], threads: bool = False,
           apply=None) -> list[MemcgError]:
    """Move each of PIDS into GROUP; the failures, in order (the others moved).
    APPLY carries out each write (default: the filesystem's; a dry run prints)."""
    apply = apply or backend.fs.apply
    failures = []
    for pid in pids:
        try:
            apply(plan_attach(backend, group, pid, threads))
        except MemcgError as error:
            error.what = f"attach {pid} to {group.label}"
            failures.append(error)
    return failures
