"""The memcgctl command line: parses, calls the library, reports.

Each command body reads as: find the group, compute the plan, carry it out (or
print it with --dry-run), say what happened if -v.  Errors are printed in one
place, MemcgctlGroup.invoke, as `memcgctl: <what failed>: <why> (<path>)`.

Commands live in modules by topic and are imported only when run (click's
lazy group): `stat` never loads what only `limit`, the daemon or `top` need.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Sequence
from typing import Any

import click

from ..errors import Interrupted, MemcgError, OutputClosed, OutputError
from ..escape import printable
from .options import EXIT_STATUS_HELP, Settings, global_options

# command name -> "module:function" under memcgctl.cli
COMMANDS = {
    "create": "groups:create",
    "delete": "groups:delete",
    "attach": "groups:attach",
    "run": "groups:run",
    "limit": "limits:limit",
    "shrink": "limits:shrink",
    "empty": "limits:empty",
    "stat": "show:stat",
    "tree": "show:tree",
    "top": "top:top",
    "recover": "admin:recover_command",
    "init-fake": "admin:init_fake",
    "completion": "admin:completion",
    "export": "export:export",
    "daemon": "daemon:daemon",
    "units": "admin:units",
}


class MemcgctlGroup(click.Group):
    """Loads each command when it is asked for, and turns memcgctl errors and
    stop signals into one stderr line and an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, function = COMMANDS[name].split(":")
        command = getattr(importlib.import_module(f"{__name__}.{module}"), function)
        command.epilog = command.epilog or EXIT_STATUS_HELP  # every -h ends with the exit status table
        return command

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """click's main, but a usage error is one line on stderr, as every
        other error: `memcgctl: <command>: <what is wrong> (see 'memcgctl <command> -h')`."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as error:  # `memcgctl` alone: the help, as click gives it
            error.show()
            sys.exit(error.exit_code)
        except click.UsageError as error:  # an argument it quotes may hold anything
            click.echo(f"memcgctl: {printable(one_line_usage_error(error, args))}", err=True)
            sys.exit(error.exit_code)
        except click.ClickException as error:
            click.echo(f"memcgctl: {printable(error.format_message())}", err=True)
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("memcgctl: aborted", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context):
        settings = ctx.ensure_object(Settings)
        try:
            return super().invoke(ctx)
        except OutputError:
            raise  # main() says it, once, after the last flush
        except MemcgError as error:
            message, exit_code = str(with_remedy(error)), error.exit_code
        except Interrupted as interrupt:
            message, exit_code = f"interrupted by {interrupt.name}", 128 + interrupt.signum
        except KeyboardInterrupt:  # Ctrl-C outside a change (stat, start-up)
            message, exit_code = "interrupted by SIGINT", 130
        finally:
            settings.report_recovered()
        from .output import say_error

        say_error(f"memcgctl: {message}")
        ctx.exit(exit_code)


def with_remedy(error: MemcgError) -> MemcgError:
    """ERROR, with the global option that would get past it named (the
    library does not speak in options)."""
    from ..errors import UntrustedJournal, UntrustedRoot

    if isinstance(error, UntrustedRoot):
        error.why += " (--trust-root if that user is trusted)"
    elif isinstance(error, UntrustedJournal):
        error.why += " (--journal-dir to use another)"
    return error


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


# What a negative number given where an argument is expected is taken for
# (click reads `limit web -5M` as an option -5): said as the argument's error.
NEGATIVE_ARGUMENT = {"limit": "bad size '{}': a size cannot be negative",
                     "shrink": "bad size '{}': a size cannot be negative",
                     "attach": "bad process id '{}': expected a positive whole number"}


def one_line_usage_error(error: click.UsageError, args: Sequence[str] | None = None) -> str:
    """'shrink: missing argument 'TARGET' (see 'memcgctl shrink -h')'"""
    negative = _negative_argument(error, sys.argv[1:] if args is None else args)
    if negative is not None:
        return negative
    message = " ".join(error.format_message().split()).rstrip(".")
    message = message[:1].lower() + message[1:]
    path = error.ctx.command_path if error.ctx is not None else "memcgctl"
    command = path.partition(" ")[2]
    if command and isinstance(error, click.NoSuchOption) and error.option_name in _global_option_names():
        # top (whose -n is a count) and completion take global options before their name only.
        message += f": give it before the command name ('memcgctl {error.option_name} ... {command}')"
    return f"{command + ': ' if command else ''}{message} (see '{path} -h')"


def _negative_argument(error: click.UsageError, args: Sequence[str]) -> str | None:
    """The message for `limit web -5M` (a negative number, which click takes
    for an unknown option), or None for another error."""
    if not (isinstance(error, click.NoSuchOption) and error.ctx is not None
            and error.option_name[1:2].isdigit()):
        return None
    command = error.ctx.command_path.partition(" ")[2]
    if command not in NEGATIVE_ARGUMENT:
        return None
    given = next((arg for arg in args if arg.startswith(error.option_name)), error.option_name)
    return f"{NEGATIVE_ARGUMENT[command].format(given)} (see '{error.ctx.command_path} -h')"


def _global_option_names() -> set[str]:
    return {name for param in cli.params for name in (*param.opts, *param.secondary_opts)}


def main():
    import sys

    from .output import CheckedOutput, exit_now, say_error

    sys.stdout = CheckedOutput(sys.stdout)
    sys.stderr = CheckedOutput(sys.stderr, quiet=True)
    code: str | int | None
    try:
        try:
            cli(prog_name="memcgctl")
            code = 0
        except SystemExit as done:  # click ends every command this way
            code = done.code
        sys.stdout.flush()  # here, not at exit, where a failure is only a warning
    except OutputClosed as closed:
        code = closed.exit_code
    except OutputError as error:
        say_error(f"memcgctl: {error}")
        code = error.exit_code
    exit_now(code)
