"""Base64 of key material into wipeable buffers, never into immutable copies.

``base64``/``binascii`` would leave ``bytes`` copies of a key behind; these
decode and encode standard padded base64 (Acra's ``base64.StdEncoding``) into
``bytearray`` buffers the caller wipes. Decoding errors give a position, never
the value.
"""

from __future__ import annotations

from .errors import InvalidMasterKeyError
from .secret import SecretBytes

__all__ = [
    "ALPHABET",
    "LINE_BREAKS",
    "PAD",
    "SEXTETS",
    "bad_character_message",
    "decode_base64",
    "decode_base64_checked",
    "decode_base64_fast",
    "encode_base64",
    "encode_base64_raw",
    "wipe",
]

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
SEXTETS = [-1] * 256
for _index, _char in enumerate(ALPHABET):
    SEXTETS[_char] = _index
del _index, _char
PAD = ord("=")
LINE_BREAKS = (ord("\r"), ord("\n"))
BAD, PAD_SEXTET = 0xFF, 0x40
# bytes.translate table of the fast decoder: a character's sextet, 0x40 for '=', 0xFF if bad
SEXTET_TABLE = bytes(
    PAD_SEXTET if code == PAD else (SEXTETS[code] if SEXTETS[code] >= 0 else BAD)
    for code in range(256)
)


def bad_character_message(subject: str, position: int, fix: str) -> str:
    """The error for a character outside the alphabet (its position, never the value)."""
    return (
        f"{subject} is not valid base64: unexpected character at position {position} "
        f"(allowed: A-Z, a-z, 0-9, '+', '/', '=' padding at the end; line breaks are "
        f"ignored); {fix}"
    )


def decode_base64(data: bytes | bytearray | memoryview, subject: str, fix: str) -> bytearray:
    """Decode standard padded base64 into a new buffer, skipping CR and LF.

    Like Go's ``base64.StdEncoding`` and ``binascii``'s strict mode: the alphabet,
    the padding and the length are checked; non-zero trailing bits are accepted.
    Valid text takes the group-at-a-time path; anything else is decoded again
    character by character, which says where the text goes wrong.
    """
    decoded = decode_base64_fast(data)
    if decoded is not None:
        return decoded
    return decode_base64_checked(data, subject, fix)


def decode_base64_fast(data: bytes | bytearray | memoryview) -> bytearray | None:
    """Valid base64 decoded four characters at a time, or None if it is not valid.

    Every intermediate buffer is a ``bytearray`` wiped before returning.
    """
    source = data if isinstance(data, bytearray) else bytearray(data)
    try:
        sextets = source.translate(SEXTET_TABLE, b"\r\n")  # CR and LF are deleted first
    finally:
        if source is not data:
            wipe(source)
    try:
        size = len(sextets)
        if size % 4 or BAD in sextets:
            return None
        if not size:
            return bytearray()
        padding = 0
        if sextets[-1] == PAD_SEXTET:
            padding = 2 if sextets[-2] == PAD_SEXTET else 1
        if sextets.find(PAD_SEXTET, 0, size - padding) != -1:
            return None  # '=' before the end
        full = size - 4 if padding else size
        decoded = bytearray(size // 4 * 3 - padding)  # the exact size: never resized
        at = 0
        for i in range(0, full, 4):
            quantum = sextets[i] << 18 | sextets[i + 1] << 12 | sextets[i + 2] << 6 | sextets[i + 3]
            decoded[at] = quantum >> 16
            decoded[at + 1] = quantum >> 8 & 0xFF
            decoded[at + 2] = quantum & 0xFF
            at += 3
        if padding:
            quantum = sextets[full] << 18 | sextets[full + 1] << 12
            if padding == 1:
                quantum |= sextets[full + 2] << 6
                decoded[at + 1] = quantum >> 8 & 0xFF
            decoded[at] = quantum >> 16
        quantum = 0
        return decoded
    finally:
        wipe(sextets)


def decode_base64_checked(
    data: bytes | bytearray | memoryview, subject: str, fix: str
) -> bytearray:
    """The character-by-character decoder: the same result, and errors that give a position."""
    out = bytearray()
    quantum = 0  # the sextets of the current 4-character group
    count = 0  # characters in the current group, padding included
    padding = 0
    finished = False  # a padded group ended the data
    try:
        for index, char in enumerate(data):
            if char in LINE_BREAKS:
                continue
            position = index + 1
            if finished:
                raise InvalidMasterKeyError(
                    f"{subject} is not valid base64: data after the '=' padding at position "
                    f"{position}; {fix}"
                )
            if char == PAD:
                if count < 2:
                    raise InvalidMasterKeyError(
                        f"{subject} is not valid base64: misplaced '=' padding at position "
                        f"{position}; {fix}"
                    )
                padding += 1
                count += 1
            else:
                sextet = SEXTETS[char]
                if sextet < 0:
                    raise InvalidMasterKeyError(bad_character_message(subject, position, fix))
                if padding:
                    raise InvalidMasterKeyError(
                        f"{subject} is not valid base64: data after the '=' padding at "
                        f"position {position}; {fix}"
                    )
                quantum = (quantum << 6) | sextet
                count += 1
            if count == 4:
                if padding == 0:
                    out += bytes(((quantum >> 16) & 0xFF, (quantum >> 8) & 0xFF, quantum & 0xFF))
                elif padding == 1:
                    out += bytes(((quantum >> 10) & 0xFF, (quantum >> 2) & 0xFF))
                else:
                    out.append((quantum >> 4) & 0xFF)
                finished = padding > 0
                quantum = count = padding = 0
        if count:
            raise InvalidMasterKeyError(
                f"{subject} is not valid base64: it ends in an incomplete group of {count} "
                f"character(s) (missing '=' padding, or truncated); {fix}"
            )
    except BaseException:
        wipe(out)
        raise
    return out


def encode_base64(data: bytes | bytearray | memoryview | SecretBytes) -> SecretBytes:
    """Standard padded base64 of key material (no newline), in a buffer the caller wipes."""
    return SecretBytes.adopt(
        encode_base64_raw(data.view if isinstance(data, SecretBytes) else data)
    )


def encode_base64_raw(data: bytes | bytearray | memoryview) -> bytearray:
    """Standard padded base64 of ``data`` into a new buffer (no newline)."""
    view = memoryview(data)
    out = bytearray()
    whole = len(view) - len(view) % 3
    for start in range(0, whole, 3):
        group = (view[start] << 16) | (view[start + 1] << 8) | view[start + 2]
        out += bytes(
            (
                ALPHABET[group >> 18],
                ALPHABET[(group >> 12) & 0x3F],
                ALPHABET[(group >> 6) & 0x3F],
                ALPHABET[group & 0x3F],
            )
        )
    rest = len(view) - whole
    if rest == 1:
        group = view[whole] << 16
        out += bytes((ALPHABET[group >> 18], ALPHABET[(group >> 12) & 0x3F], PAD, PAD))
    elif rest == 2:
        group = (view[whole] << 16) | (view[whole + 1] << 8)
        out += bytes(
            (
                ALPHABET[group >> 18],
                ALPHABET[(group >> 12) & 0x3F],
                ALPHABET[(group >> 6) & 0x3F],
                PAD,
            )
        )
    return out


def wipe(buffer: bytearray) -> None:
    """Overwrite ``buffer`` with zeros."""
    SecretBytes.adopt(buffer).wipe()
