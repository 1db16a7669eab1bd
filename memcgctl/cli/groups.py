"""Commands that make, remove and fill groups: create, delete, attach, run."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import CommandNotExecutable, CommandNotFound, UsageError
from .options import GROUP, GROUPS, SizeType, complete_pid, given, global_options

if TYPE_CHECKING:
    from ..errors import MemcgError
    from ..kernel.actions import Action


@click.command()
@GROUPS
@click.option("-p", "--parents", is_flag=True, help="Create missing parent groups too.")
@click.option("--exist-ok", is_flag=True, help="An existing group is not an error (with --limit: if it has that "
              "limit; another limit is exit 73, nothing changed).")
@click.option("--limit", type=SizeType(), metavar="SIZE", help="Memory limit of the new group.")
@click.option("--force", is_flag=True, help="Set a --limit below one page all the same (the kernel makes it 0).")
@global_options
@click.pass_context
def create(ctx, groups, parents, exist_ok, limit, force):
    """Create memory groups.  On cgroup v2, +memory is enabled in each parent.
    Each GROUP is tried; the exit status is the highest of the failures.

    \b
    Example:
      memcgctl create -p batch/job1 --limit 2G
    """
    from ..errors import MemcgError, OutputError
    from ..operations.groups import plan_create, refuse_root_name

    settings = ctx.obj
    limit_to_set = limit if given(ctx, "limit") else False
    failures: list[MemcgError] = []
    planned: set[Action] = set()
    for name in groups:
        try:
            refuse_root_name(name, "create")
            actions = plan_create(settings.backend(), name, parents, exist_ok, limit_to_set, force,
                                  frozenset(planned))
            settings.carry_out(actions)
            planned.update(actions)
        except OutputError:
            raise  # printing a dry run failed: said once, not as this group's failure
        except MemcgError as error:
            failures.append(worded(error))
            continue
        if not actions and not settings.dry_run:
            settings.say(f"{name} exists")
    settings.exit_with_failures(failures)


@click.command()
@GROUPS
@click.option("-r", "--recursive", is_flag=True, help="Remove child groups too (deepest first).")
@global_options
@click.pass_obj
def delete(settings, groups, recursive):
    """Remove memory groups.  Never kills or moves a process: a group that has
    any is left as it is (exit 75).  Each GROUP is tried; the exit status is
    the highest of the failures.

    \b
    Example:
      memcgctl delete -r batch
    """
    from ..errors import MemcgError, OutputError
    from ..operations.groups import plan_delete, refuse_root_name

    failures: list[MemcgError] = []
    removed: set[Path] = set()
    for name in groups:
        try:
            refuse_root_name(name, "delete")
            actions = plan_delete(settings.backend(), name, recursive, frozenset(removed))
            settings.carry_out(actions)
            removed.update(action.path for action in actions)
        except OutputError:
            raise  # printing a dry run failed: said once, not as this group's failure
        except MemcgError as error:
            failures.append(worded(error))
    settings.exit_with_failures(failures)


def worded(error):
    """ERROR, with the option that would have avoided it named (the library
    does not speak in options)."""
    from ..operations.groups import ExistsWithOtherLimit, HasChildren, MissingParent
    from ..operations.limits import ForceRequired

    if isinstance(error, ExistsWithOtherLimit):
        from ..sizes import format_size

        held = "no limit" if error.held is None else f"a limit of {format_size(error.held)}"
        wanted = "unlimited" if error.wanted is None else format_size(error.wanted)
        error.why = f"the group exists with {held}, not {wanted}; nothing was changed (`memcgctl limit` changes it)"
    elif isinstance(error, MissingParent):
        error.why += " (use -p)"
    elif isinstance(error, HasChildren):
        error.why += " (use -r)"
    elif isinstance(error, ForceRequired):
        error.why += "; --force sets it all the same"
    return error


@click.command()
@GROUP
@click.argument("pids", nargs=-1, required=True, metavar="PID...", shell_complete=complete_pid)
@click.option("--threads", is_flag=True, help="Move single threads (v1 tasks, v2 cgroup.threads).")
@global_options
@click.pass_obj
def attach(settings, group, pids, threads):
    """Move processes into a group.  Each PID is tried; the exit status is the
    highest of the failures (66: no such process).

    \b
    Example:
      memcgctl attach web 1234 1240
    """
    from ..operations.groups import attach as attach_processes
    from ..operations.groups import parse_pid, refuse_root_name, target_group

    refuse_root_name(group, "attach")
    pid_numbers = [parse_pid(pid) for pid in pids]
    backend = settings.backend()
    target = target_group(backend, group, "attach")
    failures = attach_processes(backend, target, pid_numbers, threads,
                                apply=lambda action: settings.carry_out([action]))
    settings.say(f"moved {len(pid_numbers) - len(failures)} of {len(pid_numbers)} to {target.label}")
    settings.exit_with_failures(failures)


@click.command(context_settings={"allow_interspersed_args": False})
@GROUP
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--create", is_flag=True, help="Create the group (and its parents) if missing.")
@global_options
@click.pass_obj
def run(settings, group, command, create):
    """Run COMMAND inside a group, with its exit status (126/127 as the shell
    when it cannot be started).

    \b
    Example:
      memcgctl run --create batch/job1 -- make -j2
    """
    import shutil

    from ..operations.groups import plan_create, refuse_root_name, target_group

    refuse_root_name(group, "run")
    backend = settings.backend()
    if command[0] == "--":  # options stop at GROUP, so a "--" after it is kept
        command = command[1:]
    if not command:
        raise UsageError("run", "no COMMAND given")
    program = shutil.which(command[0])
    if program is None:
        if os.sep in command[0] and os.path.exists(command[0]):
            raise CommandNotExecutable(f"run {command[0]}", "permission denied: not an executable file")
        raise CommandNotFound(f"run {command[0]}", "command not found")
    if create:
        # -v reports go to stderr: stdout is the command's.
        creation = plan_create(backend, group, parents=True, exist_ok=True)
        if creation:
            settings.carry_out(creation, report_to_stderr=True)
    target = target_group(backend, group, "run", must_exist=not (create and settings.dry_run))
    from ..kernel.actions import WriteOwnPid

    # The process that carries the plan out moves itself: a dry run prints
    # `echo $$`, the shell's own PID, never the PID of the dry run.
    attach = backend.attach_action(target, os.getpid())
    settings.carry_out([WriteOwnPid(attach.path, attach.reasons)])
    if settings.dry_run:
        settings.show_exec(command)
        return
    sys.stdout.flush()
    try:
        os.execv(program, list(command))
    except OSError as err:
        raise CommandNotExecutable(f"run {command[0]}", (err.strerror or "unknown error").lower(), program) from err


