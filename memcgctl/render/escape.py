"""Text from the kernel made safe to show: group names may hold any byte but
NUL and '/' (the kernel allows CR, ESC and, made by hand, newline), and a name
printed raw can move the cursor, clear the screen or make one shell line read
as another.  Everything memcgctl shows (tables, trees, errors, shell lines)
passes through here.

No import beyond the standard library: the kernel layer and errors.py use it.
"""

from __future__ import annotations

# bash's $'...' escapes for the characters people know by name.
_NAMED = {"\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f", "\r": "\\r",
          "\x1b": "\\E", "'": "\\'", "\\": "\\\\"}


def _is_safe(text: str) -> bool:
    # isprintable() is False for control characters and for the lone
    # surrogates that stand for bytes that are not UTF-8 (os.fsdecode).
    return text.isprintable()


def _escape_character(character: str) -> str:
    if character in _NAMED:
        return _NAMED[character]
    code = ord(character)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if character.isprintable():
        return character
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def ansi_c_quote(text: str) -> str:
    """TEXT as bash's $'...' quoting, which spells every character visibly."""
    return "$'" + "".join(_escape_character(character) for character in text) + "'"


def shell_quote(text: str) -> str:
    """TEXT as one shell word: shlex.quote for printable text, $'...' when it
    holds a control character (which '...' would carry raw to the terminal)."""
    if _is_safe(text):
        import shlex  # only dry runs print shell lines

        return shlex.quote(text)
    return ansi_c_quote(text)


def shell_join(words) -> str:
    """WORDS as one shell command line (shlex.join, control characters quoted)."""
    return " ".join(shell_quote(word) for word in words)


def printable(text: str) -> str:
    """TEXT for a terminal: itself when printable, else in $'...' form."""
    return text if _is_safe(text) else ansi_c_quote(text)
