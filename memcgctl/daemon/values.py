"""The kinds of value a daemon configuration holds, parsed from TOML.

Each parser takes what tomllib gave and returns the value the daemon uses,
or raises ValueError with words for a person; config.py adds the line and
key.  Sizes use memcgctl's own grammar (sizes.py).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..errors import UsageError
from ..sizes import MAX_BYTES, parse_size

# A size written without a unit is bytes.  Below this it is surely a unit
# forgotten ("high = 200" is 200 bytes, and a watermark that low would take
# every page of the group): no figure the daemon acts on is that small.
SMALLEST_SIZE_WITHOUT_UNIT = 1024**2
# The shortest time between passes: each pass reads every polled group, and a
# shorter interval (interval = 1e-9) only spends the CPU budget on reading.
SHORTEST_INTERVAL_SECONDS = 0.01
# The longest time any key of the file takes (interval, step_seconds,
# backoff_max...): a day.  Longer is surely a slip (interval = 1e300, ms for
# s), and past what the kernel's timers and poll() accept.
LONGEST_SECONDS = 86400.0


class Amount(NamedTuple):
    """A size in bytes, or a percentage of the group's hard limit."""

    bytes: int | None = None
    percent: float | None = None
    text: str = ""  # as written in the file, for messages

    def resolve(self, limit: int | None) -> int | None:
        """Bytes, given the hard limit in bytes; None when it is a percentage
        of a limit the group does not have (unlimited)."""
        if self.percent is None:
            return self.bytes
        return None if limit is None else int(limit * self.percent // 100)

    def __str__(self) -> str:
        if self.text:
            return self.text
        return f"{self.percent:g}%" if self.percent is not None else str(self.bytes)


def size(value) -> int:
    """A size: "800M", "1.5G", or an integer of bytes (0, or at least
    SMALLEST_SIZE_WITHOUT_UNIT without a unit)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as \"800M\", not {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative ({value})")
        if value > MAX_BYTES:  # TOML's integers are 64-bit, tomllib's are not
            raise ValueError(f"{value} is larger than 2^63 - 1 bytes, the most a kernel file holds")
        number = value
    elif isinstance(value, str):
        try:
            number = parse_size(value)
        except UsageError as error:
            raise ValueError(f"{error.what}: {error.why}") from None
    else:
        raise ValueError(f"expected a size such as \"800M\", not {value!r}")
    if 0 < number < SMALLEST_SIZE_WITHOUT_UNIT and str(value).strip().isdigit():
        raise ValueError(f"{value!r} is {number} bytes, surely not what is meant: write the unit "
                         f"(\"{str(value).strip()}M\", or \"{str(value).strip()}B\" if bytes are meant)")
    return number


def size_or_percent(value) -> Amount:
    """A size, or a percentage of the group's hard limit ("90%")."""
    if isinstance(value, str) and value.strip().endswith("%"):
        text = value.strip()[:-1].strip()
        try:
            percent = float(text)
        except ValueError:
            raise ValueError(f"bad percentage {value!r}") from None
        if not (math.isfinite(percent) and 0 <= percent <= 100):
            raise ValueError(f"a percentage must be from 0% to 100%, not {value!r}")
        return Amount(percent=percent, text=value)
    return Amount(bytes=size(value), text=str(value))


def seconds(value) -> float:
    """A number of seconds above 0 and at most LONGEST_SECONDS."""
    number = number_value(value)
    if number <= 0:
        raise ValueError(f"expected a number of seconds above 0, not {value!r}")
    if number > LONGEST_SECONDS:
        raise ValueError(f"expected at most {LONGEST_SECONDS:g} s (a day), not {value!r}")
    return number


def interval_seconds(value) -> float:
    """Seconds between passes or looks: at least SHORTEST_INTERVAL_SECONDS."""
    number = seconds(value)
    if number < SHORTEST_INTERVAL_SECONDS:
        raise ValueError(f"expected at least {SHORTEST_INTERVAL_SECONDS:g} s, not {value!r}: each pass reads "
                         "every polled group, and a shorter interval only spends the CPU budget on reading")
    return number


def number_value(value) -> float:
    """A finite number (an integer or a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"expected a number, not {value!r}")
    return float(value)


def positive_number(value) -> float:
    number = number_value(value)
    if number <= 0:
        raise ValueError(f"expected a number above 0, not {value!r}")
    return number


def percent_of_a_core(value) -> float:
    """A share of one CPU core in percent, above 0 and at most 100."""
    number = number_value(value)
    if not 0 < number <= 100:
        raise ValueError(f"expected a percentage of one core above 0 and at most 100, not {value!r}")
    return number


def group_pattern(value) -> str:
    """A group name or a glob over group names ("batch/*"); never the root."""
    if not isinstance(value, str):
        raise ValueError(f"expected a group name or glob, not {value!r}")
    parts = [part for part in value.split("/") if part]
    if not parts:
        raise ValueError("the root is not a group the daemon may change")
    if any(part in (".", "..") for part in parts) or "\0" in value or "\n" in value:
        raise ValueError(f"not a group name: {value!r}")
    # As on the command line: a kernel file's name (memory.max, cgroup.procs)
    # is never a group; refused here, with the line, not at the first pass.
    from ..kernel.names import is_kernel_file_name

    for part in parts:
        if is_kernel_file_name(part):
            raise ValueError(f"{part!r} is the name of a kernel file of a cgroup, not of a group")
    return "/".join(parts)


def group_patterns(value) -> tuple:
    """A non-empty list of group names or globs."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"expected a list of group names or globs, not {value!r}")
    return tuple(group_pattern(each) for each in value)


def shares(value) -> dict:
    """{group name or glob: weight above 0}."""
    if not isinstance(value, dict):
        raise ValueError(f"expected a table of group = weight, not {value!r}")
    return {group_pattern(name): positive_number(weight) for name, weight in value.items()}
