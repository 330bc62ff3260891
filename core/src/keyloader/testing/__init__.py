"""Conformance suites that plugin tests subclass.

``MasterKeyProviderContract``, ``KeyStoreContract`` and
``PlaceholderProviderContract`` (Enterprise Edition placeholders behind the
enterprise gate) are pytest base classes: subclass one in your plugin's tests
and provide the fixtures and class attributes it names.
"""

from __future__ import annotations

from .placeholders import PlaceholderProviderContract as PlaceholderProviderContract
from .providers import MasterKeyProviderContract as MasterKeyProviderContract
from .rings import RingBackendContract as RingBackendContract
from .stores import KeyStoreContract as KeyStoreContract
