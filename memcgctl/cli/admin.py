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


INSTALLED = {"new": "written", "changed": "replaced"}  # what --install did, by the plan's state


@click.command("units")
@click.option("--install", is_flag=True,
              help="Write the units (and the example configuration, when there is none).")
@click.option("--dir", "directory", metavar="DIR", default="/etc/systemd/system", show_default=True,
              help="Where --install writes the units.")
@click.option("--listen", metavar="ADDR:PORT", default="127.0.0.1:9101", show_default=True,
              help="The address memcgctl-export.service serves /metrics on.")
@click.option("--config", "config_file", metavar="FILE", default="/etc/memcgctl/daemon.toml", show_default=True,
              help="The daemon's configuration file, named in its unit.")
@global_options
@click.pass_obj
def units(settings, install, directory, listen, config_file):
    """Print the systemd units of memcgctl, made for this memcgctl (ExecStart=
    names it by absolute path: a venv's or pipx's is found too): the daemon,
    recover at boot, a shrink timer per group, the exporter.  --install
    writes them, and the example configuration to FILE (--config) when there
    is none there, and says what to run next.

    \b
    Example:
      memcgctl units | less
      memcgctl units --install && systemctl daemon-reload
    """
    from pathlib import Path

    from ..errors import UsageError
    from ..export.serve import parse_listen_address
    from ..files import install_system_file, read_optional_system_text
    from ..units import (
        config_path_warning,
        executable_warning,
        memcgctl_executable,
        next_steps,
        plan_install,
        rendered_units,
        service_config_path,
    )
    from .output import say_error

    if not directory:  # a script's unset variable: never the current directory
        raise UsageError("units --dir", "the directory is empty: name one (the default is /etc/systemd/system)")
    parse_listen_address(listen)
    memcgctl, config = memcgctl_executable(), service_config_path(config_file)
    for warning in (executable_warning(memcgctl), config_path_warning(config)):
        if warning:
            say_error(f"memcgctl: warning: {warning}")
    if not install:
        for path, content in rendered_units(memcgctl, Path(directory), listen, config):
            click.echo(f"# {path}\n{content}")
        return
    plan = plan_install(memcgctl, Path(directory).absolute(), listen, config,
                        lambda path: read_optional_system_text(path, "read unit"))
    if settings.dry_run:
        settings.show(plan)
        return
    for step in plan:
        if step.state in ("new", "changed"):
            install_system_file(step.path, step.content, "install unit")
        click.echo(f"{step.path}: {INSTALLED.get(step.state, step.state)}")
    example_installed = plan[-1].state == "new"
    click.echo("next:\n" + "\n".join(f"  {line}" for line in next_steps(listen, config, example_installed)))
