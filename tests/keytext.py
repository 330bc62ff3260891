"""A master key's base64 text form as ``str``: what the tests put in ``ACRA_MASTER_KEY``.

A test-side convenience: the ``str`` is an unwipeable copy, fine for throw-away keys.
"""

from __future__ import annotations

from keyloader.masterkey import MasterKey

__all__ = ["text_of"]


def text_of(key: MasterKey) -> str:
    """``key.to_text()`` decoded (the text Acra reads from ``ACRA_MASTER_KEY``)."""
    with key.to_text() as text:
        return text.bytes().decode()
