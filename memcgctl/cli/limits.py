"""Commands that change how much memory a group holds: limit, shrink, empty."""

from __future__ import annotations

import click

from ..errors import Busy
from ..safety.deadline import Deadline
from .options import GROUP, TIMEOUT, SizeArgumentCommand, SizeType, TargetType, given, global_options

# limit name (as in stat --json) -> the parameter of `limit` that sets it
LIMIT_PARAMETERS = {"limit": "size", "soft_limit": "soft", "high": "high", "low": "low", "min": "min_",
                    "swap_limit": "swap"}


@click.command(cls=SizeArgumentCommand)
@GROUP
@click.argument("size", required=False, type=SizeType())
@click.option("--soft", type=SizeType(), metavar="SIZE", help="v1 soft limit (memory.soft_limit_in_bytes).")
@click.option("--high", type=SizeType(), metavar="SIZE", help="v2 throttle point (memory.high).")
@click.option("--low", type=SizeType(), metavar="SIZE", help="v2 best-effort protection (memory.low).")
@click.option("--min", "min_", type=SizeType(), metavar="SIZE", help="v2 hard protection (memory.min).")
@click.option("--swap", type=SizeType(), metavar="SIZE", help="Swap allowed, alone (v1: memsw = limit + swap).")
@click.option("--force", is_flag=True, help="v2: write memory.max below usage even if the kernel must OOM-kill.")
@TIMEOUT
@global_options
@click.pass_context
def limit(ctx, group, size, soft, high, low, min_, swap, force, timeout):
    """Set a group's limits, or show them when no value is given.  SIZE is the
    hard limit (v1 memory.limit_in_bytes, v2 memory.max); `max` is unlimited.

    On cgroup v2 a hard limit below usage is reached by shrinking first;
    if that fails the limit is left as it was (exit 75) unless --force.

    \b
    Example:
      memcgctl limit web 400M --swap 0
    """
    from ..operations.limits import plan_set_limits, set_limits
    from ..safety.signals import stop_signals_raise

    settings = ctx.obj
    backend = settings.backend()
    target = backend.group(group)
    changes = {name: ctx.params[param] for name, param in LIMIT_PARAMETERS.items() if given(ctx, param)}
    if not changes:
        from ..render.text import print_limits

        print_limits(backend.read_limits(target))
        return
    warning = backend.owner_warning(target)
    if warning:
        from ..render.escape import printable

        click.echo(f"memcgctl: warning: {printable(warning)}", err=True)
    if settings.dry_run:
        settings.carry_out(plan_set_limits(backend, target, changes))
    else:
        with stop_signals_raise():
            outcome = set_limits(backend, target, changes, force, Deadline(timeout))
        if outcome.oom_kills:
            from ..render.escape import printable

            click.echo(f"memcgctl: limit {printable(target.label)}: the kernel OOM-killed {outcome.oom_kills} "
                       "process(es) to get under the new limit", err=True)
        if settings.verbose:
            from ..render.text import print_limits

            print_limits(outcome.limits)


@click.command()
@GROUP
@click.argument("target", type=TargetType())
@TIMEOUT
@global_options
@click.pass_obj
def shrink(settings, group, target, timeout):
    """Bring a group's memory usage to TARGET or below: a size, or a percentage
    of current usage (80%).  Exit 75 if it cannot.

    v1 lowers memory.limit_in_bytes for the kernel to reclaim and always
    restores it (also on Ctrl-C, SIGTERM, SIGHUP); v2 writes memory.reclaim
    and never touches memory.max.

    \b
    Example:
      memcgctl shrink web 400M
      */5 * * * *  memcgctl shrink batch 80% || logger "batch: shrink failed"
    """
    from ..operations.shrink import shrink as shrink_group
    from ..safety.signals import stop_signals_raise

    backend = settings.backend()
    target_group = backend.group(group)
    if settings.dry_run:
        target_bytes = target.resolve(backend.read_usage(target_group))
        settings.carry_out(backend.plan_shrink(target_group, target_bytes))
        return
    with stop_signals_raise():
        result = shrink_group(backend, target_group, target, Deadline(timeout))
    if not result.reached:
        from ..render.text import shrink_progress, stop_reason_text

        raise Busy(f"shrink {target_group.label}",
                   f"target not reached: {shrink_progress(result)}: {stop_reason_text(result, timeout)}",
                   str(target_group.path))
    if settings.verbose:  # formatting sizes imports humanfriendly
        from ..render.text import shrink_progress

        settings.say(f"{target_group.label}: {shrink_progress(result)}")


@click.command()
@GROUP
@global_options
@click.pass_obj
def empty(settings, group):
    """Reclaim all the memory a group can give up, never killing (v1
    memory.force_empty, v2 memory.reclaim).

    \b
    Example:
      memcgctl empty -v batch/job1
    """
    backend = settings.backend()
    target = backend.group(group)
    if settings.dry_run:
        settings.carry_out(backend.plan_empty(target))
        return
    from ..operations.shrink import empty as empty_group
    from ..safety.signals import stop_signals_raise

    with stop_signals_raise():
        left = empty_group(backend, target)
    if settings.verbose:  # formatting sizes imports humanfriendly
        from ..sizes import format_size

        settings.say(f"{target.label}: {format_size(left)} left")


