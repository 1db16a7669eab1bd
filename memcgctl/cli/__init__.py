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

import click

from ..errors import Interrupted, MemcgError
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
    "recover": "admin:recover_command",
    "init-fake": "admin:init_fake",
    "completion": "admin:completion",
    "daemon": "daemon:daemon",
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
        return getattr(importlib.import_module(f"{__name__}.{module}"), function)

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


def main():
    cli(prog_name="memcgctl")
