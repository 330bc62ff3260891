"""Master-key providers: the base class, the option schema, placeholders."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .booleans import word as boolean_word
from .errors import ConfigError, ProviderNotImplementedError

if TYPE_CHECKING:
    from .audit import AuditAction, AuditEvent
    from .masterkey import MasterKey

__all__ = [
    "KEYSTORE_VERSION_OPTION",
    "REWRAP_ENV_VARIABLE",
    "SOURCE_ENV_VARIABLE",
    "MasterKeyProvider",
    "Option",
    "OptionType",
    "PlaceholderProvider",
    "ProviderStatus",
    "env_part",
    "provider_option_env_names",
]

OptionType = Literal["str", "int", "float", "bool", "path"]


@dataclass(frozen=True)
class Option:
    """One option of a provider or key store.

    ``env`` lists native environment variable names (``ACRA_MASTER_KEY``,
    ``VAULT_ADDR``) read after keyloader's own ``KEYLOADER_<P>_<X>`` name.
    ``secret`` options (tokens, passwords) are refused on the command line and
    their values never appear in messages. ``validator`` receives the converted
    value and raises ``ValueError`` with a message to reject it.
    """

    name: str
    help: str
    type: OptionType = "str"
    default: Any = None
    env: tuple[str, ...] = ()
    secret: bool = False
    required: bool = False
    choices: tuple[str, ...] | None = None
    validator: Callable[[Any], None] | None = None

    def convert(self, value: object, *, origin: str) -> Any:
        """Convert a raw value (text from env/CLI, or a TOML/Python value).

        ``origin`` says where it came from, for the error message, e.g.
        ``"option 'timeout' of provider 'vault' (from VAULT_TIMEOUT)"``.
        Raises :class:`ConfigError`; a secret value is never echoed.
        """
        shown = "the given value" if self.secret else repr(value)
        try:
            converted = self._convert(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{origin}: {shown} is not {_TYPE_WORDS[self.type]}") from exc
        if self.choices is not None and converted not in self.choices:
            raise ConfigError(f"{origin}: {shown} is not one of {', '.join(self.choices)}")
        if self.validator is not None:
            try:
                self.validator(converted)
            except ValueError as exc:
                raise ConfigError(f"{origin}: {exc}") from None
        return converted

    def _convert(self, value: object) -> Any:
        if self.type == "str":
            if not isinstance(value, str):
                raise TypeError
            return value
        if self.type == "path":
            if not isinstance(value, str | Path) or str(value) == "":
                raise TypeError
            return Path(value).expanduser()
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str):
                if not value.strip():
                    return False
                parsed = boolean_word(value)
                if parsed is not None:
                    return parsed
            raise ValueError
        if self.type == "int":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise TypeError
            return int(value)
        if self.type == "float":
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise TypeError
            result = float(value)
            if result != result:  # NaN
                raise ValueError
            return result
        raise TypeError  # pragma: no cover - OptionType is closed


_TYPE_WORDS: dict[str, str] = {
    "str": "a string",
    "path": "a path",
    "bool": "a boolean (1/0, true/false, yes/no, on/off)",
    "int": "an integer",
    "float": "a number",
}

KEYSTORE_VERSION_OPTION = Option(
    "keystore_version",
    "Which master-key form to accept: auto (v2 JSON pair if it parses as one, else v1), v1 or v2.",
    default="auto",
    choices=("auto", "v1", "v2"),
)


REWRAP_ENV_VARIABLE = "DST_ACRA_MASTER_KEY"
"""The variable a rewrap target reads its key from, unless told otherwise (env, aws-kms)."""
SOURCE_ENV_VARIABLE = "SRC_ACRA_MASTER_KEY"
"""The variable an ``env`` source of ``keys migrate`` reads when it is set (Acra's)."""


def provider_option_env_names(provider: str, option: Option) -> tuple[str, ...]:
    """The environment variables read for ``option`` of ``provider``, in order (first wins).

    ``KEYLOADER_<P>_<X>``, then the option's native names (``ACRA_MASTER_KEY``...).
    """
    return (f"KEYLOADER_{env_part(provider)}_{env_part(option.name)}", *option.env)


def env_part(name: str) -> str:
    """A provider, store or option name as it appears in an environment variable name."""
    return name.upper().replace("-", "_")


class ProviderStatus(enum.StrEnum):
    """What ``keyloader providers`` shows for a provider."""

    AVAILABLE = "available"
    LOCKED = "locked"  # enterprise provider, flag off
    UNAVAILABLE = "unavailable"  # flag on, only the placeholder is installed
    ERROR = "error"  # its plugin failed to load


class MasterKeyProvider(ABC):
    """Base class of master-key providers.

    Subclasses set the class attributes and implement :meth:`load`. The core
    resolves option values (docs/configuration.md), validates them against :attr:`options`,
    calls :meth:`validate`, applies the enterprise gate, checks required options,
    then instantiates the provider with the resolved values in :attr:`config`.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    enterprise: ClassVar[bool] = False
    placeholder: ClassVar[bool] = False
    aliases: ClassVar[tuple[str, ...]] = ()
    can_store: ClassVar[bool] = False

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config: dict[str, Any] = dict(config)
        self.audit_sink: Callable[[AuditEvent], None] | None = None
        """Where :meth:`audit` sends events: the plugin manager's audit observers when the
        core built the provider and someone observes (else None: nothing is built)."""

    def audit(
        self,
        action: AuditAction,
        *,
        method: str | None = None,
        ttl: float | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Report one of the provider's own actions (``provider_login``, ...) to audit
        observers; never pass a credential. Nothing happens when no one observes."""
        sink = self.audit_sink
        if sink is None:
            return
        from .audit import AuditEvent

        sink(
            AuditEvent(
                action,
                provider=self.name,
                method=method,
                ttl=ttl,
                ok=error is None,
                error_type=type(error).__name__ if error is not None else None,
            )
        )

    @classmethod
    def option_schema(cls) -> tuple[Option, ...]:
        """The provider's options plus the core ``keystore_version`` option."""
        return (*cls.options, KEYSTORE_VERSION_OPTION)

    @classmethod
    def validate(cls, given: Mapping[str, Any]) -> None:
        """Check the options that were given, beyond their types.

        Runs in every gate state, before the provider is instantiated; raise
        :class:`ConfigError`. The default accepts everything.
        """

    @property
    def keystore_version(self) -> str:
        return str(self.config.get("keystore_version") or "auto")

    @abstractmethod
    def load(self) -> MasterKey:
        """Load and return the master key; raise a typed error (docs/architecture.md, Errors)."""

    def store(self, key: MasterKey, *, force: bool = False) -> Mapping[str, str] | None:
        """Write ``key`` to this provider's backend (only if ``can_store``).

        A key already there is :class:`~keyloader.errors.KeyExistsError` unless
        ``force``. Return ``None`` when the backend now holds the key (``vault``).
        A provider whose backend keeps only a wrapping key returns the environment
        a service must be given to load this key (``aws-kms``:
        ``{"ACRA_MASTER_KEY": <base64 KMS ciphertext>}``); never key material.
        """
        raise ConfigError(f"provider {self.name!r} cannot store master keys")

    @classmethod
    def rewrap_target_defaults(cls, given: frozenset[str]) -> Mapping[str, Any]:
        """Option values this provider takes as the *target* of a rewrap, unless ``given``.

        A rewrap reads the current key and the new one in one process, often
        from the same kind of place: a provider that reads the key from an
        environment variable reads :data:`REWRAP_ENV_VARIABLE` as a target
        (``env``: ``variable``, unless ``variable`` or ``file`` is given). The
        default: nothing.
        """
        return {}

    def consumed_environment(self) -> tuple[str, ...]:
        """Environment variables holding what this provider used to get the key.

        ``keyloader exec`` removes them from the child's environment (the service
        gets the master key, not the means to fetch it). The default: the
        variables of every ``secret`` option (``KEYLOADER_<P>_<X>`` and the
        option's native names). Override to add others, e.g. the variable the
        key itself was read from.
        """
        names = [
            name
            for option in self.option_schema()
            if option.secret
            for name in provider_option_env_names(self.name, option)
        ]
        return tuple(dict.fromkeys(names))

    def close(self) -> None:
        """Release connections. Called once when the provider is done."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class PlaceholderProvider(MasterKeyProvider):
    """An Enterprise Edition provider shipped as a name and an option schema.

    It is listed, documented and validated like any provider; loading it says
    the open-source package is a placeholder. A non-placeholder provider of the
    same name replaces it.
    """

    enterprise: ClassVar[bool] = True
    placeholder: ClassVar[bool] = True
    install_hint: ClassVar[str] = ""
    """How to install a real implementation, if there is a known one; the gate shows it."""

    def load(self) -> MasterKey:
        raise ProviderNotImplementedError(
            f"provider {self.name!r} is an Enterprise Edition feature and the installed "
            f"package is only its open-source placeholder: install an implementation "
            f"that registers a provider named {self.name!r}"
        )
