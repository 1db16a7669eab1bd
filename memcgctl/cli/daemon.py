"""The daemon command: background reclaim by the rules of a TOML file, and
`daemon status`: what the running daemon watches and did."""

from __future__ import annotations

import click

from .options import EXIT_STATUS_HELP, global_options


@click.group(invoke_without_command=True, subcommand_metavar="[status]")
@click.option("--config", "config_file", metavar="FILE",
              help="The TOML file of rules (see DAEMON in the man page).")
@click.option("--once", is_flag=True, help="Make one pass over every group, then exit (for cron and tests).")
@click.option("--check", is_flag=True, help="Validate FILE and print the groups each rule matches; exit 0, or 78.")
@global_options
@click.pass_context
def daemon(ctx, config_file, once, check):
    """Reclaim memory in the background by the rules of FILE: watermarks
    (shrink to `low` when usage crosses `high`; on cgroup v1 the kernel wakes
    the daemon at the crossing), and pools (keep groups under a shared
    budget).  One daemon per root; SIGHUP reloads FILE, SIGTERM and SIGINT
    stop it (undoing a step in flight).  Each action is one line on stderr.
    `daemon status` shows what the running daemon watches and did.

    \b
    Example:
      memcgctl daemon --config /etc/memcgctl/daemon.toml
      memcgctl daemon --config daemon.toml --check
      memcgctl daemon status
    """
    if ctx.invoked_subcommand is not None:
        if config_file or once or check:
            raise click.UsageError(f"{ctx.invoked_subcommand} takes no --config, --once or --check", ctx)
        return
    if config_file is None:
        raise click.UsageError("missing option '--config'", ctx)
    run_daemon(ctx.obj, config_file, once, check)


def run_daemon(settings, config_file: str, once: bool, check: bool) -> None:
    from ..daemon.config import load_config
    from ..daemon.engine import Engine, raise_file_limit
    from ..daemon.log import DaemonLog

    config = load_config(config_file)
    backend = settings.backend()
    settings.report_recovered()  # now, not when the daemon stops
    log = DaemonLog(settings.verbose)
    if check:
        show_check(Engine(backend, config, log, dry_run=True))
        return
    if settings.dry_run:  # writes nothing: a new FILE can be tried beside the running daemon
        Engine(backend, config, log, dry_run=True).run(once)
        return
    from ..daemon.lock import one_daemon_per_root

    raise_file_limit()  # one fd per kernel watch (engine.watch_cap)
    with one_daemon_per_root(backend.journal, backend.fs.root):
        Engine(backend, config, log).run(once)


def show_check(engine) -> None:
    """The groups each rule matches on stdout; on stderr, a warning for each
    rule that surely does not do what was meant (exit 0 all the same: the
    file is valid, and the groups may change)."""
    import time

    from ..daemon.checks import group_warnings
    from ..escape import printable

    for label, policy, names in engine.matches():
        click.echo(f"{label}: {policy}: {printable(' '.join(names)) if names else '(no group matches now)'}")
    engine.discover(time.monotonic())
    for warning in group_warnings(engine):
        click.echo(f"memcgctl: warning: {printable(warning)} ({engine.config.path})", err=True)


@daemon.command(epilog=EXIT_STATUS_HELP)
@click.option("--json", "as_json", is_flag=True, help="The daemon's status document, as JSON.")
@global_options
@click.pass_obj
def status(settings, as_json):
    """What the daemon running on the root watches: each group with its rule,
    the last action and when, how long it is backed off, what was reclaimed.
    Exit 3 when no daemon runs on the root, as `systemctl status` does."""
    from ..daemon.status import read_status
    from ..errors import NotRunning
    from ..export.daemon_counters import writer_alive

    backend = settings.backend()
    document = read_status(backend.journal, backend.fs.root)
    # The file outlives a daemon that was killed: its pid must still be that daemon.
    if document is None or not writer_alive(int(document["pid"]), float(document["started"])):
        raise NotRunning("daemon status", "no memcgctl daemon runs on this root", str(backend.fs.root))
    if as_json:
        import json

        click.echo(json.dumps(document, indent=2))
        return
    from ..render.daemon_status import status_lines

    for line in status_lines(document):
        click.echo(line)

