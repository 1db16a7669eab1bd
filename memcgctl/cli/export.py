"""The export command: the groups' figures as Prometheus metrics."""

from __future__ import annotations

import sys

import click

from .options import complete_group, global_options


@click.command()
@click.argument("groups", nargs=-1, metavar="[GROUP]...", shell_complete=complete_group)
@click.option("-r", "--recursive", is_flag=True, help="Include the groups below each GROUP.")
@click.option("--depth", type=click.IntRange(min=0), metavar="N",
              help="Only groups at most N levels below the root, or below each GROUP (implies -r).")
@click.option("--include", multiple=True, metavar="GLOB",
              help="Only groups whose name matches GLOB (repeatable; * matches / too).")
@click.option("--exclude", multiple=True, metavar="GLOB",
              help="Leave out groups whose name matches GLOB (repeatable; 'user.slice*': it and all below).")
@click.option("--listen", metavar="ADDR:PORT",
              help="Serve /metrics over HTTP on ADDR:PORT until SIGTERM (127.0.0.1:9101, [::1]:9101).")
@click.option("--textfile", metavar="PATH", type=click.Path(dir_okay=False),
              help="Write one scrape to PATH for node_exporter's textfile collector (atomically).")
@global_options
@click.pass_obj
def export(settings, groups, recursive, depth, include, exclude, listen, textfile):
    """Export usage, limits, peak, memory.stat counters, memory.events (v2) or
    failcnt (v1), pressure totals (v2) and the memcgctl daemon's counters as
    Prometheus metrics; with no GROUP, of every group under the root.  Also
    OOM kills (v2 memory.events, v1 memory.oom_control) and the processes in
    each group itself.  Without --listen or --textfile, print one scrape.
    --depth, --include and --exclude limit which groups are exported: the
    name matched is the group's path under the root (system.slice/cron.service).

    \b
    Example:
      memcgctl export --listen 127.0.0.1:9101
      memcgctl export --textfile /var/lib/node_exporter/memcgctl.prom
      memcgctl export --depth 2 --exclude 'user.slice*'
    """
    from ..errors import UsageError
    from ..export.collector import GroupCollector, Selection
    from ..export.serve import exposition, parse_listen_address, serve, write_textfile

    if listen and textfile:
        raise UsageError("export", "--listen and --textfile cannot be used together")
    if textfile == "":  # `--textfile "$FILE"` with FILE unset: not a scrape on stdout, mailed by cron
        raise UsageError("export --textfile", "empty (is the variable that names it unset?)")
    if "" in include + exclude:
        raise UsageError("export --include/--exclude", "an empty glob (is the variable that names it unset?)")
    address = parse_listen_address(listen) if listen else None
    backend = settings.backend()
    for name in groups:
        backend.group(name)  # a misspelt group is an error now, not an empty scrape later
    collector = GroupCollector(backend, groups, recursive, backend.journal,
                               Selection(depth, include, exclude))
    if textfile:
        write_textfile(collector, textfile)
        settings.say(f"wrote {textfile}")
    elif address:
        serve(collector, *address, on_ready=lambda host, port: settings.say(f"serving /metrics on {host}:{port}"))
    else:
        _print(exposition(collector))


def _print(data: bytes) -> None:
    """DATA on standard output; a full disk or a closed file is one error line."""
    from ..errors import OutputClosed, describe_errno, error_from_oserror

    try:
        click.echo(data, nl=False)  # bytes go to the binary stream as they are
        sys.stdout.flush()
    except BrokenPipeError as err:
        # A reader that stopped (| head): quiet 141 as every command, not
        # click's own exit 1 for EPIPE.
        raise OutputClosed("write metrics", describe_errno(err.errno)) from err
    except OSError as err:
        raise error_from_oserror(err, "write metrics", "standard output") from err
