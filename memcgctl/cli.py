"""The memcgctl command line: parses, calls the library, reports.

Each command body reads as: find the group, compute the plan, carry it out (or
print it with --dry-run), say what happened if -v.  Errors are printed in one
place, MemcgctlGroup.invoke, as `memcgctl: <what failed>: <why> (<path>)`.
"""

from __future__ import annotations

import functools
import os
import sys

import click
from click.core import ParameterSource

from .errors import EXIT_CODES, Busy, CommandNotExecutable, CommandNotFound, Interrupted, MemcgError, UsageError
from .fs import Action
from .sizes import parse_size, parse_target

# Start-up time is most of what a command costs: modules that only some
# commands need (json, shutil, signals, render and with it rich and
# humanfriendly) are imported inside those commands.

EXIT_STATUS_HELP = "\b\nExit status:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())


class Settings:
    """The global options, wherever on the command line they were given."""

    def __init__(self):
        self.root = None
        self.journal_dir = None
        self.cgroup_version = None
        self.dry_run = False
        self.verbose = 0
        self._backend = None

    def backend(self):
        """The backend of the hierarchy in use, opened once, after undoing any
        change a memcgctl that died left behind under its root."""
        if self._backend is None:
            from .hierarchy import open_hierarchy
            from .journal import Journal, recover

            self._backend = open_hierarchy(self.root, self.cgroup_version, journal=Journal(self.journal_dir))
            if not self.dry_run:
                recover(self._backend, strict=False)
        return self._backend

    def report_recovered(self) -> None:
        for pending in self._backend.recovered if self._backend else []:
            click.echo(f"memcgctl: restored {pending.value} to {pending.path}, left behind by a memcgctl "
                       f"(pid {pending.pid}) that died in the middle of a change", err=True)

    def carry_out(self, actions: list[Action]) -> None:
        """Apply ACTIONS, or with --dry-run print each as the shell line that does it."""
        for action in actions:
            if self.dry_run:
                click.echo(action.shell())
            else:
                self.backend().fs.apply(action)

    def say(self, text: str) -> None:
        """Report what was done, only with -v: cron mails any output."""
        if self.verbose:
            click.echo(text)


def _store_setting(ctx: click.Context, param: click.Parameter, value):
    # Not ctx.get_parameter_source(): click 8.4 sets it only after the callback.
    settings = ctx.find_root().ensure_object(Settings)
    if value is not None:
        setattr(settings, param.name, max(value, settings.verbose) if param.name == "verbose" else value)
    return value


def _global_option_decorators(read_environment: bool) -> tuple:
    """The global options.  Only the group's copies read the environment: were
    a command's own --root to read MEMCGCTL_ROOT too, it would undo a --root
    given before the command name."""

    def env(name: str) -> str | None:
        return name if read_environment else None

    return (
        click.option("--root", metavar="DIR", envvar=env("MEMCGCTL_ROOT"), expose_value=False,
                     callback=_store_setting,
                     help="Use DIR as the cgroup root (a delegated subtree or a fake tree) [env MEMCGCTL_ROOT]."),
        click.option("--journal-dir", metavar="DIR", envvar=env("MEMCGCTL_JOURNAL_DIR"), expose_value=False,
                     callback=_store_setting,
                     help="Where locks and undo records live (default /run/memcgctl; for a user "
                          "$XDG_RUNTIME_DIR/memcgctl) [env MEMCGCTL_JOURNAL_DIR]."),
        click.option("--cgroup-version", type=click.Choice(["1", "2"]), expose_value=False,
                     callback=lambda ctx, param, value: _store_setting(ctx, param, value and int(value)),
                     help="Treat the root as cgroup v1 or v2 instead of telling from its files."),
        click.option("-n", "--dry-run", is_flag=True, default=None, expose_value=False, callback=_store_setting,
                     help="Read and check, change nothing; print each write as a shell line."),
        click.option("-v", "--verbose", count=True, expose_value=False, callback=_store_setting,
                     help="Say what was done."),
    )


def global_options(command, read_environment: bool = False):
    """The options accepted both before and after the command name."""
    for option in reversed(_global_option_decorators(read_environment)):
        command = option(command)
    return command


class SizeType(click.ParamType):
    """A size in the grammar of memcgctl.sizes; None means unlimited."""

    name = "size"

    def __init__(self, allow_unlimited: bool = True):
        self.allow_unlimited = allow_unlimited

    def convert(self, value, param, ctx):
        if not isinstance(value, str) or (ctx is not None and ctx.resilient_parsing):
            return value
        return parse_size(value, self.allow_unlimited)


class TargetType(click.ParamType):
    name = "target"

    def convert(self, value, param, ctx):
        if not isinstance(value, str) or (ctx is not None and ctx.resilient_parsing):
            return value
        return parse_target(value)


def complete_group(ctx: click.Context, param: click.Parameter, incomplete: str):
    """Groups under the root whose names start with INCOMPLETE (for TAB)."""
    from .completion import group_names

    return group_names(ctx.find_root().ensure_object(Settings), incomplete)


def complete_pid(ctx: click.Context, param: click.Parameter, incomplete: str):
    from .completion import process_ids

    return process_ids(incomplete)


def given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)


class SizeArgumentCommand(click.Command):
    """A command whose SIZE argument may be "-1" (unlimited), which click
    would otherwise take for an unknown option."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value = {name for param in self.params if isinstance(param, click.Option)
                       and not param.is_flag and not param.count for name in param.opts}
        args = [("max" if arg == "-1" and (i == 0 or args[i - 1] not in takes_value) else arg)
                for i, arg in enumerate(args)]
        return super().parse_args(ctx, args)


class MemcgctlGroup(click.Group):
    """Turns memcgctl errors and stop signals into one stderr line and an exit code."""

    def invoke(self, ctx: click.Context):
        settings = ctx.ensure_object(Settings)
        try:
            return super().invoke(ctx)
        except MemcgError as error:
            message, exit_code = str(error), error.exit_code
        except Interrupted as interrupt:
            message, exit_code = f"interrupted by {interrupt.name}", 128 + interrupt.signum
        except KeyboardInterrupt:  # Ctrl-C outside a change (stat, start-up)
            message, exit_code = "interrupted by SIGINT", 130
        finally:
            settings.report_recovered()
        click.echo(f"memcgctl: {message}", err=True)
        ctx.exit(exit_code)


@click.group(cls=MemcgctlGroup, epilog=EXIT_STATUS_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@functools.partial(global_options, read_environment=True)
@click.version_option(package_name="memcgctl", message="memcgctl %(version)s")
def cli():
    """Manage Linux memory cgroups (v1 and v2): create groups, set limits, shrink
    a group to a target size, read its figures.

    \b
    Examples:
      memcgctl create web --limit 1G
      memcgctl shrink web 400M
      memcgctl stat --json
    """


GROUP = click.argument("group", shell_complete=complete_group)
GROUPS = click.argument("groups", nargs=-1, required=True, metavar="GROUP...", shell_complete=complete_group)
TIMEOUT = click.option("--timeout", type=click.FloatRange(min=0), metavar="SECONDS",
                       help="Give up after SECONDS (exit 75).")


@cli.command()
@GROUPS
@click.option("-p", "--parents", is_flag=True, help="Create missing parent groups too.")
@click.option("--exist-ok", is_flag=True, help="An existing group is not an error.")
@click.option("--limit", type=SizeType(), metavar="SIZE", help="Memory limit of the new group.")
@global_options
@click.pass_context
def create(ctx, groups, parents, exist_ok, limit):
    """Create memory groups.  On cgroup v2, +memory is enabled in each parent.

    \b
    Example:
      memcgctl create -p batch/job1 --limit 2G
    """
    from .groups import plan_create

    settings = ctx.obj
    for name in groups:
        limit_to_set = limit if given(ctx, "limit") else False
        actions = plan_create(settings.backend(), name, parents, exist_ok, limit_to_set)
        settings.carry_out(actions)
        settings.say(f"created {name}" if actions else f"{name} exists")


@cli.command()
@GROUPS
@click.option("-r", "--recursive", is_flag=True, help="Remove child groups too (deepest first).")
@global_options
@click.pass_obj
def delete(settings, groups, recursive):
    """Remove memory groups.  Never kills or moves a process: a group that has
    any is left as it is (exit 75).

    \b
    Example:
      memcgctl delete -r batch
    """
    from .groups import plan_delete

    for name in groups:
        settings.carry_out(plan_delete(settings.backend(), name, recursive))
        settings.say(f"deleted {name}")


@cli.command()
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
    from .groups import attach as attach_processes
    from .groups import parse_pid

    backend = settings.backend()
    pid_numbers = [parse_pid(pid) for pid in pids]
    target = backend.group(group)
    failures = attach_processes(backend, target, pid_numbers, threads,
                                apply=lambda action: settings.carry_out([action]))
    for error in failures:
        click.echo(f"memcgctl: {error}", err=True)
    settings.say(f"moved {len(pid_numbers) - len(failures)} of {len(pid_numbers)} to {target.label}")
    if failures:
        ctx = click.get_current_context()
        ctx.exit(max(error.exit_code for error in failures))


@cli.command(context_settings={"allow_interspersed_args": False})
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

    from .groups import plan_create

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
        settings.carry_out(plan_create(backend, group, parents=True, exist_ok=True))
    target = backend.group(group, must_exist=not (create and settings.dry_run))
    settings.carry_out([backend.attach_action(target, os.getpid())])
    if settings.dry_run:
        click.echo("exec " + " ".join(command))
        return
    sys.stdout.flush()
    try:
        os.execv(program, list(command))
    except OSError as err:
        raise CommandNotExecutable(f"run {command[0]}", os.strerror(err.errno).lower(), program) from err


# limit name (as in stat --json) -> the parameter of `limit` that sets it
LIMIT_PARAMETERS = {"limit": "size", "soft_limit": "soft", "high": "high", "low": "low", "min": "min_",
                    "swap_limit": "swap"}


@cli.command(cls=SizeArgumentCommand)
@GROUP
@click.argument("size", required=False, type=SizeType())
@click.option("--soft", type=SizeType(), metavar="SIZE", help="v1 soft limit (memory.soft_limit_in_bytes).")
@click.option("--high", type=SizeType(), metavar="SIZE", help="v2 throttle point (memory.high).")
@click.option("--low", type=SizeType(), metavar="SIZE", help="v2 best-effort protection (memory.low).")
@click.option("--min", "min_", type=SizeType(), metavar="SIZE", help="v2 hard protection (memory.min).")
@click.option("--swap", type=SizeType(), metavar="SIZE", help="Swap allowed, alone (v1: memsw = limit + swap).")
@click.option("--force", is_flag=True, help="v2: write memory.max below usage even if the kernel must OOM-kill.")
@TIMEOUT
@global_options
@click.pass_context
def limit(ctx, group, size, soft, high, low, min_, swap, force, timeout):
    """Set a group's limits, or show them when no value is given.  SIZE is the
    hard limit (v1 memory.limit_in_bytes, v2 memory.max); `max` is unlimited.

    On cgroup v2 a hard limit below usage is reached by shrinking first;
    if that fails the limit is left as it was (exit 75) unless --force.

    \b
    Example:
      memcgctl limit web 400M --swap 0
    """
    from .limits import plan_set_limits, set_limits
    from .signals import stop_signals_raise

    settings = ctx.obj
    backend = settings.backend()
    target = backend.group(group)
    changes = {name: ctx.params[param] for name, param in LIMIT_PARAMETERS.items() if given(ctx, param)}
    if not changes:
        from .render import print_limits

        print_limits(backend.read_limits(target))
        return
    warning = backend.owner_warning(target)
    if warning:
        click.echo(f"memcgctl: warning: {warning}", err=True)
    if settings.dry_run:
        settings.carry_out(plan_set_limits(backend, target, changes))
    else:
        with stop_signals_raise():
            outcome = set_limits(backend, target, changes, force, timeout)
        if outcome.oom_kills:
            click.echo(f"memcgctl: limit {target.label}: the kernel OOM-killed {outcome.oom_kills} "
                       "process(es) to get under the new limit", err=True)
        if settings.verbose:
            from .render import print_limits

            print_limits(outcome.limits)


@cli.command()
@GROUP
@click.argument("target", type=TargetType())
@TIMEOUT
@global_options
@click.pass_obj
def shrink(settings, group, target, timeout):
    """Bring a group's memory usage to TARGET or below: a size, or a percentage
    of current usage (80%).  Exit 75 if it cannot.

    v1 lowers memory.limit_in_bytes for the kernel to reclaim and always
    restores it (also on Ctrl-C, SIGTERM, SIGHUP); v2 writes memory.reclaim
    and never touches memory.max.

    \b
    Example:
      memcgctl shrink web 400M
      */5 * * * *  memcgctl shrink batch 80% || logger "batch: shrink failed"
    """
    from .shrink import shrink as shrink_group
    from .signals import stop_signals_raise

    backend = settings.backend()
    target_group = backend.group(group)
    if settings.dry_run:
        target_bytes = target.resolve(backend.read_usage(target_group))
        settings.carry_out(backend.plan_shrink(target_group, target_bytes))
        return
    with stop_signals_raise():
        result = shrink_group(backend, target_group, target, timeout)
    if not result.reached:
        from .render import shrink_progress

        reason = result.stopped_because or "the kernel reclaimed too little"
        raise Busy(f"shrink {target_group.label}", f"target not reached: {shrink_progress(result)}: {reason}",
                   str(target_group.path))
    if settings.verbose:  # formatting sizes imports humanfriendly
        from .render import shrink_progress

        settings.say(f"{target_group.label}: {shrink_progress(result)}")


@cli.command()
@click.argument("groups", nargs=-1, metavar="[GROUP]...", shell_complete=complete_group)
@click.option("-r", "--recursive", is_flag=True, help="Include the groups below each GROUP.")
@click.option("--json", "as_json", is_flag=True, help="JSON: a list of objects with stable keys, sizes in bytes.")
@global_options
@click.pass_obj
def stat(settings, groups, recursive, as_json):
    """Show usage, limits, peak and the main counters of groups; with no GROUP,
    every group under the root.

    JSON keys: group, path, cgroup_version, usage, limit, soft_limit, high,
    low, min, swap_limit, peak, failcnt, events, stat, pids (null: unlimited
    or not applicable).

    \b
    Example:
      memcgctl stat -r batch
      memcgctl stat --json web | jq .[0].usage
    """
    from .stats import iter_stats, select_groups

    backend = settings.backend()
    # Each group is turned into text as soon as it is read, so that only the
    # text is kept, not every group's figures.  Nothing is printed before all
    # are read: an error leaves stdout empty.
    stats = iter_stats(backend, select_groups(backend, groups, recursive), skip_vanished=not groups)
    if as_json:
        import json

        # The text of json.dumps(list, indent=2), one element at a time.
        elements = [json.dumps(each.to_json(), indent=2).replace("\n", "\n  ") for each in stats]
        if not elements:
            click.echo("[]")
            return
        for index, element in enumerate(elements):
            click.echo(("[\n  " if index == 0 else ",\n  ") + element, nl=False)
        click.echo("\n]")
        return
    from .render import print_table, stat_rows

    print_table(*stat_rows(stats, backend.version))


@cli.command()
@click.argument("group", required=False, default="", shell_complete=complete_group)
@global_options
@click.pass_obj
def tree(settings, group):
    """Show groups as a tree with usage, limit and number of processes.

    \b
    Example:
      memcgctl tree batch
    """
    from .render import tree_lines
    from .stats import read_stats, select_groups

    backend = settings.backend()
    groups = select_groups(backend, [group] if group else [], recursive=True)
    for line in tree_lines(read_stats(backend, groups, skip_vanished=True)):
        click.echo(line)


@cli.command()
@GROUP
@global_options
@click.pass_obj
def empty(settings, group):
    """Reclaim all the memory a group can give up, never killing (v1
    memory.force_empty, v2 memory.reclaim).

    \b
    Example:
      memcgctl empty -v batch/job1
    """
    backend = settings.backend()
    target = backend.group(group)
    if settings.dry_run:
        settings.carry_out(backend.plan_empty(target))
        return
    from .shrink import empty as empty_group
    from .signals import stop_signals_raise

    with stop_signals_raise():
        left = empty_group(backend, target)
    if settings.verbose:  # formatting sizes imports humanfriendly
        from .sizes import format_size

        settings.say(f"{target.label}: {format_size(left)} left")


@cli.command("init-fake")
@click.argument("directory", type=click.Path(file_okay=False))
@global_options
@click.pass_obj
def init_fake(settings, directory):
    """Build an empty fake hierarchy of plain files in DIRECTORY (cgroup v2
    unless --cgroup-version 1), to rehearse scripts without root.

    \b
    Example:
      memcgctl init-fake --cgroup-version 1 /tmp/cg
      memcgctl --root /tmp/cg create web --limit 400M
    """
    from pathlib import Path

    from .hierarchy import build_fake_root, plan_fake_root

    if settings.dry_run:
        settings.carry_out(plan_fake_root(Path(directory), settings.cgroup_version or 2))
        return
    build_fake_root(Path(directory), settings.cgroup_version or 2)
    settings.say(f"fake cgroup v{settings.cgroup_version or 2} root in {directory}")


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell):
    """Print the completion script for SHELL (group names and PIDs complete
    dynamically, honouring --root and MEMCGCTL_ROOT).

    \b
    Example:
      memcgctl completion bash > /etc/bash_completion.d/memcgctl
      eval "$(memcgctl completion bash)"
    """
    from .completion import completion_script

    click.echo(completion_script(cli, shell), nl=False)


@cli.command("recover")
@global_options
@click.pass_obj
def recover_command(settings):
    """Restore limits left lowered by a memcgctl that died in the middle of a
    v1 shrink (SIGKILL, OOM, power cut).  Every memcgctl command does this for
    its root first; this command does only that, and fails if it cannot.

    \b
    Example:
      @reboot  memcgctl recover
    """
    from .journal import plan_recover, recover

    if settings.dry_run:
        settings.carry_out(plan_recover(settings.backend()))
        return
    recover(settings.backend(), strict=True)


def main():
    cli(prog_name="memcgctl")
