"""The size grammar: what a person may type, and what the kernel is given."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memcgctl.errors import UsageError
from memcgctl.sizes import MAX_BYTES, parse_size, parse_target

KIB, MIB, GIB = 1024, 1024**2, 1024**3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("4096", 4096),
        ("010", 10),  # decimal, not octal as the kernel's memparse would read it
        ("400M", 400 * MIB),
        ("400m", 400 * MIB),
        ("400MB", 400 * MIB),
        ("400MiB", 400 * MIB),
        ("400mib", 400 * MIB),
        ("1K", KIB),
        ("1G", GIB),
        ("2T", 2 * 1024**4),
        ("1P", 1024**5),
        ("7E", 7 * 1024**6),
        ("1.5G", GIB * 3 // 2),
        ("0.1K", 102),  # 102.4 rounded down
        ("1.9", 1),
        ("12B", 12),
        (" 5M ", 5 * MIB),
        ("400 MiB", 400 * MIB),  # as memcgctl prints it
        ("0 bytes", 0),
        ("1 byte", 1),
    ],
)
def test_sizes_parse_to_exact_bytes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["max", "MAX", "unlimited", "-1"])
def test_unlimited_words_where_allowed(text):
    assert parse_size(text, allow_unlimited=True) is None


def test_unlimited_refused_where_not_allowed():
    with pytest.raises(UsageError):
        parse_size("max")


@pytest.mark.parametrize(
    "text",
    ["", "abc", "-5M", "10X", "1.2.3G", "0x10", "5  M", "5\tM", ".5G", "5.G", "1KK", "iB", "5iB", "+5", "9E", "8E",
     str(2**63), "1e9", "5M5"],
)
def test_bad_sizes_are_usage_errors_quoting_the_value(text):
    with pytest.raises(UsageError) as caught:
        parse_size(text)
    assert caught.value.exit_code == 2
    assert repr(text) in str(caught.value)


def test_largest_size_is_two_to_the_63_minus_one():
    assert parse_size(str(MAX_BYTES)) == MAX_BYTES
    with pytest.raises(UsageError):
        parse_size(str(MAX_BYTES + 1))


def test_targets_are_sizes_or_percentages_of_usage():
    assert parse_target("50M").resolve(usage=GIB) == 50 * MIB
    assert parse_target("80%").resolve(usage=1000) == 800
    assert parse_target("0%").resolve(usage=1000) == 0
    with pytest.raises(UsageError):
        parse_target("101%")
    with pytest.raises(UsageError):
        parse_target("-5%")


UNITS = ["", "K", "M", "G", "T", "P", "E"]


@given(st.integers(min_value=0, max_value=2**20), st.sampled_from(UNITS), st.sampled_from(["", "B", "iB"]),
       st.booleans())
def test_every_unit_spelling_is_a_power_of_1024(number, unit, suffix, lower):
    if not unit and suffix == "iB":
        suffix = ""  # "iB" needs a unit letter
    text = f"{number}{unit}{suffix}"
    text = text.lower() if lower else text
    expected = number * 1024 ** UNITS.index(unit)
    if expected > MAX_BYTES:
        with pytest.raises(UsageError):
            parse_size(text)
    else:
        assert parse_size(text) == expected
