"""The enterprise gate: which providers need the enterprise flag, and what it says.

The core applies the gate before a provider is built, never the plugins
(docs/architecture.md, "The enterprise gate"). It is always on for the names
in :data:`ENTERPRISE_NAMES`, whatever their class says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import EnterpriseFeatureError, ProviderNotImplementedError
from .providers import ProviderStatus

if TYPE_CHECKING:
    from .providers import MasterKeyProvider

__all__ = ["ENABLE_HINT", "ENTERPRISE_NAMES", "check_enterprise", "is_enterprise", "status"]

ENTERPRISE_NAMES: frozenset[str] = frozenset({"aws-kms", "gcp-kms", "keywhiz"})
"""Provider names the enterprise gate always applies to, whatever their class says."""

ENABLE_HINT = (
    "enable it with KEYLOADER_ENTERPRISE=1, `enterprise = true` in keyloader.toml, "
    "--enterprise on the command line, or enterprise=True in the Python API"
)


def is_enterprise(cls: type[MasterKeyProvider]) -> bool:
    """Whether the gate applies to ``cls``."""
    return bool(cls.enterprise) or cls.name in ENTERPRISE_NAMES


def status(cls: type[MasterKeyProvider], *, enterprise: bool) -> ProviderStatus:
    """What the gate would do with ``cls``: available, locked or unavailable."""
    if is_enterprise(cls) and not enterprise:
        return ProviderStatus.LOCKED
    if cls.placeholder:
        return ProviderStatus.UNAVAILABLE
    return ProviderStatus.AVAILABLE


def check_enterprise(
    cls: type[MasterKeyProvider], *, enterprise: bool, owner: str | None, group: str
) -> None:
    """Raise unless ``cls`` may load: flag off on an enterprise provider, or a placeholder.

    Flag off and the provider is enterprise: :class:`EnterpriseFeatureError`.
    The class is a placeholder (flag on, or a non-enterprise placeholder):
    :class:`ProviderNotImplementedError`, naming ``owner`` (the plugin that
    registered it) and the entry-point ``group`` an implementation joins.
    """
    what = describe(cls)
    if is_enterprise(cls) and not enterprise:
        raise EnterpriseFeatureError(
            f"provider {cls.name!r} ({what}) is an Enterprise Edition feature and the "
            f"enterprise flag is off; {ENABLE_HINT}"
        )
    if cls.placeholder:
        shipped = f" (plugin {owner!r})" if owner is not None else ""
        raise ProviderNotImplementedError(
            f"provider {cls.name!r} ({what}) is only a placeholder in the open-source "
            f"package{shipped}: install an Enterprise Edition implementation, a plugin in "
            f"the {group!r} entry-point group that registers a non-placeholder "
            f"provider named {cls.name!r}{_hint(cls)}"
        )


def _hint(cls: type[MasterKeyProvider]) -> str:
    hint = getattr(cls, "install_hint", "")
    return f"; {hint}" if isinstance(hint, str) and hint.strip() else ""


def describe(cls: type[MasterKeyProvider]) -> str:
    """The provider's description without its final period, or its class name."""
    return cls.description.strip().rstrip(".") or f"provider class {qualname(cls)}"


def qualname(cls: type) -> str:
    """``module.Class`` of ``cls``."""
    return f"{cls.__module__}.{cls.__qualname__}"
