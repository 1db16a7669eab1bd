"""What every command shares: the global options and the Settings they fill,
argument types for sizes, group-name completion, and the plan runner
(Settings.carry_out: apply each action, or print it with --dry-run)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from ..errors import EXIT_CODES, UsageError
from ..kernel.actions import Action, MakeDir, RemoveDir
from ..sizes import parse_size

if TYPE_CHECKING:
    from ..kernel.backend import Backend

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
        self.plan_json = False
        self._planned_steps: list[dict] | None = None  # with --plan-json: the plan's steps as data, printed at the end
        self.verbose = 0
        self.trust_root = False
        self._backend: Backend | None = None

    def backend(self) -> Backend:
        """The backend of the hierarchy in use, opened once, after undoing any
        change a memcgctl that died left behind under its root."""
        if self._backend is None:
            if self.plan_json and not self.dry_run:
                raise UsageError("--plan-json", "prints what a dry run would do: use it with -n")
            from ..kernel.discovery import open_hierarchy
            from ..operations.recovery import recover
            from ..safety.journal import Journal

            self._backend = open_hierarchy(self.root, self.cgroup_version, journal=Journal(self.journal_dir),
                                           trust_root=self.trust_root)
            if not self.dry_run:
                recover(self._backend, strict=False)
        return self._backend

    def report_recovered(self) -> None:
        """Say, once, what became of the limits memcgctl owed back: records a
        dead memcgctl left (restored or dropped), restores left undone."""
        if self._backend is None or not (self._backend.recovered or self._backend.kept):
            return
        from ..render.restores import kept_text, recovered_text

        for recovered in self._backend.recovered:
            click.echo(f"memcgctl: {recovered_text(recovered)}", err=True)
        for restore in self._backend.kept:
            click.echo(f"memcgctl: {kept_text(restore)}", err=True)
        self._backend.recovered.clear()
        self._backend.kept.clear()

    def carry_out(self, actions: list[Action], report_to_stderr: bool = False) -> None:
        """Apply ACTIONS (a plan), or with --dry-run print it: each action as the
        shell line that does it.  With -v, say which groups were made or removed."""
        if self.dry_run:
            self.show(actions)
            return
        for action in actions:
            self.backend().carry_out([action])
            self._report(action, report_to_stderr)

    def show(self, plan: list) -> None:
        """Print PLAN for --dry-run: shell lines, and `#` comments for what the
        kernel decides; a plan with no step says so."""
        if self._backend is not None:  # a plan for a cgroup root (not init-fake's)
            self._check_permitted(self._backend, plan)
        if self.plan_json:
            self._plan_as_data(plan)
            return
        if not plan:
            click.echo("# nothing to do")
        for step in plan:
            click.echo(step.shell())

    def show_exec(self, argv: list) -> None:
        """Print, for --dry-run, the command a plan ends by running (`run`)."""
        if self.plan_json:
            self._plan_as_data([], {"action": "exec", "argv": list(argv)})
            return
        from ..escape import shell_join

        click.echo("exec " + shell_join(argv))

    def _plan_as_data(self, plan: list, *more: dict) -> None:
        """Keep PLAN's steps; the whole plan of the command is printed as one
        JSON document when it ends (a command may plan group by group)."""
        from ..render.plan import plan_text, step_data

        if self._planned_steps is None:
            steps: list[dict] = []
            self._planned_steps = steps
            click.get_current_context().call_on_close(lambda: click.echo(plan_text(steps)))
        self._planned_steps.extend([*(step_data(step) for step in plan), *more])

    @staticmethod
    def _check_permitted(backend: Backend, plan: list) -> None:
        """-n fails as the real run would (77, nothing printed) where this user
        may not write: the writes inside a Reclaim step (shrink) included."""
        from ..kernel.backend import Reclaim

        actions = [write for step in plan for write in (step.writes if isinstance(step, Reclaim) else (step,))]
        backend.fs.check_permitted(actions)

    def _report(self, action: Action, to_stderr: bool) -> None:
        verb = "created" if isinstance(action, MakeDir) else "deleted" if isinstance(action, RemoveDir) else None
        if verb and self.verbose:
            from ..escape import printable  # group names may hold control characters

            root = self.backend().fs.root
            click.echo(f"{verb} {printable(str(action.path.relative_to(root)))}", err=to_stderr)

    def say(self, text: str) -> None:
        """Report what was done, only with -v: cron mails any output."""
        if self.verbose:
            from ..escape import printable  # group names may hold control characters

            click.echo(printable(text))

    def exit_with_unreadable(self, command: str, unreadable: list) -> None:
        """Name each group of UNREADABLE ((label, MemcgError) pairs) that
        COMMAND left out, once, on stderr, and exit with the highest of their
        codes (77 a file it may not read, 74 bad text): the groups it could
        read are shown, and a script still sees that some were not."""
        from .output import say_error

        for label, error in unreadable:
            say_error(f"memcgctl: {command}: left out {label}, which cannot be read: {error}")
        if unreadable:
            click.get_current_context().exit(max(error.exit_code for _, error in unreadable))

    def exit_with_failures(self, failures: list) -> None:
        """Print each of FAILURES (MemcgErrors, one line each) and exit with the
        highest of their codes: a command given several groups or processes
        tries every one."""
        from .output import say_error

        for error in failures:
            say_error(f"memcgctl: {error}")
        if failures:
            click.get_current_context().exit(max(error.exit_code for error in failures))


# Directories for which empty is a mistake, never "the default": `--root ""`
# would be the current directory, and an empty MEMCGCTL_ROOT (which click takes
# for unset) the host's whole hierarchy.
DIRECTORY_SETTINGS = ("root", "journal_dir")


def _store_setting(ctx: click.Context, param: click.Parameter, value):
    # Not ctx.get_parameter_source(): click 8.4 sets it only after the callback.
    settings = ctx.find_root().ensure_object(Settings)
    if param.name in DIRECTORY_SETTINGS and not ctx.resilient_parsing:
        _refuse_empty(ctx, param, value)
    if value is not None:
        setattr(settings, param.name, max(value, settings.verbose) if param.name == "verbose" else value)
    return value


def _refuse_empty(ctx: click.Context, param: click.Parameter, value) -> None:
    """Exit 2 for `--root ""` (`--root "$CGROOT"` with CGROOT unset) and for an
    empty MEMCGCTL_ROOT or MEMCGCTL_JOURNAL_DIR (`export MEMCGCTL_ROOT=$UNSET`
    in a script or a unit's drop-in), whatever else the command line says."""
    if value == "":
        raise click.BadParameter("empty (is the variable that names it unset?)", ctx, param)
    if isinstance(param.envvar, str) and os.environ.get(param.envvar) == "":  # ours name one variable each
        raise click.UsageError(f"environment variable {param.envvar} is set but empty (is the variable that "
                               f"names it unset?): unset {param.envvar} or give it a directory", ctx)


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
        click.option("--trust-root", is_flag=True, default=None, expose_value=False, callback=_store_setting,
                     help="As root, use a --root that another user owns or can write (a delegated subtree)."),
        click.option("--cgroup-version", type=click.Choice(["1", "2"]), expose_value=False,
                     callback=lambda ctx, param, value: _store_setting(ctx, param, value and int(value)),
                     help="The cgroup version the root must be (the other is refused); init-fake: the tree's."),
        click.option("-n", "--dry-run", is_flag=True, default=None, expose_value=False, callback=_store_setting,
                     help="Read and check, change nothing; print each write as a shell line."),
        click.option("--plan-json", is_flag=True, default=None, expose_value=False, callback=_store_setting,
                     help="With -n, print the plan as one JSON document instead of shell lines (for scripts)."),
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


GROUP = click.argument("group", shell_complete=complete_group)
GROUPS = click.argument("groups", nargs=-1, required=True, metavar="GROUP...", shell_complete=complete_group)
# Without --timeout a change still ends: a group whose writer keeps dirtying
# page cache can keep a v1 limit write reclaiming for minutes.
DEFAULT_TIMEOUT_SECONDS = 60
# setitimer() and the monotonic clock need a finite number; a year is more than
# any shrink needs, and `inf` says "no limit" in so many words.
MAX_TIMEOUT_SECONDS = 365 * 24 * 3600
NO_TIMEOUT_WORDS = ("inf", "infinity")


def parse_timeout(text: str) -> float | None:
    """Seconds from TEXT, or None for no limit (`inf`).  UsageError (exit 2)
    for anything else: nan, a negative number, more than a year, words."""
    cleaned = text.strip().lower()
    if cleaned in NO_TIMEOUT_WORDS:
        return None
    why = f"expected seconds from 0 to {MAX_TIMEOUT_SECONDS}, or inf for no limit"
    try:
        seconds = float(cleaned)
    except ValueError:
        raise UsageError(f"bad timeout {text!r}", why) from None
    # float() also reads "nan", "-inf" and "1e999" (inf): none of them is a number of seconds.
    if not 0 <= seconds <= MAX_TIMEOUT_SECONDS:
        raise UsageError(f"bad timeout {text!r}", why)
    return seconds


class TimeoutType(click.ParamType):
    """--timeout: seconds as a float, None for no limit."""

    name = "seconds"

    def convert(self, value, param, ctx):
        if not isinstance(value, str) or (ctx is not None and ctx.resilient_parsing):
            return value
        return parse_timeout(value)


TIMEOUT = click.option("--timeout", type=TimeoutType(), metavar="SECONDS", default=str(DEFAULT_TIMEOUT_SECONDS),
                       show_default=True,
                       help="Give up after SECONDS (exit 75), the wait for another memcgctl changing "
                            "the group included; 0: one attempt, no wait; inf: no limit.")


