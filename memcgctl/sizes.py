"""Sizes: parse what a person types, format what a person reads.

Grammar (the contract; the kernel only ever sees plain decimal bytes):

    SIZE    := NUMBER [" "] [UNIT]  |  "max" | "unlimited" | "-1"   (where allowed)
    NUMBER  := DIGITS ["." DIGITS]      decimal, rounded DOWN to whole bytes
    UNIT    := K|M|G|T|P|E, optionally followed by "B" or "iB", any case,
               or a lone "B", "byte" or "bytes";  every unit is a power of
               1024 (like the kernel, systemd and docker)

The optional space and the words let what memcgctl prints ("400 MiB",
"0 bytes") be pasted back.
The largest size is 2^63 - 1 bytes.  The kernel's own memparse() reads "010"
as octal and wraps on overflow (16E = 0); so we never pass a user's text
through, we parse it here and write decimal bytes.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple, overload

from .errors import UsageError

MAX_BYTES = 2**63 - 1
UNLIMITED_WORDS = ("max", "unlimited", "-1")

_UNIT_POWERS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
# Compiled on first use (re caches it): compiling costs ~0.3 ms at every start.
_SIZE_PATTERN = (
    r"(?P<whole>[0-9]+)(?:\.(?P<fraction>[0-9]+))? ?"
    r"(?:(?P<unit>[KMGTPE])(?:I?B)?|B|BYTES?)?"
)


@overload
def parse_size(text: str, allow_unlimited: Literal[False] = False) -> int: ...
@overload
def parse_size(text: str, allow_unlimited: bool) -> int | None: ...
def parse_size(text: str, allow_unlimited: bool = False) -> int | None:
    """Bytes for TEXT, or None for unlimited (only when allow_unlimited).

    Raises UsageError (exit 2) quoting the bad value.
    """
    cleaned = text.strip()
    if cleaned.lower() in UNLIMITED_WORDS:
        if allow_unlimited:
            return None
        raise UsageError(f"bad size {text!r}", "unlimited is not allowed here")
    match = re.fullmatch(_SIZE_PATTERN, cleaned, re.IGNORECASE)
    if match is None:
        raise UsageError(
            f"bad size {text!r}",
            "expected bytes or a number with K, M, G, T, P or E (powers of 1024), e.g. 400M",
        )
    multiplier = 1024 ** _UNIT_POWERS[(match["unit"] or "").upper()]
    fraction = match["fraction"] or ""
    numerator = int(match["whole"] + fraction) * multiplier
    value = numerator // 10 ** len(fraction)
    if value > MAX_BYTES:
        raise UsageError(f"bad size {text!r}", "larger than 2^63 - 1 bytes")
    return value


class ShrinkTarget(NamedTuple):
    """A shrink target: absolute bytes, or a percentage of current usage."""

    bytes: int | None = None
    percent: float | None = None

    def resolve(self, usage: int) -> int:
        """The target in bytes, given the group's current usage in bytes."""
        if self.percent is not None:
            return int(usage * self.percent // 100)
        if self.bytes is None:
            raise ValueError("a shrink target needs bytes or a percent")
        return self.bytes


_PERCENT_PATTERN = r"[0-9]+(?:\.[0-9]+)?%"


def parse_target(text: str) -> ShrinkTarget:
    """A SIZE, or a percentage of current usage from 0% to 100% ("80%")."""
    cleaned = text.strip()
    if re.fullmatch(_PERCENT_PATTERN, cleaned):
        percent = float(cleaned[:-1])
        if percent > 100:
            raise UsageError(f"bad target {text!r}", "a percentage must be at most 100%")
        return ShrinkTarget(percent=percent)
    return ShrinkTarget(bytes=parse_size(text))


def format_size(value: int | None) -> str:
    """A size for a person: "210.1 MiB"; "max" for unlimited (None)."""
    if value is None:
        return "max"
    from humanfriendly import format_size as humanfriendly_format_size

    return humanfriendly_format_size(value, binary=True)
