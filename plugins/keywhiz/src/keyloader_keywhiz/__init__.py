"""keyloader-keywhiz: the open-source placeholder of the Enterprise Edition ``keywhiz`` provider."""

from __future__ import annotations

from .plugin import KeywhizPlaceholder as KeywhizPlaceholder

__all__ = ["KeywhizPlaceholder"]
