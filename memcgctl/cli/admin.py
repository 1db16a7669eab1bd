"""Housekeeping commands: recover, init-fake, completion."""

from __future__ import annotations

import click

from .options import global_options


@click.command("init-fake")
@click.argument("directory", type=click.Path(file_okay=False))
@global_options
@click.pass_obj
def init_fake(settings, directory):
    """Build an empty fake hierarchy of plain files in a NEW directory
    DIRECTORY (cgroup v2 unless --cgroup-version 1), to rehearse scripts
    without root.  An existing DIRECTORY is refused.

    \b
    Example:
      memcgctl init-fake --cgroup-version 1 /tmp/cg
      memcgctl --root /tmp/cg create web --limit 400M
    """
    from pathlib import Path

    from ..kernel.discovery import build_fake_root, plan_fake_root

    version = settings.cgroup_version or 2
    plan = plan_fake_root(Path(directory), version, settings.trust_root)
    if settings.dry_run:
        settings.show(plan)
        return
    build_fake_root(Path(directory), version, plan, settings.trust_root)
    settings.say(f"fake cgroup v{settings.cgroup_version or 2} root in {directory}")


@click.command()
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

    click.echo(completion_script(click.get_current_context().find_root().command, shell), nl=False)


@click.command("recover")
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
    from ..operations.recovery import plan_recover, recover

    if settings.dry_run:
        settings.carry_out(plan_recover(settings.backend()))
        return
    recover(settings.backend(), strict=True)


