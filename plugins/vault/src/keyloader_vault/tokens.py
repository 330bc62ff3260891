"""The token a ``vault`` provider keeps between loads: its lease, renewal, login again, revoke.

A token from a login (AppRole) is kept for the life of the provider instead of a login per
load, and revoked (``auth/token/revoke-self``) when the provider closes: a single-use
secret id then serves the whole process, and loads leave no tokens behind. A token that
was given (``token_file``, ``VAULT_TOKEN``, ``VAULT_API_TOKEN``) is looked up once
(``auth/token/lookup-self``: its TTL and whether it renews), and learnt again when it
changes (an agent's sink rewrote the file).

Before a load, a token past two thirds of its TTL is renewed (``auth/token/renew-self``).
A renewal that no longer extends it (the token reached its max TTL: Vault answers a
shorter lease and a warning) is not tried again; a login token is then replaced by a new
login, a given one is used until it expires, and a refusal after its expiry says so.

The kept token is in secret pages: a forked child reads zeros there and logs in again
(it never revokes its parent's token).
"""

from __future__ import annotations

import datetime
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keyloader.secret import SecretBytes

from .jsonfield import Capture
from .jsonfield import Path as FieldPath

__all__ = ["LOGIN_TOKEN", "LOOKUP_TOKEN", "UNWRAPPED_SECRET_ID", "Lease", "TokenKeeper"]

RENEW_AT = 2 / 3
"""The part of its TTL after which a token is renewed before a load."""
LOGIN_TOKEN: FieldPath = (b"auth", b"client_token")
"""Where a login's (and a renewal's) answer holds the token."""
LOOKUP_TOKEN: FieldPath = (b"data", b"id")
"""Where ``lookup-self``'s answer holds the token."""
UNWRAPPED_SECRET_ID: FieldPath = (b"data", b"secret_id")
"""Where ``sys/wrapping/unwrap``'s answer holds a wrapped AppRole secret id."""

Audit = Callable[..., None]
Use = Callable[[SecretBytes | None], None]
"""Sends a token with the next requests (and wipes the one it replaces): the transport's."""
Login = Callable[[Any, Capture], tuple[SecretBytes, Any]]
"""Logs in with ``client``; returns the token (taken out of the answer) and the answer."""


@dataclass
class Lease:
    """What Vault said of a token: its TTL from ``since`` (monotonic), and whether it renews."""

    ttl: float
    """Seconds the token lives from ``since``; 0: it never expires (a root token)."""
    since: float
    renewable: bool
    wall: float
    """``since`` as seconds since the epoch, for messages."""

    @classmethod
    def of(cls, ttl: object, renewable: object) -> Lease:
        seconds = float(ttl) if isinstance(ttl, int | float) and ttl > 0 else 0.0
        return cls(seconds, time.monotonic(), renewable is True, time.time())

    def due(self, now: float) -> bool:
        return self.ttl > 0 and now - self.since >= self.ttl * RENEW_AT

    def expired(self, now: float) -> bool:
        return self.ttl > 0 and now - self.since >= self.ttl

    @property
    def expires(self) -> str:
        """When the token expires (UTC, to the second), for messages."""
        moment = datetime.datetime.fromtimestamp(self.wall + self.ttl, datetime.UTC)
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


class TokenKeeper:
    """The token of one provider, across its loads (see the module's docstring)."""

    def __init__(self, method: str, audit: Audit, use: Use) -> None:
        self.method = method
        """``token`` for a given token, else the login method (``approle``)."""
        self._audit = audit
        self._use = use
        self._token: SecretBytes | None = None
        self.lease: Lease | None = None
        self.fresh = False
        """Whether the token in use was got by this load (a refusal is then no stale token's)."""

    @property
    def logs_in(self) -> bool:
        return self.method != "token"

    def given(self, client: Any, capture: Capture, token: SecretBytes) -> SecretBytes:
        """The given ``token`` (the caller's to wipe), looked up if it is new to the keeper
        and renewed if due; what to send: a copy of it."""
        self.fresh = False
        kept = self._token
        if kept is None or kept.wiped or not hmac.compare_digest(kept.view, token.view):
            self._forget()
            self._token = SecretBytes(token.buffer)
            self.fresh = True
        return self._current(client, capture, login=None)

    def login_token(self, client: Any, capture: Capture, login: Login) -> SecretBytes:
        """The kept login token, renewed or replaced by a new login when due; logs in the
        first time (and in a forked child). What to send: a copy of it."""
        self.fresh = False
        if self._token is None or self._token.wiped:
            self._forget()
            self._login(client, capture, login, "provider_login")
        return self._current(client, capture, login=login)

    def relogin(self, client: Any, capture: Capture, login: Login) -> SecretBytes:
        """A new login in place of a token Vault refused (revoked, or expired early)."""
        self._forget()
        self._login(client, capture, login, "provider_relogin")
        return self._copy()

    def expired_at(self) -> str | None:
        """When the token in use expired, if it has (by what Vault said of it)."""
        lease = self.lease
        if lease is not None and lease.expired(time.monotonic()):
            return lease.expires
        return None

    def revoke(self, client: Any) -> None:
        """Revoke a login's token (``revoke-self``) and forget it; a given token is only
        forgotten (it is not the provider's to revoke). Best effort: a failure is ignored,
        the token then expires with its TTL."""
        token, self._token = self._token, None
        self.lease = None
        if token is None:
            return
        try:
            if self.logs_in and not token.wiped:
                self._use(SecretBytes(token.buffer))
                client.auth.token.revoke_self()
        except Exception:  # noqa: S110 - closing: the token expires anyway
            pass
        finally:
            token.wipe()

    # -- the steps -------------------------------------------------------------------------

    def _current(self, client: Any, capture: Capture, login: Login | None) -> SecretBytes:
        now = time.monotonic()
        if self.lease is None:
            self._lookup(client, capture)
        lease = self.lease
        if lease is not None and lease.due(now):
            if lease.renewable:
                self._renew(client, capture)
            if not self.lease_renewed(now) and login is not None:
                self.revoke(client)  # its last minutes: revoked now, not left to expire
                self._login(client, capture, login, "provider_relogin")
        return self._copy()

    def _login(self, client: Any, capture: Capture, login: Login, action: str) -> None:
        token, answer = login(client, capture)
        self._token = token
        auth = answer.get("auth") if isinstance(answer, dict) else None
        auth = auth if isinstance(auth, dict) else {}
        self.lease = Lease.of(auth.get("lease_duration"), auth.get("renewable"))
        self.fresh = True
        self._audit(action, method=self.method, ttl=self.lease.ttl or None)

    def _lookup(self, client: Any, capture: Capture) -> None:
        """Learn the token's TTL (``lookup-self``). A token that may not look itself up
        (a policy without ``auth/token/lookup-self``) is used as it is, never renewed."""
        import hvac.exceptions

        self._use(self._copy())
        try:
            answer = client.auth.token.lookup_self()
        except hvac.exceptions.Forbidden:
            self.lease = Lease(0.0, time.monotonic(), False, time.time())
            return
        finally:
            found = capture.pop(LOOKUP_TOKEN)
            if found is not None:
                found.wipe()
        data = answer.get("data") if isinstance(answer, dict) else None
        data = data if isinstance(data, dict) else {}
        self.lease = Lease.of(data.get("ttl"), data.get("renewable"))

    def lease_renewed(self, now: float) -> bool:
        """Whether the token in use is good for another third of its TTL at least."""
        return self.lease is not None and not self.lease.due(now)

    def _renew(self, client: Any, capture: Capture) -> None:
        """``renew-self``, once (no retry: Vault's refusal, e.g. past the max TTL, is
        final). A refused renewal leaves the lease as it was, not renewable any more."""
        import hvac.exceptions

        from .transport import GaveUp

        lease = self.lease
        assert lease is not None
        self._use(self._copy())
        adapter = client.adapter
        retries, adapter.retries = adapter.retries, 0
        try:
            answer = client.auth.token.renew_self()
        except (hvac.exceptions.VaultError, GaveUp) as exc:
            last = exc.last if isinstance(exc, GaveUp) else exc
            if not isinstance(last, hvac.exceptions.VaultError) or isinstance(
                last, hvac.exceptions.VaultDown
            ):
                raise  # the server, not the token: the load fails as any request would
            lease.renewable = False
            self._audit("provider_token_renewed", method=self.method, error=last)
            return
        finally:
            adapter.retries = retries
            found = capture.pop(LOGIN_TOKEN)
            if found is not None:
                found.wipe()
        auth = answer.get("auth") if isinstance(answer, dict) else None
        auth = auth if isinstance(auth, dict) else {}
        renewed = Lease.of(auth.get("lease_duration"), auth.get("renewable"))
        old_end, new_end = lease.since + lease.ttl, renewed.since + renewed.ttl
        if renewed.ttl > 0 and new_end <= old_end + 1:  # capped at the max TTL: no extension
            renewed.renewable = False
        self.lease = renewed
        self._audit("provider_token_renewed", method=self.method, ttl=renewed.ttl or None)

    def _copy(self) -> SecretBytes:
        assert self._token is not None
        return SecretBytes(self._token.buffer)

    def _forget(self) -> None:
        token, self._token = self._token, None
        self.lease = None
        if token is not None:
            token.wipe()
