"""Conformance suites that plugin tests subclass.

``MasterKeyProviderContract``, ``KeyStoreContract`` and
``PlaceholderProviderContract`` (Enterprise Edition placeholders behind the
enterprise gate) are pytest base classes: subclass one in your plugin's tests
and provide the fixtures and class attributes it names. ``deprecations_as_errors`` turns
keyloader's deprecation warnings into errors for a plugin's suite.
"""

from __future__ import annotations

from .deprecations import deprecations_as_errors as deprecations_as_errors
from .placeholders import PlaceholderProviderContract as PlaceholderProviderContract
from .providers import MasterKeyProviderContract as MasterKeyProviderContract
from .rings import RingBackendContract as RingBackendContract
from .stores import KeyStoreContract as KeyStoreContract

__all__ = [
    "KeyStoreContract",
    "MasterKeyProviderContract",
    "PlaceholderProviderContract",
    "RingBackendContract",
    "deprecations_as_errors",
]
