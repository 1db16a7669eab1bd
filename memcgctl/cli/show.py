"""Commands that show groups: stat, tree."""

from __future__ import annotations

import click

from .options import complete_group, global_options


@click.command()
@click.argument("groups", nargs=-1, metavar="[GROUP]...", shell_complete=complete_group)
@click.option("-r", "--recursive", is_flag=True, help="Include the groups below each GROUP.")
@click.option("--json", "as_json", is_flag=True, help="JSON: a list of objects with stable keys, sizes in bytes.")
@click.option("--detail", is_flag=True, help="Every counter of one GROUP, grouped, with what each means.")
@click.option("--fields", metavar="FIELD,...", help="Only these figures (usage, limit, stat.anon, events.max, ...).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header line, sizes in bytes, empty for unlimited.")
@global_options
@click.pass_obj
def stat(settings, groups, recursive, as_json, detail=False, fields=None, as_csv=False):
    """Show usage, limits, peak and the main counters of groups; with no GROUP,
    every group under the root.  Sizes count the group and the groups below
    it; PIDS only the processes in the group itself (cgroup.procs).

    JSON keys: group, path, cgroup_version, usage, limit, soft_limit, high,
    low, min, swap_limit, peak, failcnt, events, stat, pids (null: unlimited
    or not applicable).

    \b
    Example:
      memcgctl stat -r batch
      memcgctl stat --json web | jq .[0].usage
    """
    from ..operations.stats import iter_stats, select_groups

    backend = settings.backend()
    unreadable: list = []  # a group that cannot be read is left out, and said after the others
    if detail or fields is not None or as_csv:
        from .stat_fields import show_detail_or_fields

        show_detail_or_fields(backend, groups, recursive, as_json, detail, fields, as_csv, unreadable)
        settings.exit_with_unreadable("stat", unreadable)
        return
    # Each group is turned into text as soon as it is read, so that only the
    # text is kept, not every group's figures.  Nothing is printed before all
    # are read: an error leaves stdout empty (a group it cannot read is left out, said after).
    stats = iter_stats(backend, select_groups(backend, groups, recursive), skip_vanished=not groups or recursive,
                       unreadable=unreadable)
    if as_json:
        from ..render.json_text import to_json_text

        # The text of json.dumps(list, indent=2), one element at a time.
        elements = [to_json_text(each.to_json(), level=1) for each in stats]
        if not elements:
            click.echo("[]")
        for index, element in enumerate(elements):
            click.echo(("[\n  " if index == 0 else ",\n  ") + element, nl=False)
        if elements:
            click.echo("\n]")
    else:
        from ..render.text import print_table, stat_rows

        print_table(*stat_rows(stats, backend.version))
    settings.exit_with_unreadable("stat", unreadable)


@click.command()
@click.argument("group", required=False, default="", shell_complete=complete_group)
@global_options
@click.pass_obj
def tree(settings, group):
    """Show groups as a tree with usage, limit and number of processes.

    \b
    Example:
      memcgctl tree batch
    """
    from ..kernel.names import clean_group_name
    from ..operations.stats import read_stats, select_groups
    from ..render.text import tree_lines

    backend = settings.backend()
    names = [group] if group else []
    if group and not clean_group_name(group) and not backend.is_group(backend.group("", must_exist=False)):
        names = []  # `tree /` on cgroup v2, whose root has no memory.current: the groups below it
    groups = select_groups(backend, names, recursive=True)
    unreadable: list = []  # a group that cannot be read is left out, and said after the others
    for line in tree_lines(read_stats(backend, groups, skip_vanished=True, unreadable=unreadable)):
        click.echo(line)
    settings.exit_with_unreadable("tree", unreadable)


