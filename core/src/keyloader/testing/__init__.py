"""Conformance suites that plugin tests subclass.

``MasterKeyProviderContract`` and ``KeyStoreContract`` are pytest base classes:
subclass one in your plugin's tests and provide the fixtures it names.
"""

from __future__ import annotations

from .providers import MasterKeyProviderContract as MasterKeyProviderContract
from .stores import KeyStoreContract as KeyStoreContract
