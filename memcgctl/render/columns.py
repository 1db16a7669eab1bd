"""Aligned text columns, shared by the tables of stat and the frames of top.
Standard library only: the commands that print a table import it."""

from __future__ import annotations


def aligned_lines(header: list[str], rows: list[list[str]]) -> list[str]:
    """The first column (the group name) to the left, the others (figures)
    to the right, two spaces between; no trailing blanks."""
    widths = column_widths(header, rows)
    lines = []
    for line in [header, *rows]:
        first, *others = line
        cells = [first.ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(others, widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines


def column_widths(header: list[str], rows: list[list[str]]) -> list[int]:
    """The width of each column: its widest cell, the header included."""
    return [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
