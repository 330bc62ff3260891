"""The ``vault`` provider: the master key from a HashiCorp Vault / OpenBao KV secret.

Acra-compatible (strategy ``vault_master_key``): field ``acra_master_key`` of the
secret at ``secrets_path`` holds the base64 text form (v1, or a v2 pair). This
module imports neither hvac nor requests: they load when a provider is first used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from keyloader import hookimpl
from keyloader.providers import MasterKeyProvider, Option

from .options import OPTIONS, check_given

if TYPE_CHECKING:
    import requests

    from keyloader.masterkey import MasterKey

    from .config import VaultConfig
    from .transport import VaultTransport

__all__ = ["VaultProvider", "keyloader_master_key_providers"]


class VaultProvider(MasterKeyProvider):
    """Loads (and stores) the master key in a field of a Vault KV v1 or v2 secret."""

    name: ClassVar[str] = "vault"
    aliases: ClassVar[tuple[str, ...]] = ("vault_master_key",)
    description: ClassVar[str] = (
        "The master key from a HashiCorp Vault or OpenBao KV secret (field acra_master_key, "
        "base64), as Acra's vault_master_key reads it; KV v1 and v2, token, AppRole, TLS."
    )
    options: ClassVar[tuple[Option, ...]] = OPTIONS
    can_store: ClassVar[bool] = True

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self._vault_config: VaultConfig | None = None
        self._transport: VaultTransport | None = None

    @classmethod
    def validate(cls, given: Mapping[str, Any]) -> None:
        """Refuse inconsistent options: mount without pinned kv_version, half mTLS, half AppRole."""
        check_given(given)

    @property
    def vault_config(self) -> VaultConfig:
        """The checked options (``ConfigError`` if they do not fit together)."""
        if self._vault_config is None:
            from .config import VaultConfig  # here: registering the plugin needs only options

            self._vault_config = VaultConfig.from_options(self.config)
        return self._vault_config

    def http_session(self) -> requests.Session:
        """The ``requests`` session every call of this provider goes through (e.g. for hooks)."""
        return self._connect().session

    def load(self) -> MasterKey:
        """Read the field and parse it (one HTTP request with a token and kv_version pinned).

        The field's text goes from the answer's bytes to the key in secret pages, without
        a ``str`` on the way (docs/vault.md, Memory).
        """
        from keyloader.masterkey import parse_master_key
        from keyloader.secret import SecretBytes

        from .runtime import read_key_text

        config = self.vault_config
        text = read_key_text(self._connect(), config)
        try:
            return parse_master_key(
                text, keystore_version=self.keystore_version, source=config.key_source
            )
        finally:
            if isinstance(text, SecretBytes):
                text.wipe()

    def store(self, key: MasterKey, *, force: bool = False) -> None:
        """Write ``key``'s text form into the field, keeping the other fields of the secret.

        An existing key is :class:`~keyloader.errors.KeyExistsError` unless ``force``.
        """
        from .runtime import write_key_text

        config = self.vault_config
        transport = self._connect()
        with key.to_text() as buffer:
            text = buffer.bytes().decode("ascii")
        write_key_text(transport, config, text, force=force)

    def _connect(self) -> VaultTransport:
        if self._transport is None:
            from .transport import VaultTransport

            self._transport = VaultTransport(self.vault_config, self.audit)
        return self._transport

    def close(self) -> None:
        """Close the HTTP session. Idempotent; a later load opens a new one."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    def __repr__(self) -> str:
        address = self.config.get("address")
        path = self.config.get("secrets_path")
        return f"<{type(self).__name__} {self.name!r} address={address!r} secrets_path={path!r}>"


@hookimpl
def keyloader_master_key_providers() -> list[type[MasterKeyProvider]]:
    """The ``vault`` provider."""
    return [VaultProvider]
