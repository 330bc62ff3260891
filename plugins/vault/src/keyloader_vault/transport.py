"""The HTTP side of the ``vault`` provider: an hvac client with keyloader's TLS, deadline, retries.

Imported only when a provider is first used: it imports hvac and requests.

hvac and requests read the environment on their own (``VAULT_TOKEN``,
``~/.vault-token``, ``VAULT_CACERT``, ``VAULT_CLIENT_CERT``, ``REQUESTS_CA_BUNDLE``,
``.netrc``). Everything is passed explicitly here and the session does not trust
the environment, so keyloader's own option precedence holds; only the proxy
variables (``HTTPS_PROXY``, ``NO_PROXY``...) are honoured, for the address alone.

Memory (docs/vault.md, Memory): answers are read through :mod:`.wire` (a reader whose
buffer is in secret pages), straight into a :class:`~keyloader.secret.SecretBytes`; the
string values the operation asked for (the key's text, a login's token) are taken out
there (:mod:`keyloader_vault.jsonfield`) and hvac parses a copy without them. The
token lives in a ``SecretBytes``; each request gets its ``X-Vault-Token`` value as a
fresh ``bytes`` that is burnt once the request is sent, and the request head is built
in secret pages, its token line burnt too. Over TLS, OpenSSL zeroes each record's
plaintext once read (``SSL_OP_CLEANSE_PLAINTEXT``); after each request the vector
registers that copied (or decrypted) it all are overwritten (:mod:`.registers`).
"""

from __future__ import annotations

import http.client
import random
import ssl
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import hvac
import hvac.adapters
import hvac.exceptions
import requests
import requests.adapters
import requests.utils
import urllib3
import urllib3.connection
import urllib3.exceptions
from urllib3.exceptions import InsecureRequestWarning

from keyloader.deadline import Deadline
from keyloader.errors import ConfigError
from keyloader.secret import SecretBytes, burn

from .auth import keeper_method
from .config import VaultConfig
from .jsonfield import Capture
from .jsonfield import Path as FieldPath
from .registers import scrub_registers
from .tokens import TokenKeeper
from .wire import POOL_CLASSES, TOKEN_HEADER, read_secret

__all__ = ["TOKEN_HEADER", "GaveUp", "VaultTransport", "tls_failure"]

BACKOFF_BASE = 0.1
"""Seconds before the first retry (then doubled, with jitter)."""
BACKOFF_CAP = 2.0
"""The longest wait between two attempts, in seconds."""

_RETRYABLE_STATUS = frozenset({412, 429})
INDEX_HEADER = "X-Vault-Index"
"""Vault's (and OpenBao's) consistency header: the state a write produced; sent back on
later requests, a node that has not applied it yet answers 412 instead of stale data."""
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REVOKE_TIMEOUT = 2.0
"""Seconds closing a provider may spend revoking its login token."""


def _no_audit(*args: object, **kwargs: object) -> None:
    return None


class GaveUp(Exception):
    """Retries or the deadline ran out; ``last`` is the last failure (an hvac or requests
    error), ``node`` the address it came from."""

    def __init__(
        self, last: BaseException | None, attempts: int, *, timed_out: bool, node: str = ""
    ) -> None:
        super().__init__("gave up")
        self.last = last
        self.attempts = attempts
        self.timed_out = timed_out
        self.node = node


class _State:
    """What the operation running sends and takes: its token, and the values to take out
    of the answers. Shared by the session and its transport adapters."""

    __slots__ = ("capture", "index", "token")

    def __init__(self) -> None:
        self.token: SecretBytes | None = None
        self.capture: Capture | None = None
        self.index: str | None = None
        """The ``X-Vault-Index`` of the provider's last write, sent with every request."""


class _VaultHTTPAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter with :class:`_SecretHTTPConnection` pools, ``server_name`` as SNI
    (and for the certificate check) when given, and the operation's token in each
    request's ``X-Vault-Token``: a fresh ``bytes`` burnt once the request is sent."""

    def __init__(self, state: _State, server_name: str | None = None) -> None:
        self.state = state
        self.server_name = server_name
        super().__init__()

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        if self.server_name:
            pool_kwargs["server_hostname"] = self.server_name
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS pools are urllib3's own
            manager.pool_classes_by_scheme = POOL_CLASSES
        return manager

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        token = self.state.token
        value = token.bytes() if token else None
        if value is not None:
            request.headers[TOKEN_HEADER] = value
        if self.state.index is not None:
            request.headers[INDEX_HEADER] = self.state.index
        try:
            response = super().send(
                request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
            )
            index = response.headers.get(INDEX_HEADER)
            if index and request.method in _WRITES and response.status_code < 300:
                self.state.index = index
            return response
        finally:
            if value is not None:
                request.headers.pop(TOKEN_HEADER, None)
                burn(value)  # skipped if something still holds it (a failure's traceback)


class _DeadlineAdapter(hvac.adapters.JSONAdapter):  # type: ignore[misc]
    """hvac's JSON adapter over the nodes of a cluster, with an overall deadline, a timeout
    per attempt and bounded retries with backoff.

    Each round tries every node once, the one that answered last first. The next node is
    tried on a connection error (not a TLS failure), an attempt that timed out, 429, 412
    (a standby that has not yet seen the provider's last write) and 5xx (a sealed or
    standby node answers 503); any other 4xx is the answer. ``retries`` more rounds follow,
    after a backoff. Each attempt may take :attr:`attempt_timeout`, never more than the
    time left before :attr:`deadline`.
    """

    base_uri: str
    deadline: float = float("inf")
    retries: int = 0
    attempt_timeout: float = float("inf")
    nodes: tuple[str, ...] = ()
    preferred: int = 0
    last_node: str = ""

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        raise_exception: bool = True,
        **kwargs: Any,
    ) -> Any:
        nodes = self.nodes or (self.base_uri,)
        attempt, rounds = 0, 0
        last: BaseException | None = None
        while True:
            first = self.preferred
            for offset in range(len(nodes)):
                index = (first + offset) % len(nodes)
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    raise GaveUp(last, attempt, timed_out=True, node=self.last_node)
                attempt += 1
                self.base_uri = self.last_node = nodes[index]
                limit = min(remaining, self.attempt_timeout)
                try:
                    result = super().request(
                        method,
                        url,
                        headers=dict(headers or {}),
                        raise_exception=False,
                        timeout=limit,
                        **kwargs,
                    )
                except requests.exceptions.Timeout as exc:
                    if limit >= remaining:  # the overall deadline, not this node's share
                        raise GaveUp(exc, attempt, timed_out=True, node=nodes[index]) from None
                    last = exc
                    continue
                except requests.exceptions.ConnectionError as exc:
                    if tls_failure(exc):  # a certificate problem does not go away by retrying
                        raise
                    last = exc
                    continue
                if not isinstance(result, requests.Response) or result.ok:
                    self.preferred = index
                    return result
                status = result.status_code
                if status < 500 and status not in _RETRYABLE_STATUS:
                    self.preferred = index
                    if raise_exception:
                        self._raise_for_error(method, self.urljoin(self.base_uri, url), result)
                    return result
                try:
                    self._raise_for_error(method, self.urljoin(self.base_uri, url), result)
                except hvac.exceptions.VaultError as exc:
                    exc.status_code = status
                    last = exc
            rounds += 1
            if rounds > self.retries:
                raise GaveUp(last, attempt, timed_out=False, node=self.last_node)
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (rounds - 1))
            delay = delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter, not crypto
            if time.monotonic() + delay >= self.deadline:
                raise GaveUp(last, attempt, timed_out=True, node=self.last_node)
            time.sleep(delay)


class VaultTransport:
    """One hvac client for one provider: address, TLS, namespace, deadline and retries.

    The token is given per operation (:meth:`use_token`); nothing is sent until a call.
    """

    def __init__(self, config: VaultConfig, audit: Callable[..., None] | None = None) -> None:
        self.config = config
        self.state = _State()
        self.keeper = TokenKeeper(keeper_method(config), audit or _no_audit, self.use_token)
        """The provider's token across loads (:mod:`.tokens`)."""
        self.secret_id: SecretBytes | None = None
        """A wrapped AppRole secret id, once unwrapped (a wrapping token works once)."""
        self.session = _session(config, self.state)
        verify: bool | str = True
        if config.https:
            if config.tls_skip_verify:
                verify = False
            elif config.ca_cert is not None:
                verify = str(_existing(config.ca_cert, "ca_cert", "VAULT_CACERT"))
        cert: tuple[str, str] | None = None
        if config.client_cert is not None and config.client_key is not None:
            cert = (
                str(_existing(config.client_cert, "client_cert", "VAULT_CLIENT_CERT")),
                str(_existing(config.client_key, "client_key", "VAULT_CLIENT_KEY")),
            )
        self.session.verify = verify
        self.session.cert = cert
        self.adapter = _DeadlineAdapter(
            base_uri=config.address,
            token="",  # never None: hvac would read VAULT_TOKEN and ~/.vault-token
            cert=cert,
            verify=verify,
            timeout=config.timeout,
            proxies=self.session.proxies,
            session=self.session,
            namespace=config.namespace,
        )
        self.adapter.retries = config.retries
        self.adapter.attempt_timeout = config.attempt_timeout
        self.adapter.nodes = config.nodes or (config.address,)
        adapter = self.adapter
        self.client = hvac.Client(  # every API object shares the adapter built above
            url=config.address, token="", adapter=lambda **_: adapter
        )
        self._warned = False
        self._quiet: warnings.catch_warnings[None] | None = None
        self.pinned: Any = None  # the SecretLocation of a pinned kv_version, once computed

    def use_token(self, token: SecretBytes | None) -> None:
        """Send ``token`` with every request until :meth:`end`, which wipes it (hvac's own
        ``token`` stays empty: it would keep the token in a ``str``)."""
        old, self.state.token = self.state.token, token
        if old is not None and old is not token:
            old.wipe()

    def token_text(self) -> str:
        """The token in use as text: only to redact it from a failure's messages."""
        token = self.state.token
        return token.bytes().decode("ascii", "replace") if token else ""

    def capture(self, paths: Iterable[FieldPath]) -> Capture:
        """Take the string values at ``paths`` out of every answer until :meth:`end`."""
        capture = Capture(paths)
        self.state.capture = capture
        return capture

    def begin(self, timeout: float | None = None) -> hvac.Client:
        """Start one load or store: a fresh deadline (``timeout``, else the option's);
        warns once if verification is off."""
        if self.config.https and self.config.tls_skip_verify:
            if not self._warned:
                self._warned = True
                print(
                    f"keyloader: warning: option tls_skip_verify of provider 'vault' is set: the "
                    f"certificate of {self.config.shown_address} is NOT verified, so anyone on "
                    f"the network path can pose as the server; use ca_cert instead",
                    file=sys.stderr,
                )
            quiet = warnings.catch_warnings()
            quiet.__enter__()
            self._quiet = quiet
            warnings.simplefilter("ignore", InsecureRequestWarning)  # warned once above
        deadline = time.monotonic() + (self.config.timeout if timeout is None else timeout)
        self.adapter.deadline = deadline
        if isinstance(self.session, _DeadlineSession):
            self.session.deadline = deadline
        return self.client

    def end(self) -> None:
        """End the operation started by :meth:`begin`: wipe the token and the values taken,
        forget the deadline."""
        self.adapter.deadline = float("inf")
        if isinstance(self.session, _DeadlineSession):
            self.session.deadline = float("inf")
        self.adapter.token = ""
        self.use_token(None)
        capture, self.state.capture = self.state.capture, None
        if capture is not None:
            capture.clear()
        quiet, self._quiet = self._quiet, None
        if quiet is not None:
            quiet.__exit__(None, None, None)

    def close(self) -> None:
        """Revoke a login's token (within :data:`REVOKE_TIMEOUT`), close the session."""
        client = self.begin(min(self.config.timeout, REVOKE_TIMEOUT))
        try:
            self.keeper.revoke(client)
        finally:
            self.end()
            self.session.close()
            if self.secret_id is not None:
                self.secret_id.wipe()


def tls_failure(exc: BaseException) -> bool:
    """True if a TLS error (verification, handshake, alert) is in ``exc``'s chain of causes."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLError | requests.exceptions.SSLError):
            return True
        followers = [getattr(current, "reason", None), current.__cause__, current.__context__]
        followers += [arg for arg in current.args if isinstance(arg, BaseException)]
        stack.extend(item for item in followers if isinstance(item, BaseException))
    return False


class _DeadlineSession(requests.Session):
    """A session that reads each answer's body under the operation's overall deadline,
    into secret pages, and takes the operation's secret values out of it.

    requests' timeout applies to each socket read, so a server that answers its
    headers and then one byte a second would hold a load for ever. Here every socket
    read of the body may take only the time left (as :func:`keyloader.deadline.read_body`
    does): past the deadline the read fails as a timeout. What requests and hvac then
    see as the body (``response.content``) is the body without the values the
    operation's :class:`~keyloader_vault.jsonfield.Capture` takes.
    """

    deadline: float = float("inf")

    def __init__(self, state: _State) -> None:
        super().__init__()
        self.state = state

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if kwargs.pop("stream", False) or self.deadline == float("inf"):
            return super().send(request, **kwargs)
        try:
            return self._send(request, **kwargs)
        finally:  # what copied the token's header and the answer, and decrypted it
            scrub_registers(tls=not (request.url or "").startswith("http:"))

    def _send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        response = super().send(request, stream=True, **kwargs)
        deadline = Deadline.at(self.deadline)
        try:
            body = read_secret(response, deadline)
        except (OSError, urllib3.exceptions.HTTPError, http.client.HTTPException) as exc:
            response.close()
            if isinstance(exc, TimeoutError | urllib3.exceptions.TimeoutError):
                raise requests.exceptions.ReadTimeout(str(exc), request=request) from None
            raise requests.exceptions.ConnectionError(exc, request=request) from None
        except BaseException:
            response.close()
            raise
        try:
            capture = self.state.capture
            response._content = capture.take(body.view) if capture else body.view.tobytes()
        finally:
            body.wipe()
        response._content_consumed = True
        response.raw.release_conn()
        return response


def _session(config: VaultConfig, state: _State) -> requests.Session:
    session = _DeadlineSession(state)
    session.trust_env = False  # no REQUESTS_CA_BUNDLE, no .netrc: keyloader's options decide
    session.proxies = dict(requests.utils.get_environ_proxies(config.address))
    server_name = config.tls_server_name if config.https else None
    session.mount("http://", _VaultHTTPAdapter(state))
    session.mount("https://", _VaultHTTPAdapter(state, server_name))
    return session


def _existing(path: Path, option: str, env: str) -> Path:
    if not path.is_file():
        raise ConfigError(
            f"option {option!r} of provider 'vault' ({env}): file {path} does not exist; "
            f"give the path of a PEM file"
        )
    return path
