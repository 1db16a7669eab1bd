"""Creating, deleting and populating groups.  Never kills or moves a process
that the user did not name."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import AlreadyExists, Busy, MemcgError, NotFound, OutputError, UsageError
from ..kernel.actions import Action, MakeDir, RemoveDir, Write
from ..kernel.backend import Backend
from ..kernel.fs import Group, resolves_to_root
from ..kernel.names import clean_group_name, refuse_blank_name
from .limits import check_hard_limit, holds


class MissingParent(NotFound):
    """create: the parent group does not exist, and parents were not asked for."""


class ExistsWithOtherLimit(AlreadyExists):
    """create with exist_ok and a limit: the group exists with another limit
    (73), left as it was.  HELD and WANTED: bytes, None for unlimited."""

    def __init__(self, what: str, held: int | None, wanted: int | None, path: str):
        def spelt(value):
            return "no limit" if value is None else f"{value} bytes"

        super().__init__(what, f"the group exists with {spelt(held)}, not {spelt(wanted)}; nothing was changed", path)
        self.held, self.wanted = held, wanted


class HasChildren(Busy):
    """delete: the group has child groups, and recursive was not asked for."""


ROOT_IS_NOT_A_TARGET = "the root of the hierarchy is not a target (is GROUP empty or unset?)"


def refuse_root_name(name: str, verb: str) -> None:
    """UsageError (2) if NAME spells the root ('', '/', '//'...): checked from
    the name alone, before the hierarchy is even opened.  A command that
    changes something never acts on the root: `limit "$GROUP" 10M` with GROUP
    unset in a cron line must not limit every group of the host."""
    if not clean_group_name(name):
        raise UsageError(f"{verb} '{name}'", ROOT_IS_NOT_A_TARGET)


def target_group(backend: Backend, name: str, verb: str, must_exist: bool = True) -> Group:
    """The group NAME that command VERB is to change: never the root, also
    not through a symbolic link to it.  UsageError (2), NotFound (66)."""
    refuse_root_name(name, verb)
    # A name with a backslash may be a group named as tables spell it
    # (batch/a\\nb), looked up (and refused if two groups answer to it) by backend.group.
    group = backend.group(name, must_exist=must_exist and "\\" in name)
    if resolves_to_root(backend.fs, group):
        raise UsageError(f"{verb} '{name}'", ROOT_IS_NOT_A_TARGET, str(group.path))
    if must_exist:
        backend.fs.require_group(group, backend.marker)
    return group


def plan_create(backend: Backend, name: str, parents: bool = False, exist_ok: bool = False,
                limit: int | None | bool = False, force: bool = False,
                planned: frozenset = frozenset()) -> list[Action]:
    """Actions that create group NAME (and with PARENTS its missing ancestors).

    LIMIT: a memory limit to set on the new group (bytes, None for unlimited,
    False for none); one under a page is refused unless FORCE.  AlreadyExists
    (73) unless EXIST_OK, and ExistsWithOtherLimit (73) if the existing group
    holds another LIMIT; NotFound (66) for a missing parent without PARENTS.
    PLANNED: the actions of earlier plans of the same command, so that a dry
    run of `create -p a/b a/c` plans what the real run does (a, and on v2 its
    +memory, once).
    """
    refuse_blank_name(clean_group_name(name), name)
    group = target_group(backend, name, "create", must_exist=False)
    if limit is not False:
        check_hard_limit(limit, force)
    if backend.is_group(group) or MakeDir(group.path) in planned:
        if not exist_ok:
            raise AlreadyExists(f"create group {group.label}", "the group exists", str(group.path))
        if limit is not False and backend.is_group(group):
            # "Make sure it exists with this limit": an existing group with another
            # limit is not quietly left so, nor its running workload's limit changed.
            held = backend.read_limits(group)["limit"]
            if not holds(held, limit):
                raise ExistsWithOtherLimit(f"create group {group.label}", held, limit, str(group.path))
        return []
    if backend.fs.is_file(group.path):
        raise UsageError(f"create group {group.label}", "names a file, not a group", str(group.path))
    missing = [each for each in _missing_ancestors(backend, group) if MakeDir(each.path) not in planned]
    if missing and not parents:
        raise MissingParent(f"create group {group.label}", "the parent group does not exist",
                       str(missing[0].path))
    actions: list[Action] = []
    for each in [*missing, group]:
        actions += backend.plan_create(each)
    if limit is not False:
        actions += backend.plan_limits(group, {"limit": limit}, current=backend.unlimited_limits())
    return [action for action in actions if action not in planned]


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


def plan_delete(backend: Backend, name: str, recursive: bool = False,
                removed: frozenset = frozenset()) -> list[Action]:
    """Actions that remove group NAME (with RECURSIVE its children first).

    Busy (75) if any group to remove has processes, or children without
    RECURSIVE; then nothing is removed.  REMOVED: the group paths earlier
    plans of the same command remove (see plan_create's PLANNED).
    """
    group = target_group(backend, name, "delete")
    if group.path in removed:
        raise NotFound(f"delete group {group.label}", "no such group", str(group.path))
    descendants = [each for each in backend.fs.descendants(group) if each.path not in removed]
    if descendants and not recursive:
        raise HasChildren(f"delete group {group.label}", f"it has {len(descendants)} child group(s)",
                   str(group.path))
    for each in [group, *descendants]:
        pids = backend.process_ids(each)
        if pids:
            raise Busy(f"delete group {each.label}", f"it still has {len(pids)} process(es); "
                       "memcgctl never kills or moves them", str(each.path))
    return [RemoveDir(each.path) for each in reversed([group, *descendants])]


# PID_MAX_LIMIT of include/linux/threads.h (64-bit): no pid_max, and so no
# process id, is higher.
PID_MAX_LIMIT = 4 * 1024 * 1024


def parse_pid(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) == 0:
        raise UsageError(f"bad process id '{text}'", "expected a positive whole number")
    if int(text) > PID_MAX_LIMIT:
        raise UsageError(f"bad process id '{text}'", f"above {PID_MAX_LIMIT}, the highest a process id can be")
    return int(text)


def plan_attach(backend: Backend, group: Group, pid: int, threads: bool = False) -> Write:
    """The write that moves process (or with THREADS, thread) PID into GROUP."""
    if not backend.fs.process_exists(pid):
        raise NotFound(f"attach {pid} to {group.label}", "no such process", f"/proc/{pid}")
    return backend.attach_action(group, pid, threads)


def attach(backend: Backend, group: Group, pids: list[int], threads: bool = False,
           apply: Callable[[Action], None] | None = None) -> list[MemcgError]:
    """Move each of PIDS into GROUP; the failures, in order (the others moved).
    APPLY carries out each write (default: the filesystem's; a dry run prints)."""
    apply = apply or backend.fs.apply
    failures = []
    for pid in pids:
        try:
            apply(plan_attach(backend, group, pid, threads))
        except OutputError:
            raise  # printing a dry run failed: not this process's failure
        except MemcgError as error:
            error.what = f"attach {pid} to {group.label}"
            failures.append(error)
    return failures
