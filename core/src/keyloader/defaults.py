"""Defaults that both the settings and the engine use, at the bottom of the layers."""

DEFAULT_CACHE_SIZE = 1000
"""Sealed keys the engine keeps (Acra's keystore caches 1000 by default); 0 turns it off."""
DEFAULT_CACHE_TTL = 0.0
"""How long a cached key of a store *without* revision tokens is trusted: 0, never."""
