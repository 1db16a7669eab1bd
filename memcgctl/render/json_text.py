"""The JSON text of `stat --json`, without importing the json package.

Importing json costs about 2 ms (its decoder compiles regular expressions),
as much as all of memcgctl's own start-up; `stat --json` only needs to write
dicts of strings, integers and None.  to_json_text() gives exactly the text of
json.dumps(value, indent=2) for those (tests/test_fast_paths.py compares them),
quoting strings with the C function json itself uses, and hands anything else
to json.
"""

from __future__ import annotations

try:
    from _json import encode_basestring_ascii as _quote
except ImportError:  # an interpreter without json's C accelerator
    _quote = None

INDENT = "  "


def to_json_text(value, level: int = 0) -> str:
    """json.dumps(VALUE, indent=2), as if it were nested LEVEL deep."""
    if _quote is None:
        return _with_json(value, level)
    try:
        return _text(value, level)
    except TypeError:  # a float, a non-string key, ...: json knows best
        return _with_json(value, level)


def _text(value, level: int) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    kind = type(value)
    if kind is int:
        return int.__repr__(value)
    if kind is str:
        return _quote(value)
    if kind is dict:
        if not value:
            return "{}"
        if any(type(key) is not str for key in value):
            raise TypeError("json writes non-string keys its own way")
        items = [f"{_quote(key)}: {_text(item, level + 1)}" for key, item in value.items()]
        return _block("{", items, "}", level)
    if kind is list or kind is tuple:
        if not value:
            return "[]"
        return _block("[", [_text(item, level + 1) for item in value], "]", level)
    raise TypeError(f"{kind.__name__} is left to json")


def _block(opening: str, items: list, closing: str, level: int) -> str:
    inner = "\n" + INDENT * (level + 1)
    return opening + inner + ("," + inner).join(items) + "\n" + INDENT * level + closing


def _with_json(value, level: int) -> str:
    import json

    return json.dumps(value, indent=2).replace("\n", "\n" + INDENT * level)
