"""The JSON text of `stat --json`, without importing the json package.

Importing json costs about 2 ms (its decoder compiles regular expressions),
as much as all of memcgctl's own start-up; `stat --json` only needs to write
dicts of strings, integers and None.  to_json_text() gives exactly the text of
json.dumps(value, indent=2) for those (tests/test_fast_paths.py compares them),
quoting strings with the C function json itself uses, and hands anything else
to json.

JSON text is valid UTF-8: a group name holding bytes that are not UTF-8
(lone surrogates, as os.fsdecode gives them) is written with each such byte
spelled \\xNN (escape.valid_utf8), as the tables spell it; json alone would
write a lone surrogate (\\udc80) that strict parsers refuse.
"""

from __future__ import annotations

from ..escape import valid_utf8

try:
    from _json import encode_basestring_ascii as _quote
except ImportError:  # an interpreter without json's C accelerator: its Python twin, same text
    from json.encoder import py_encode_basestring_ascii as _quote

INDENT = "  "


def to_json_text(value, level: int = 0) -> str:
    """json.dumps(VALUE, indent=2), as if it were nested LEVEL deep."""
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
        return _quote(valid_utf8(value))
    if kind is dict:
        if not value:
            return "{}"
        if any(type(key) is not str for key in value):
            raise TypeError("json writes non-string keys its own way")
        items = [f"{_quote(valid_utf8(key))}: {_text(item, level + 1)}" for key, item in value.items()]
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

    return json.dumps(utf8_strings(value), indent=2).replace("\n", "\n" + INDENT * level)


def dumps_utf8(value, **options) -> str:
    """json.dumps(VALUE, **OPTIONS) as valid UTF-8 (see utf8_strings): json
    writes a lone surrogate as \\udcNN, so only a text holding \\ud (a lone
    surrogate, or a character beyond the BMP as a pair) is made again; a
    top --json frame of 1,000 groups is not walked at every frame."""
    import json

    text = json.dumps(value, **options)
    return json.dumps(utf8_strings(value), **options) if "\\ud" in text else text


def utf8_strings(value):
    """VALUE (dicts, lists, strings, numbers) with every string and key made
    valid UTF-8 (escape.valid_utf8), for json.dumps."""
    kind = type(value)
    if kind is str:
        return valid_utf8(value)
    if kind is dict:
        return {valid_utf8(key) if type(key) is str else key: utf8_strings(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [utf8_strings(item) for item in value]
    return value
