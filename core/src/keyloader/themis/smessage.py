"""Themis Secure Message, encrypt mode: what wraps an AcraStruct's data key.

Byte-compatible with Themis (``src/themis/secure_message_wrapper.c`` and
``src/soter/openssl/soter_asym_ka.c`` of github.com/cossacklabs/themis). Between a
sender's private key and a recipient's public key (both P-256)::

    type = 0x26042720 (u32 LE) | length (u32 LE) | Secure Cell Seal, no context

The Secure Cell key is the ECDH shared secret as OpenSSL gives it: the 32-byte
x-coordinate of the shared point, no KDF. The recipient opens the message with
its private key and the sender's public key (the same shared secret).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ..errors import IntegrityError
from ..secret import SecretBytes, burn
from . import scell

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["HEADER_SIZE", "MESSAGE_TYPE", "decrypt", "encrypt", "sealed_size"]

MESSAGE_TYPE = 0x26042720
"""Themis' id of an encrypted (not signed) Secure Message."""
HEADER_SIZE = 8
_HEADER = struct.Struct("<II")
_FAILED = "cannot decrypt the Secure Message: wrong keys or tampered data"


def sealed_size(plaintext_size: int) -> int:
    """The size of the message that wraps ``plaintext_size`` bytes."""
    return HEADER_SIZE + scell.HEADER_SIZE + plaintext_size


def encrypt(
    private: ec.EllipticCurvePrivateKey,
    public: ec.EllipticCurvePublicKey,
    plaintext: bytes | bytearray | memoryview,
) -> bytes:
    """Wrap ``plaintext`` from the holder of ``private`` to the holder of ``public``."""
    with _shared_secret(private, public) as secret:
        cell = scell.encrypt(secret.buffer, plaintext)
    return _HEADER.pack(MESSAGE_TYPE, HEADER_SIZE + len(cell)) + cell


def decrypt(
    private: ec.EllipticCurvePrivateKey,
    public: ec.EllipticCurvePublicKey,
    message: bytes | bytearray | memoryview,
) -> SecretBytes:
    """Open ``message`` with the recipient's ``private`` key and the sender's ``public`` one.

    Any failure (short, wrong type or length, wrong keys, tampered) is one
    :class:`IntegrityError`. The caller wipes the result.
    """
    view = memoryview(message)
    if len(view) <= HEADER_SIZE + scell.HEADER_SIZE:
        raise IntegrityError(_FAILED)
    kind, length = _HEADER.unpack_from(view)
    if kind != MESSAGE_TYPE or length != len(view):
        raise IntegrityError(_FAILED)
    with _shared_secret(private, public) as secret:
        try:
            return scell.decrypt(secret.buffer, view[HEADER_SIZE:])
        except IntegrityError:
            raise IntegrityError(_FAILED) from None


def _shared_secret(
    private: ec.EllipticCurvePrivateKey, public: ec.EllipticCurvePublicKey
) -> SecretBytes:
    from cryptography.hazmat.primitives.asymmetric import ec

    shared = private.exchange(ec.ECDH(), public)
    try:
        return SecretBytes(shared)
    finally:
        burn(shared)
