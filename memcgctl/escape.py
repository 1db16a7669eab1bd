"""Text from the kernel made safe to show: group names may hold any byte but
NUL and '/' (the kernel allows CR, ESC, C1 controls and, made by hand,
newline), and a name printed raw can move the cursor, clear the screen, set a
terminal's title, forge a line of a log or make one shell line read as another.

printable() is the one spelling of such text for a person: tables, trees,
top, CSV, --detail, --check, errors, warnings and the daemon's log all pass
names (or whole lines) through it, once, where the text leaves memcgctl
(errors and log lines carry names raw until then).  The spelling is
one-to-one: a backslash is shown as \\, so the four characters \x1b and the
ESC byte, or two groups named so, never read the same (nor become one
exported series).  It escapes character by character, so a line escaped
whole reads as its parts escaped one by one.  valid_utf8() is the weaker form for machine formats
that escape control characters themselves (JSON); shell_quote() the form for
shell lines (dry runs), which the shell must read back as the very bytes.

No import beyond the standard library: the kernel layer and errors.py use it.
"""

from __future__ import annotations

import re

# The controls people know by their C names; the other C0 controls and DEL
# are \xNN, C1 controls (U+0080..U+009F, U+009B is a one-character CSI) and
# other unprintable code points (bidi overrides, line separators) \uNNNN.
_C_NAMES = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\\": "\\\\"}
# os.fsdecode() turns each byte that is not UTF-8 into a lone surrogate
# U+DC80..U+DCFF (PEP 383: surrogateescape).
_FIRST_ESCAPED_BYTE, _LAST_ESCAPED_BYTE = 0xDC80, 0xDCFF


def _shown_character(character: str) -> str:
    if character in _C_NAMES:
        return _C_NAMES[character]
    if character.isprintable():
        return character
    code = ord(character)
    if _FIRST_ESCAPED_BYTE <= code <= _LAST_ESCAPED_BYTE:
        return f"\\x{code - 0xDC00:02x}"  # the byte itself, as a file name holds it
    if code < 0x80:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """TEXT for a person (terminal or log): itself when every character is
    printable; else each control character (C0, DEL, C1) and other
    unprintable character escaped (\\n, \\r, \\t, \\x1b, \\x7f, \\u009b), and
    each byte that is not UTF-8 as \\xNN, and a backslash as \\\\ (so that
    no two texts are spelled the same: systemd's unit name a\\x2db.slice
    reads a\\\\x2db.slice)."""
    # isprintable() is False for controls and for lone surrogates: the common
    # case costs two scans in C.
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(map(_shown_character, text))


_UNESCAPE = re.compile(r"\\(?:([\\ntr])|x([0-9a-f]{2})|u([0-9a-f]{4})|U([0-9a-f]{8}))")
_NAMED_BACK = {"\\": "\\", "n": "\n", "t": "\t", "r": "\r"}


def _unescaped(match: re.Match) -> str:
    named, byte, short, long = match.groups()
    if named:
        return _NAMED_BACK[named]
    if byte:
        code = int(byte, 16)
        return chr(code) if code < 0x80 else chr(0xDC00 + code)  # a byte that is not UTF-8, as fsdecode gives it
    return chr(int(short or long, 16))


def unescape(shown: str) -> str | None:
    """The text that printable() spells SHOWN, or None if SHOWN is not such
    a spelling (a lone backslash, or a character printable() would escape):
    so that a group listed as batch/a\\nb can be named as it is listed."""
    text = _UNESCAPE.sub(_unescaped, shown)
    return text if printable(text) == shown else None


def valid_utf8(text: str) -> str:
    """TEXT with each byte that is not UTF-8 (a lone surrogate of
    os.fsdecode) spelled \\xNN, as printable() spells it: for JSON and
    Prometheus label values, which must be valid UTF-8 and escape control
    characters their own way."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# bash's $'...' escapes for the characters people know by name.
_SHELL_NAMED = {"\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f", "\r": "\\r",
                "\x1b": "\\E", "'": "\\'", "\\": "\\\\"}


def _shell_character(character: str) -> str:
    if character in _SHELL_NAMED:
        return _SHELL_NAMED[character]
    code = ord(character)
    if _FIRST_ESCAPED_BYTE <= code <= _LAST_ESCAPED_BYTE:
        return f"\\x{code - 0xDC00:02x}"
    if character.isprintable():
        return character
    # The UTF-8 bytes, not \u: bash turns \u into the locale's encoding
    # (none in the C locale), \xNN into the very byte.
    return "".join(f"\\x{byte:02x}" for byte in character.encode("utf-8", "surrogatepass"))


def ansi_c_quote(text: str) -> str:
    """TEXT as bash's $'...' quoting, which spells every character visibly."""
    return "$'" + "".join(map(_shell_character, text)) + "'"


def shell_quote(text: str) -> str:
    """TEXT as one shell word: shlex.quote for printable text, $'...' when it
    holds a control character (which '...' would carry raw to the terminal)."""
    if text.isprintable():
        import shlex  # only dry runs print shell lines

        return shlex.quote(text)
    return ansi_c_quote(text)


def shell_join(words) -> str:
    """WORDS as one shell command line (shlex.join, control characters quoted)."""
    return " ".join(shell_quote(word) for word in words)
