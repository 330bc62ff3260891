"""A JSON answer's secret string values, taken out before anything parses the answer.

Vault answers a KV read with JSON in which the master key's base64 text is one string
(``{"data": {"data": {"acra_master_key": "..."}, "metadata": {...}}}`` for KV v2,
``{"data": {"acra_master_key": "..."}}`` for KV v1), and an AppRole login with the
token in ``auth.client_token``. ``json`` would make that text a ``str``, which cannot
be wiped. Here the answer's bytes (in secret pages) are walked by a small tokenizer that
finds the string values at given paths without decoding anything; each is copied into
a :class:`~keyloader.secret.SecretBytes`, and what hvac then parses is a copy of the
answer in which those values are ``*`` characters: the structure, the other fields,
the metadata and the errors are all there, the secrets are not.

The values are base64 text or tokens, which JSON writers never escape: they are copied
as they are. A value with backslash escapes takes the slower path, still into secret
pages: it is unescaped character by character (``\\uXXXX`` and surrogate pairs to
UTF-8), which leaves only small ``int`` objects of code points behind.

Anything the tokenizer does not read as one JSON value is left as it is: no value is
taken, hvac parses the answer unchanged (and ``json`` refuses it too, or the caller falls
back to the ``str`` hvac gives it). The tokenizer checks strings as ``json`` does and
leaves numbers and literals for ``json`` to check. tests/vault/test_vault_jsonfield.py
compares it with ``json`` on generated documents.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import cast

from keyloader.secret import SecretBytes

__all__ = [
    "PLACEHOLDER",
    "Capture",
    "Path",
    "copy_string",
    "find_strings",
    "first_non_ascii",
    "has_non_ascii",
    "redact",
]

Path = tuple[bytes, ...]
"""Object keys from the top of the document, UTF-8 (``(b"data", b"data", b"acra_master_key")``)."""

PLACEHOLDER = b"*"
"""What a taken value's characters become (not base64, so never a key by mistake)."""

_BACKSLASH, _U = 0x5C, 0x75
_OPEN_OBJECT, _CLOSE_OBJECT, _COMMA = 0x7B, 0x7D, 0x2C
_SPACE = rb"[ \t\r\n]*"
_PLAIN = re.compile(rb'[^"\\\x00-\x1f]*')  # a run of string characters needing no attention
_CHARS = rb'((?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9A-Fa-f]{4}))*)'  # with escapes
# The tokens, by where they may come (each match also takes the whitespace before it):
_VALUE = re.compile(  # 1: a string without escapes, 2: one with, 3: { or [, else a scalar
    _SPACE + rb'(?:"([^"\\\x00-\x1f]*)"|"' + _CHARS + rb'"|([{\[])|[^ \t\r\n{}\[\]:,"]+)'
)
_KEY = re.compile(_SPACE + rb'"(?:([^"\\\x00-\x1f]*)|' + _CHARS + rb')"' + _SPACE + rb":")
_PAIR = re.compile(  # the common case, at once: "key": "plain string" or scalar, then , or }
    _SPACE
    + rb'"([^"\\\x00-\x1f]*)"'
    + _SPACE
    + rb":"
    + _SPACE
    + rb'(?:"([^"\\\x00-\x1f]*)"|[^ \t\r\n{}\[\]:,"]+)'
    + _SPACE
    + rb"([,}])"
)
_FLAT = re.compile(  # an object or array without one inside: skipped in one match
    rb'\{[^{}\[\]"]*(?:"'
    + _CHARS
    + rb'"[^{}\[\]"]*)*\}|\[[^{}\[\]"]*(?:"'
    + _CHARS
    + rb'"[^{}\[\]"]*)*\]'
)
_NEXT = re.compile(_SPACE + rb"([,}\]])")  # after a value
_EMPTY = re.compile(_SPACE + rb"([}\]])")  # right after { or [
_END = re.compile(_SPACE + rb"\Z")
_VALUE_STATE, _KEY_STATE, _NEXT_STATE = 0, 1, 2
_NON_ASCII = re.compile(rb"[\x80-\xff]")
_PLAIN_NAME = re.compile(rb"[A-Za-z0-9_.-]+")  # names a JSON writer has no reason to escape
_SIMPLE_ESCAPES = {
    0x22: 0x22,  # \"
    0x5C: 0x5C,  # \\
    0x2F: 0x2F,  # \/
    0x62: 0x08,  # \b
    0x66: 0x0C,  # \f
    0x6E: 0x0A,  # \n
    0x72: 0x0D,  # \r
    0x74: 0x09,  # \t
}
_HEX_VALUES = {char: int(chr(char), 16) for char in b"0123456789abcdefABCDEF"}

Span = tuple[int, int, bool]
"""Where a string's characters are (between its quotes), and whether it has escapes."""


def find_strings(data: memoryview, paths: Iterable[Path]) -> list[tuple[Path, Span]] | None:
    """Every string value at one of ``paths``, in document order (a key given twice has
    two: ``json`` keeps the last); None if ``data`` is not one JSON value as far as this
    tokenizer reads it (it leaves numbers and literals to ``json``).

    Nothing of the document is copied but its object keys (names, not values).
    """
    wanted = frozenset(paths)
    deepest = max((len(path) for path in wanted), default=0)
    inside = {path[:depth] for path in wanted for depth in range(len(path))}
    found: list[tuple[Path, Span]] = []
    keys: list[bytes | None] = []  # one per open container: an object's current key, or None
    state = _VALUE_STATE
    at = 0
    while True:
        if state == _VALUE_STATE:
            token = _VALUE.match(data, at)
            if token is None:
                return None
            at = token.end()
            kind = token.lastindex
            if kind == 3:  # { or [
                opened = data[at - 1]
                if tuple(keys) not in inside:  # nothing wanted in it: skipped at once if flat
                    flat = _FLAT.match(data, at - 1)
                    if flat is not None:
                        at = flat.end()
                        state = _NEXT_STATE
                        continue
                empty = _EMPTY.match(data, at)
                if empty is None:
                    keys.append(None)
                    state = _KEY_STATE if opened == _OPEN_OBJECT else _VALUE_STATE
                    continue
                if (data[empty.end() - 1] == _CLOSE_OBJECT) != (opened == _OPEN_OBJECT):
                    return None
                at = empty.end()
            elif kind is not None and keys and keys[-1] is not None and len(keys) <= deepest:
                path = tuple(keys)  # an array on the way makes a None: never wanted
                if path in wanted:
                    found.append(
                        (cast(Path, path), (token.start(kind), token.end(kind), kind == 2))
                    )
            state = _NEXT_STATE
        elif state == _KEY_STATE:
            pair = _PAIR.match(data, at)
            if pair is not None:
                at = pair.end()
                keys[-1] = data[pair.start(1) : pair.end(1)].tobytes()
                if pair.start(2) >= 0 and len(keys) <= deepest:
                    path = tuple(keys)
                    if path in wanted:
                        found.append((cast(Path, path), (pair.start(2), pair.end(2), False)))
                if data[at - 1] == _CLOSE_OBJECT:
                    keys.pop()
                    state = _NEXT_STATE
                continue
            token = _KEY.match(data, at)
            if token is None:
                return None
            at = token.end()
            if token.lastindex == 1:
                keys[-1] = data[token.start(1) : token.end(1)].tobytes()
            else:
                with copy_string(data, token.start(2), token.end(2), escaped=True) as name:
                    keys[-1] = name.bytes()
            state = _VALUE_STATE
        else:
            token = _NEXT.match(data, at)
            if token is None or not keys:
                return found if token is None and not keys and _END.match(data, at) else None
            at = token.end()
            char = data[at - 1]
            in_object = keys[-1] is not None
            if char == _COMMA:
                state = _KEY_STATE if in_object else _VALUE_STATE
            elif (char == _CLOSE_OBJECT) == in_object:
                keys.pop()
            else:
                return None


def copy_string(data: memoryview, start: int, end: int, *, escaped: bool) -> SecretBytes:
    """The characters of a JSON string (``data[start:end]``, between its quotes) as UTF-8,
    in secret pages. Without escapes a plain copy; with them, unescaped one by one."""
    if not escaped:
        return SecretBytes(data[start:end])
    scratch = SecretBytes.zeroed(end - start)  # unescaped text is never longer
    try:
        size = _unescape(data, start, end, scratch.buffer)
        return SecretBytes(scratch.buffer[:size])
    finally:
        scratch.wipe()


def _unescape(data: memoryview, start: int, end: int, out: memoryview) -> int:
    """Unescape ``data[start:end]`` into ``out`` (a checked string); the length written."""
    written = 0
    at = start
    while at < end:
        plain = _PLAIN.match(data, at, end)
        assert plain is not None
        stop = plain.end()
        out[written : written + stop - at] = data[at:stop]
        written += stop - at
        at = stop
        if at >= end:
            break
        char = data[at + 1]  # data[at] is a backslash
        if char != _U:
            out[written] = _SIMPLE_ESCAPES[char]
            written += 1
            at += 2
            continue
        code = _hex4(data, at + 2)
        at += 6
        pair = 0xD800 <= code < 0xDC00 and at + 6 <= end
        if pair and data[at] == _BACKSLASH and data[at + 1] == _U:  # a surrogate pair?
            low = _hex4(data, at + 2)
            if 0xDC00 <= low < 0xE000:
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                at += 6
        written = _utf8(out, written, code)
    return written


def _hex4(data: memoryview, at: int) -> int:
    return (
        _HEX_VALUES[data[at]] << 12
        | _HEX_VALUES[data[at + 1]] << 8
        | _HEX_VALUES[data[at + 2]] << 4
        | _HEX_VALUES[data[at + 3]]
    )


def _utf8(out: memoryview, at: int, code: int) -> int:
    """Write ``code`` as UTF-8 (a lone surrogate as its three bytes, as ``surrogatepass``)."""
    if code < 0x80:
        out[at] = code
        return at + 1
    if code < 0x800:
        out[at] = 0xC0 | code >> 6
        out[at + 1] = 0x80 | code & 0x3F
        return at + 2
    if code < 0x10000:
        out[at] = 0xE0 | code >> 12
        out[at + 1] = 0x80 | code >> 6 & 0x3F
        out[at + 2] = 0x80 | code & 0x3F
        return at + 3
    out[at] = 0xF0 | code >> 18
    out[at + 1] = 0x80 | code >> 12 & 0x3F
    out[at + 2] = 0x80 | code >> 6 & 0x3F
    out[at + 3] = 0x80 | code & 0x3F
    return at + 4


def redact(data: memoryview, spans: Iterable[Span]) -> bytes:
    """A copy of ``data`` with the characters of each span replaced by ``*``.

    Built piece by piece from the parts outside the spans: the spans are never copied.
    """
    pieces: list[memoryview | bytes] = []
    at = 0
    for start, end, _ in sorted(spans):
        pieces.append(data[at:start])
        pieces.append(PLACEHOLDER * (end - start))
        at = end
    pieces.append(data[at:])
    return b"".join(pieces)


def has_non_ascii(data: memoryview) -> bool:
    """True if ``data`` has a byte outside ASCII."""
    return _NON_ASCII.search(data) is not None


def first_non_ascii(data: memoryview) -> int:
    """The index of the first byte of ``data`` outside ASCII, or -1."""
    found = _NON_ASCII.search(data)
    return found.start() if found is not None else -1


class Capture:
    """The string values at ``paths`` of the last answer given to :meth:`take`, in secret
    pages, until :meth:`pop` hands one out or :meth:`clear` wipes them."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.paths = frozenset(paths)
        self._values: dict[Path, SecretBytes] = {}
        names = sorted({path[-1] for path in self.paths if path})
        plain = all(_PLAIN_NAME.fullmatch(name) for name in names)  # never written escaped
        self._names = re.compile(b"|".join(map(re.escape, names))) if plain else None

    def take(self, body: memoryview) -> bytes:
        """Take the values out of ``body`` (the values of an earlier answer are wiped);
        what may be parsed instead: ``body`` with the values as ``*``, or unchanged."""
        self.clear()
        found = find_strings(body, self.paths) if self._named(body) else None
        if not found:
            return body.tobytes()
        last = dict(found)  # a key given twice: json keeps the last, so does this
        for path, (start, end, escaped) in last.items():
            self._values[path] = copy_string(body, start, end, escaped=escaped)
        return redact(body, (span for _, span in found))  # every one: none reaches json

    def _named(self, body: memoryview) -> bool:
        """Whether a wanted value's name may be in ``body`` (most answers: no)."""
        if not self.paths:
            return False
        return self._names is None or self._names.search(body) is not None

    def pop(self, path: Path) -> SecretBytes | None:
        """The value taken at ``path`` (the caller wipes it), or None."""
        return self._values.pop(path, None)

    def clear(self) -> None:
        """Wipe every value taken and not popped."""
        values, self._values = self._values, {}
        for value in values.values():
            value.wipe()
