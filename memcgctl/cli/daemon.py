"""The daemon command: background reclaim by the rules of a TOML file."""

from __future__ import annotations

import click

from .options import global_options


@click.command()
@click.option("--config", "config_file", required=True, metavar="FILE",
              help="The TOML file of rules (see DAEMON in the man page).")
@click.option("--once", is_flag=True, help="Make one pass over every group, then exit (for cron and tests).")
@click.option("--check", is_flag=True, help="Validate FILE and print the groups each rule matches; exit 0, or 78.")
@global_options
@click.pass_obj
def daemon(settings, config_file, once, check):
    """Reclaim memory in the background by the rules of FILE: watermarks
    (shrink to `low` when usage crosses `high`; on cgroup v1 the kernel wakes
    the daemon at the crossing), and pools (keep groups under a shared
    budget).  One daemon per root; SIGHUP reloads FILE, SIGTERM and SIGINT
    stop it (undoing a step in flight).  Each action is one line on stderr.

    \b
    Example:
      memcgctl daemon --config /etc/memcgctl/daemon.toml
      memcgctl daemon --config daemon.toml --check
    """
    from ..daemon.config import load_config
    from ..daemon.engine import Engine, raise_file_limit
    from ..daemon.log import DaemonLog
    from ..escape import printable

    config = load_config(config_file)
    backend = settings.backend()
    settings.report_recovered()  # now, not when the daemon stops
    log = DaemonLog(settings.verbose)
    if check:
        engine = Engine(backend, config, log, dry_run=True)
        for label, policy, names in engine.matches():
            matched = " ".join(map(printable, names)) if names else "(no group matches now)"
            click.echo(f"{label}: {policy}: {matched}")
        return
    if settings.dry_run:  # writes nothing: a new FILE can be tried beside the running daemon
        Engine(backend, config, log, dry_run=True).run(once)
        return
    from ..daemon.lock import one_daemon_per_root

    raise_file_limit()  # one fd per kernel watch (engine.watch_cap)
    with one_daemon_per_root(backend.journal, backend.fs.root):
        Engine(backend, config, log).run(once)
