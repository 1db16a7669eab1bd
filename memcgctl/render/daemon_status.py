"""`memcgctl daemon status` for a person: a head of three lines (the
daemon, its configuration, the one-line summary systemd also shows), then a
row per group and rule.  Standard library only, and sizes.format_size."""

from __future__ import annotations

import time

from ..escape import printable
from ..sizes import format_size

HEADER = ["GROUP", "RULE", "RECLAIMED", "LAST ACTION", "BACKED OFF", "WHY"]


def status_lines(document: dict, now: float | None = None) -> list[str]:
    now = time.time() if now is None else now
    head = [f"memcgctl daemon (pid {document['pid']}) on {printable(document['root'])} "
            f"(cgroup v{document.get('version', '?')}), running since {when(document['started'], now)}",
            f"configuration {printable(document.get('config', '?'))}; as of {when(document['written'], now)}",
            summary(document)]
    rows = [group_row(row, now) for row in document["groups"]]
    return head + ([""] + left_aligned([HEADER, *rows]) if rows else [])


def group_row(row: dict, now: float) -> list[str]:
    action = row["last_action"]
    backed_off = row["backed_off_until"]
    return [printable(row["group"]), f"{row['rule']} {row['policy']}", format_size(row["reclaimed_bytes"]),
            "-" if action is None else f"{when(action['at'], now)} {format_size(action['before'])} -> "
                                       f"{format_size(action['after'])}",
            "-" if backed_off is None else f"until {when(backed_off, now)} ({row['failures']} tries)",
            "" if action is None else printable(action["why"])]


def when(unix_seconds: float, now: float) -> str:
    """The local time: the hour alone if it is today, else the date too."""
    moment = time.localtime(unix_seconds)
    same_day = time.strftime("%Y-%m-%d", moment) == time.strftime("%Y-%m-%d", time.localtime(now))
    return time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S", moment)


def left_aligned(lines: list[list[str]]) -> list[str]:
    """Every column to the left, two spaces apart, no trailing blanks (the
    last column, free text, is not padded)."""
    widths = [max(len(line[index]) for line in lines) for index in range(len(lines[0]) - 1)]
    return ["  ".join([*(cell.ljust(width) for cell, width in zip(line, widths, strict=False)), line[-1]]).rstrip()
            for line in lines]


def status_line(groups: int, rules: int, reclaimed: int, steps: int, backed_off: int) -> str:
    """systemd's STATUS= (and the summary of `daemon status`): what the daemon
    watches and has done, in one line."""
    line = (f"{groups} group(s) watched by {rules} rule(s); {format_size(reclaimed)} reclaimed in {steps} step(s)")
    return line + (f"; {backed_off} backed off" if backed_off else "")


def summary(document: dict) -> str:
    """status_line() of a status document."""
    groups = document["groups"]
    return status_line(len({row["group"] for row in groups}), len(document["rules"]),
                       document.get("reclaimed_bytes", 0), document.get("steps", 0),
                       len({row["group"] for row in groups if row["backed_off_until"] is not None}))
