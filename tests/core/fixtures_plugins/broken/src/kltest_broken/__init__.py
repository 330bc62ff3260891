"""A plugin whose module cannot be imported."""

from __future__ import annotations

raise RuntimeError("kltest_broken is broken on purpose")
