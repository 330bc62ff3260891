"""Which credentials the ``vault`` provider uses (docs/vault.md), read at every load.

First that is configured: ``token_file`` > AppRole (``role_id`` with
``secret_id_file`` or ``secret_id``) > ``token`` (``VAULT_TOKEN``) > Acra's
``VAULT_API_TOKEN`` (base64 of the token, trailing newline trimmed).
``~/.vault-token`` is never read unless ``token_file`` names it.

A token is handed out in a :class:`~keyloader.secret.SecretBytes`. One from
``token_file`` is read from the file straight into secret pages and checked there;
only a file with non-ASCII bytes (whose token is refused, unless Unicode whitespace
surrounds it) goes through a ``str``, as it always did. One from an option is a
``str`` already (the option's value); its copy is in secret pages too.
"""

from __future__ import annotations

import binascii
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from keyloader.errors import ConfigError
from keyloader.secret import SecretBytes, burn

from .config import VaultConfig
from .jsonfield import has_non_ascii
from .options import KUBERNETES_JWT
from .registers import scrub_registers

__all__ = [
    "Credentials",
    "jwt_path",
    "keeper_method",
    "keeper_source",
    "read_jwt",
    "resolve_credentials",
]

MAX_FILE_SIZE = 64 * 1024
_FIRST_READ = 4096
_SPACE = frozenset(b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f")  # what str.strip() removes, in ASCII
_NOT_TOKEN = re.compile(rb"[^!-~]")  # anything but printable ASCII without space
_HOW = (
    "set option 'token_file', AppRole ('role_id' with 'secret_id_file' or "
    "KEYLOADER_VAULT_SECRET_ID), VAULT_TOKEN, or Acra's VAULT_API_TOKEN; ~/.vault-token is "
    "not read unless token_file names it"
)


@dataclass(frozen=True)
class Credentials:
    """A token, or an AppRole role id and secret id, and where they came from (for messages).

    Whoever uses ``token`` wipes it (the transport, at the end of the operation).
    """

    source: str
    token: SecretBytes | None = field(default=None, repr=False)
    role_id: str | None = None
    secret_id: str | None = field(default=None, repr=False)
    wrapped: str | None = field(default=None, repr=False)
    """A response-wrapping token holding the secret id (unwrapped at the first login)."""

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secret values as text, to scrub them from a failure's messages (only then:
        a token becomes a ``str`` here)."""
        token = self.token.bytes().decode("ascii", "replace") if self.token else None
        return tuple(value for value in (token, self.secret_id, self.wrapped) if value)


def keeper_method(config: VaultConfig) -> str:
    """How the provider gets its token: ``token`` (given: a file, an option) or a login
    method (``approle``, ``jwt``, ``kubernetes``, ``cert``)."""
    return config.method


def keeper_source(config: VaultConfig) -> str:
    """Where the credentials come from, for messages (nothing is read)."""
    method, mount = config.method, config.login_mount
    if method in ("jwt", "kubernetes"):
        return f"{method} login as role {config.role!r} at auth/{mount} ({jwt_path(config)})"
    if method == "cert":
        return f"cert login at auth/{mount} with client certificate {config.client_cert}"
    if config.token_file is not None:
        return f"token file {config.token_file} (option 'token_file')"
    if method == "approle":
        return f"AppRole role id {config.role_id!r} at auth/{mount}"
    if config.token:
        return "option 'token' (VAULT_TOKEN)"
    if config.api_token:
        return "VAULT_API_TOKEN (option 'api_token')"
    return "the configured credentials"


def jwt_path(config: VaultConfig) -> Path:
    """The JWT file of a jwt or kubernetes login (kubernetes: the pod's token by default)."""
    return config.jwt_file if config.jwt_file is not None else Path(KUBERNETES_JWT)


def read_jwt(config: VaultConfig) -> str:
    """The JWT for a login, read now (projected service-account tokens rotate)."""
    return _read_file(jwt_path(config), "jwt_file")


def resolve_credentials(config: VaultConfig) -> Credentials:
    """The credentials to use now: AppRole's role and secret id, or a given token;
    :class:`ConfigError` if none is configured or one is bad."""
    if config.method != "approle":
        return _given_token(config)
    source = f"AppRole role id {config.role_id!r} at auth/{config.login_mount}"
    if config.secret_id_file is not None:
        secret_id = _read_file(config.secret_id_file, "secret_id_file")
    elif config.secret_id:
        secret_id = config.secret_id.strip()
    elif config.secret_id_wrapped:
        wrapped = config.secret_id_wrapped.strip()
        return Credentials(source, role_id=config.role_id, wrapped=wrapped)
    else:
        raise ConfigError(
            "AppRole login for provider 'vault' needs a secret id: set option "
            "'secret_id_file', or KEYLOADER_VAULT_SECRET_ID in the environment"
        )
    return Credentials(source, role_id=config.role_id, secret_id=secret_id)


def _given_token(config: VaultConfig) -> Credentials:
    if config.token_file is not None:
        source = f"token file {config.token_file} (option 'token_file')"
        return Credentials(source, token=_read_token_file(config.token_file, source))
    if config.token:
        source = "option 'token' (VAULT_TOKEN)"
        return Credentials(source, token=_secret(_checked(config.token.strip(), source)))
    if config.api_token:
        source = "VAULT_API_TOKEN (option 'api_token')"
        token = _checked(_decode_api_token(config.api_token), source)
        return Credentials(source, token=_secret(token))
    raise ConfigError(f"provider 'vault' has no Vault credentials: {_HOW}")


def _decode_api_token(text: str) -> str:
    """Acra's ``VAULT_API_TOKEN``: base64 of the token; newlines around it are trimmed."""
    decoded: bytes | None
    try:
        decoded = binascii.a2b_base64(text.strip().encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        decoded = None
    if decoded is None:
        raise ConfigError(
            "VAULT_API_TOKEN (option 'api_token' of provider 'vault') is not valid base64: it "
            'holds base64 of the token, as Acra reads it (e.g. `printf %s "$TOKEN" | base64`)'
        )
    try:
        return decoded.decode("utf-8").strip("\n")
    except UnicodeDecodeError:
        raise ConfigError(
            "VAULT_API_TOKEN (option 'api_token' of provider 'vault') does not decode to text: "
            "it holds base64 of the token"
        ) from None


def _checked(token: str, source: str) -> str:
    """The token if it can go in an HTTP header; never echoes it."""
    if not token:
        raise ConfigError(f"the Vault token from {source} is empty: {_HOW}")
    if token.isascii() and token.isprintable() and " " not in token:
        return token  # only "!" to "~": the usual case, checked at C speed
    position = next((i for i, char in enumerate(token) if not "!" <= char <= "~"), None)
    if position is not None:
        raise ConfigError(_bad_character(source, position))
    return token


def _bad_character(source: str, position: int) -> str:
    return (
        f"the Vault token from {source} has a space, control or non-ASCII character at "
        f"position {position + 1}: store the token alone"
    )


def _secret(token: str) -> SecretBytes:
    """A checked (ASCII) token in secret pages; the ``bytes`` on the way is burnt."""
    data = token.encode("ascii")
    try:
        return SecretBytes(data)
    finally:
        burn(data)


def _read_token_file(path: Path, source: str) -> SecretBytes:
    """The token in ``path``, surrounding whitespace removed, checked, in secret pages.

    Read into secret pages, and trimmed and checked there, with the messages of
    :func:`_read_file` and :func:`_checked`. A file with non-ASCII bytes takes their
    ``str`` road (Unicode whitespace around the token is trimmed, as before).
    """
    option = "token_file"
    fd = _open(path, option)
    buffer = SecretBytes.zeroed(_FIRST_READ)
    try:
        size = 0
        with os.fdopen(fd, "rb", buffering=0) as handle:
            while size <= MAX_FILE_SIZE:
                if size == len(buffer):
                    grown = SecretBytes.zeroed(min(2 * size, MAX_FILE_SIZE + 1))
                    grown.buffer[:size] = buffer.buffer
                    buffer.wipe()
                    buffer = grown
                try:
                    count = handle.readinto(buffer.buffer[size:])
                except OSError as exc:
                    raise ConfigError(
                        f"cannot read file {path} (option {option!r} of provider 'vault'): "
                        f"{exc.strerror or type(exc).__name__}"
                    ) from None
                if not count:
                    break
                size += count
        if size > MAX_FILE_SIZE:
            raise ConfigError(f"file {path} (option {option!r} of provider 'vault') is too large")
        view = buffer.buffer[:size]
        if has_non_ascii(view):
            data = view.tobytes()
            try:
                return _secret(_checked(_text(data, path, option), source))
            finally:
                burn(data)
        start, end = 0, size
        while start < end and view[start] in _SPACE:
            start += 1
        while end > start and view[end - 1] in _SPACE:
            end -= 1
        if start == end:
            raise ConfigError(f"file {path} (option {option!r} of provider 'vault') is empty")
        bad = _NOT_TOKEN.search(view, start, end)
        if bad is not None:
            raise ConfigError(_bad_character(source, bad.start() - start))
        return SecretBytes(view[start:end])
    finally:
        buffer.wipe()
        scrub_registers(tls=False)


def _open(path: Path, option: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise ConfigError(
            f"file {path} (option {option!r} of provider 'vault') does not exist: fix the path"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot open file {path} (option {option!r} of provider 'vault'): "
            f"{exc.strerror or type(exc).__name__}"
        ) from None


def _read_file(path: Path, option: str) -> str:
    """A small secret file's text, surrounding whitespace removed."""
    fd = _open(path, option)
    with os.fdopen(fd, "rb", buffering=0) as handle:
        try:
            data = handle.read(MAX_FILE_SIZE + 1)
        except OSError as exc:
            raise ConfigError(
                f"cannot read file {path} (option {option!r} of provider 'vault'): "
                f"{exc.strerror or type(exc).__name__}"
            ) from None
    if len(data) > MAX_FILE_SIZE:
        raise ConfigError(f"file {path} (option {option!r} of provider 'vault') is too large")
    try:
        return _text(data, path, option)
    finally:
        burn(data)


def _text(data: bytes, path: Path, option: str) -> str:
    """``data`` (a file's content) as text, surrounding whitespace removed."""
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(
            f"file {path} (option {option!r} of provider 'vault') is not UTF-8 text"
        ) from None
    if not text:
        raise ConfigError(f"file {path} (option {option!r} of provider 'vault') is empty")
    return text
