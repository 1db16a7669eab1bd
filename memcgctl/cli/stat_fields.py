"""`stat --detail`, `stat --fields` and `stat --csv` (the body of those
options of the stat command in show.py)."""

from __future__ import annotations

import click

from ..errors import UsageError


def show_detail_or_fields(backend, groups, recursive: bool, as_json: bool, detail: bool,
                          fields: str | None, as_csv: bool, unreadable: list) -> None:
    """Check the combination of options, then print; nothing is printed
    before every group is read and every field name checked.  A group of a
    table that cannot be read is left out and added to UNREADABLE."""
    if detail:
        if as_json or as_csv or fields is not None or recursive or len(groups) != 1:
            raise UsageError("stat --detail", "give exactly one GROUP, without -r, --json, --csv or --fields")
        _print_detail(backend, groups[0])
        return
    if as_json:
        raise UsageError("stat --json", "--fields and --csv are for tables; --json has every field")
    _print_fields(backend, groups, recursive, fields, as_csv, unreadable)


def _print_detail(backend, name: str) -> None:
    from ..render.detail import DETAIL_PARTS, detail_lines

    stat = backend.read_figures(backend.group(name), DETAIL_PARTS)
    # v1: memory.failcnt beside memory.oom_control's oom_kill
    events = {**({} if stat.failcnt is None else {"failcnt": stat.failcnt}), **(stat.events or {})}
    generations = None
    if backend.version == 2 and backend.fs.is_kernel:
        from pathlib import Path

        from ..kernel.lru_gen import estimate_of

        generations = estimate_of(Path(stat.path))
    for line in detail_lines(stat, backend.limit_names, events, _working_sets(backend, stat.group), generations):
        click.echo(line)


def _working_sets(backend, label: str) -> tuple:
    """A running daemon's working-set estimates of the group LABEL:
    ((policy, bytes, age in seconds), ...); none without a daemon."""
    import time

    from ..export.daemon_counters import working_sets

    now = time.time()
    return tuple((each.policy, each.size, max(0.0, now - each.updated))
                 for each in working_sets(backend) if each.group == label)


def _print_fields(backend, groups, recursive: bool, fields: str | None, as_csv: bool, unreadable: list) -> None:
    from ..escape import printable
    from ..operations.fields import default_fields, field_value, parse_fields
    from ..operations.stats import read_stats, select_groups

    stats = read_stats(backend, select_groups(backend, groups, recursive), skip_vanished=not groups or recursive,
                       unreadable=unreadable)
    names = parse_fields(fields, stats) if fields is not None else default_fields(backend.version,
                                                                                  backend.limit_names)
    rows = [[field_value(stat, name) for name in names] for stat in stats]
    # Names (group, path, a fake tree's memory.stat keys) spelled as in every table.
    names = [printable(name) for name in names]
    rows = [[printable(value) if isinstance(value, str) else value for value in row] for row in rows]
    if as_csv:
        import csv
        import sys

        # QUOTE_MINIMAL quotes a field holding a comma, a quote, CR or LF:
        # a row stays a row (printable() has already spelled CR and LF).
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([["" if value is None else value for value in row] for row in rows])
        return
    from ..render.text import print_table

    print_table(names, [["-" if value is None else str(value) for value in row] for row in rows])
