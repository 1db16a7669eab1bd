"""Commands that change how much memory a group holds: limit, shrink, empty."""

from __future__ import annotations

import click

from ..errors import Busy, MemcgError, UsageError
from ..safety.deadline import Deadline
from .options import GROUP, TIMEOUT, SizeArgumentCommand, SizeType, given, global_options

# limit name (as in stat --json) -> the parameter of `limit` that sets it
LIMIT_PARAMETERS = {"limit": "size", "soft_limit": "soft", "high": "high", "low": "low", "min": "min_",
                    "swap_limit": "swap"}
# How each limit is named on the command line.
OPTION_BY_LIMIT = {"limit": "SIZE", "soft_limit": "--soft", "high": "--high", "low": "--low", "min": "--min",
                   "swap_limit": "--swap"}
# A limit the command line was not given, as a person names it.
LIMIT_WORDS = {"soft_limit": "soft limit", "high": "high limit (throttle point)"}
HINT_BY_VERSION = {1: "cgroup v1 has SIZE, --soft and --swap", 2: "cgroup v2 has SIZE, --high, --low, --min and --swap"}


def worded(error: MemcgError) -> MemcgError:
    """ERROR, in the words of the command line: the library names limits as
    `stat --json` does and never speaks of options."""
    from ..operations.limits import ForceRequired, LimitWouldKill, UnsupportedLimit

    limit_name = error.limit_name
    if isinstance(error, UnsupportedLimit):
        error.what = f"set {OPTION_BY_LIMIT[error.limit_name]}"
        error.why = f"not available on cgroup v{error.version} ({HINT_BY_VERSION[error.version]})"
    elif isinstance(error, LimitWouldKill):
        from ..sizes import format_size

        error.why = (f"usage {format_size(error.shrink.after)} could not be brought under "
                     f"{format_size(error.shrink.target)}; the limit was left as it was, as writing it would make "
                     "the kernel OOM-kill processes (--force to do it anyway)")
    elif isinstance(error, ForceRequired):
        error.why += "; --force sets it all the same"
    elif limit_name and error.what == f"set {limit_name}":
        error.what = f"set {OPTION_BY_LIMIT[limit_name]}"
    return error


def warn(text: str) -> None:
    from ..escape import printable  # a warning may name a group, whose name may hold anything

    click.echo(f"memcgctl: warning: {printable(text)}", err=True)


def warn_about_meaningless_values(backend, group, changes: dict) -> None:
    """Warnings for what was set but means little: a soft limit or high
    above the hard limit."""
    from ..operations.limits import limits_above_the_hard_limit
    from ..sizes import format_size

    for name, value, hard in limits_above_the_hard_limit(backend, group, changes):
        if name in changes:
            warn(f"{OPTION_BY_LIMIT[name]} {format_size(value)} is above the hard limit {format_size(hard)}: "
                 "set, but it has no effect while the hard limit is lower")
        else:  # the group's own, which this command leaves as it is
            warn(f"the group's {LIMIT_WORDS[name]} {format_size(value)} is above the new hard limit "
                 f"{format_size(hard)}: it has no effect while the hard limit is lower")


def warn_about_useless_force(backend, changes: dict, force: bool) -> None:
    """--force where it changes nothing: said before the write, so that it is
    said too when the kernel refuses the limit (EBUSY), when it matters most."""
    if force and backend.version == 1 and not _below_one_page(changes.get("limit")):
        warn("--force does nothing here: on cgroup v1 the kernel never OOM-kills to get under a new limit "
             "(it refuses it); --force only lets a limit below one page through")


def _below_one_page(value) -> bool:
    from ..operations.limits import page_size

    return value is not None and value < page_size()


@click.command(cls=SizeArgumentCommand)
@GROUP
@click.argument("size", required=False, type=SizeType())
@click.option("--soft", type=SizeType(), metavar="SIZE", help="v1 soft limit (memory.soft_limit_in_bytes).")
@click.option("--high", type=SizeType(), metavar="SIZE", help="v2 throttle point (memory.high).")
@click.option("--low", type=SizeType(), metavar="SIZE", help="v2 best-effort protection (memory.low).")
@click.option("--min", "min_", type=SizeType(), metavar="SIZE", help="v2 hard protection (memory.min).")
@click.option("--swap", type=SizeType(), metavar="SIZE", help="Swap allowed, alone (v1: memsw = limit + swap).")
@click.option("--force", is_flag=True, help="v2: write memory.max below usage even if the kernel must OOM-kill; "
              "both: allow a hard limit below one page.")
@TIMEOUT
@global_options
@click.pass_context
def limit(ctx, group, size, soft, high, low, min_, swap, force, timeout):
    """Set a group's limits, or show them when no value is given.  SIZE is the
    hard limit (v1 memory.limit_in_bytes, v2 memory.max); `max` is unlimited.

    On cgroup v2 a hard limit below usage is reached by shrinking first;
    if that fails the limit is left as it was (exit 75) unless --force.
    A hard limit below one page (the kernel would make it 0) is refused
    (exit 2) unless --force.

    \b
    Example:
      memcgctl limit web 400M --swap 0
    """
    deadline = Deadline(timeout)  # one budget: the lock wait and the work share it
    settings = ctx.obj
    changes = {name: ctx.params[param] for name, param in LIMIT_PARAMETERS.items() if given(ctx, param)}
    if not changes:
        from ..render.text import print_limits

        backend = settings.backend()
        print_limits(backend.read_limits(backend.group(group)))
        return
    try:
        _set(settings, group, changes, force, deadline)
    except MemcgError as error:
        raise worded(error) from None


def _refusal_comment(backend, target: int) -> str:
    """What a dry run of a v2 hard limit below usage says the real run does
    when the shrink before it falls short (LimitWouldKill)."""
    fake = " (a fake tree frees nothing)" if not backend.fs.is_kernel else ""
    return (f"# if the shrink leaves usage above {target} bytes{fake}, the real run writes none of the lines "
            "after the shrink's and exits 75, the limit left as it was, unless --force (then the limit is "
            "written all the same and the kernel OOM-kills to get under it)")


def _set(settings, group: str, changes: dict, force: bool, deadline: Deadline) -> None:
    from ..kernel.backend import Reclaim
    from ..operations.groups import refuse_root_name, target_group
    from ..operations.limits import check_hard_limit, check_supported, plan_set_limits, set_limits
    from ..safety.signals import stop_signals_raise

    refuse_root_name(group, "limit")
    check_hard_limit(changes.get("limit"), force)
    backend = settings.backend()
    target = target_group(backend, group, "limit")
    check_supported(backend, changes)
    warning = backend.owner_warning(target)
    if warning:
        warn(warning)
    warn_about_useless_force(backend, changes, force)
    if settings.dry_run:
        warn_about_meaningless_values(backend, target, changes)
        plan = plan_set_limits(backend, target, changes, force)
        settings.show(plan)
        if not (force or settings.plan_json) and plan and isinstance(plan[0], Reclaim):
            click.echo(_refusal_comment(backend, plan[0].target))
        return
    with stop_signals_raise():
        outcome = set_limits(backend, target, changes, force, deadline)
    # Only once the kernel took the values: a refused limit (v1 EBUSY) is one error line, not "set" and an error.
    warn_about_meaningless_values(backend, target, changes)
    if outcome.oom_kills:
        from ..escape import printable

        click.echo(f"memcgctl: limit {printable(target.label)}: the kernel OOM-killed {outcome.oom_kills} "
                   "process(es) to get under the new limit", err=True)
    if settings.verbose:
        from ..render.text import print_limits

        print_limits(outcome.limits)


@click.command()
@GROUP
@click.argument("target_words", nargs=-1, required=True, metavar="TARGET")
@TIMEOUT
@global_options
@click.pass_obj
def shrink(settings, group, target_words, timeout):
    """Bring a group's memory usage to TARGET or below: a size, or a percentage
    of current usage (80%).  Exit 75 if it cannot.  One group per shrink.

    v1 lowers memory.limit_in_bytes for the kernel to reclaim and always
    restores it (also on Ctrl-C, SIGTERM, SIGHUP); v2 writes memory.reclaim
    and never touches memory.max.

    \b
    Example:
      memcgctl shrink web 400M
      */5 * * * *  memcgctl shrink batch 80% || logger "batch: shrink failed"
    """
    from ..operations.groups import refuse_root_name, target_group
    from ..operations.shrink import plan_shrink
    from ..operations.shrink import shrink as shrink_group
    from ..safety.signals import stop_signals_raise
    from ..sizes import parse_target

    deadline = Deadline(timeout)  # one budget: the lock wait and the work share it
    if len(target_words) > 1:
        raise UsageError(f"shrink {group} {' '.join(target_words[:-1])}",
                         "one GROUP and one TARGET: shrink one group per command (run one shrink per group)")
    target = parse_target(target_words[0])
    refuse_root_name(group, "shrink")
    backend = settings.backend()
    group_to_shrink = target_group(backend, group, "shrink")
    if settings.dry_run:
        settings.show(plan_shrink(backend, group_to_shrink, target).steps)
        return
    with stop_signals_raise():
        result = shrink_group(backend, group_to_shrink, target, deadline)
    if not result.reached:
        from ..render.text import shrink_progress, stop_reason_text

        raise Busy(f"shrink {group_to_shrink.label}",
                   f"target not reached: {shrink_progress(result)}: {stop_reason_text(result, timeout)}",
                   str(group_to_shrink.path))
    if settings.verbose:  # formatting sizes imports humanfriendly
        from ..render.text import shrink_progress

        settings.say(f"{group_to_shrink.label}: {shrink_progress(result)}")


@click.command()
@GROUP
@TIMEOUT
@global_options
@click.pass_obj
def empty(settings, group, timeout):
    """Reclaim all the memory a group can give up, never killing (v1
    memory.force_empty, v2 memory.reclaim).  Exit 75 if --timeout passes
    first (what was reclaimed until then stays reclaimed).

    \b
    Example:
      memcgctl empty -v batch/job1
    """
    from ..operations.groups import refuse_root_name, target_group

    deadline = Deadline(timeout)  # one budget: the lock wait and the work share it
    refuse_root_name(group, "empty")
    backend = settings.backend()
    target = target_group(backend, group, "empty")
    if settings.dry_run:
        settings.show(backend.plan_empty(target))
        return
    from ..operations.shrink import empty_within
    from ..safety.signals import stop_signals_raise

    with stop_signals_raise():
        result = empty_within(backend, target, deadline)
    if result.stopped_because is not None:
        from ..render.text import stop_reason_text
        from ..sizes import format_size

        raise Busy(f"empty {target.label}", f"{stop_reason_text(result, timeout)}: "
                   f"{format_size(result.before)} -> {format_size(result.after)}", str(target.path))
    if settings.verbose:  # formatting sizes imports humanfriendly
        from ..sizes import format_size

        settings.say(f"{target.label}: {format_size(result.after)} left")
