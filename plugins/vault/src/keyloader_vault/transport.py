"""The HTTP side of the ``vault`` provider: an hvac client with keyloader's TLS, deadline, retries.

Imported only when a provider is first used: it imports hvac and requests.

hvac and requests read the environment on their own (``VAULT_TOKEN``,
``~/.vault-token``, ``VAULT_CACERT``, ``VAULT_CLIENT_CERT``, ``REQUESTS_CA_BUNDLE``,
``.netrc``). Everything is passed explicitly here and the session does not trust
the environment, so keyloader's own option precedence holds; only the proxy
variables (``HTTPS_PROXY``, ``NO_PROXY``...) are honoured, for the address alone.
"""

from __future__ import annotations

import random
import ssl
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import hvac
import hvac.adapters
import hvac.exceptions
import requests
import requests.adapters
import requests.utils
import urllib3.exceptions
from urllib3.exceptions import InsecureRequestWarning

from keyloader.deadline import Deadline, read_body
from keyloader.errors import ConfigError

from .config import VaultConfig

__all__ = ["GaveUp", "VaultTransport", "tls_failure"]

BACKOFF_BASE = 0.1
"""Seconds before the first retry (then doubled, with jitter)."""
BACKOFF_CAP = 2.0
"""The longest wait between two attempts, in seconds."""

_RETRYABLE_STATUS = frozenset({429})


class GaveUp(Exception):
    """Retries or the deadline ran out; ``last`` is the last failure (an hvac or requests error)."""

    def __init__(self, last: BaseException | None, attempts: int, *, timed_out: bool) -> None:
        super().__init__("gave up")
        self.last = last
        self.attempts = attempts
        self.timed_out = timed_out


class _ServerNameAdapter(requests.adapters.HTTPAdapter):
    """A transport adapter that sends ``server_name`` as SNI and verifies the certificate for it."""

    def __init__(self, server_name: str) -> None:
        self.server_name = server_name
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["server_hostname"] = self.server_name
        super().init_poolmanager(*args, **kwargs)


class _DeadlineAdapter(hvac.adapters.JSONAdapter):  # type: ignore[misc]
    """hvac's JSON adapter with an overall deadline and bounded retries with backoff.

    Retried: connection errors (not TLS failures), 429 and 5xx (a sealed server
    answers 503). Never retried: any other 4xx. Each attempt's timeout is the
    time left before :attr:`deadline`.
    """

    deadline: float = float("inf")
    retries: int = 0

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        raise_exception: bool = True,
        **kwargs: Any,
    ) -> Any:
        attempt = 0
        last: BaseException | None = None
        while True:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise GaveUp(last, attempt, timed_out=True)
            attempt += 1
            try:
                result = super().request(
                    method,
                    url,
                    headers=dict(headers or {}),
                    raise_exception=False,
                    timeout=remaining,
                    **kwargs,
                )
            except requests.exceptions.Timeout as exc:
                raise GaveUp(exc, attempt, timed_out=True) from None
            except requests.exceptions.ConnectionError as exc:
                if tls_failure(exc):  # a certificate problem does not go away by retrying
                    raise
                last = exc
            else:
                if not isinstance(result, requests.Response) or result.ok:
                    return result
                status = result.status_code
                if status < 500 and status not in _RETRYABLE_STATUS:
                    if raise_exception:
                        self._raise_for_error(method, self.urljoin(self.base_uri, url), result)
                    return result
                try:
                    self._raise_for_error(method, self.urljoin(self.base_uri, url), result)
                except hvac.exceptions.VaultError as exc:
                    exc.status_code = status
                    last = exc
            if attempt > self.retries:
                raise GaveUp(last, attempt, timed_out=False)
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
            delay = delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter, not crypto
            if time.monotonic() + delay >= self.deadline:
                raise GaveUp(last, attempt, timed_out=True)
            time.sleep(delay)


class VaultTransport:
    """One hvac client for one provider: address, TLS, namespace, deadline and retries.

    The token is set per operation (:attr:`token`); nothing is sent until a call.
    """

    def __init__(self, config: VaultConfig) -> None:
        self.config = config
        self.session = _session(config)
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
        adapter = self.adapter
        self.client = hvac.Client(  # every API object shares the adapter built above
            url=config.address, token="", adapter=lambda **_: adapter
        )
        self._warned = False
        self._quiet: warnings.catch_warnings[None] | None = None
        self.pinned: Any = None  # the SecretLocation of a pinned kv_version, once computed

    @property
    def token(self) -> str:
        return str(self.adapter.token or "")

    @token.setter
    def token(self, value: str) -> None:
        self.adapter.token = value

    def begin(self) -> hvac.Client:
        """Start one load or store: a fresh deadline; warns once if verification is off."""
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
        deadline = time.monotonic() + self.config.timeout
        self.adapter.deadline = deadline
        if isinstance(self.session, _DeadlineSession):
            self.session.deadline = deadline
        return self.client

    def end(self) -> None:
        """End the operation started by :meth:`begin`: forget the token and the deadline."""
        self.adapter.deadline = float("inf")
        if isinstance(self.session, _DeadlineSession):
            self.session.deadline = float("inf")
        self.adapter.token = ""
        quiet, self._quiet = self._quiet, None
        if quiet is not None:
            quiet.__exit__(None, None, None)

    def close(self) -> None:
        self.session.close()


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
    """A session that reads each answer's body under the operation's overall deadline.

    requests' timeout applies to each socket read, so a server that answers its
    headers and then one byte a second would hold a load for ever. Here the body
    is read with :func:`keyloader.deadline.read_body`: past the deadline the read
    fails as a timeout.
    """

    deadline: float = float("inf")

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if kwargs.pop("stream", False) or self.deadline == float("inf"):
            return super().send(request, **kwargs)
        response = super().send(request, stream=True, **kwargs)
        deadline = Deadline.at(self.deadline)
        decode = "Content-Encoding" in response.headers
        try:
            body = read_body(response.raw, deadline, decode=decode)
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            response.close()
            if isinstance(exc, TimeoutError | urllib3.exceptions.TimeoutError):
                raise requests.exceptions.ReadTimeout(str(exc), request=request) from None
            raise requests.exceptions.ConnectionError(exc, request=request) from None
        except BaseException:
            response.close()
            raise
        response._content = body
        response._content_consumed = True
        response.raw.release_conn()
        return response


def _session(config: VaultConfig) -> requests.Session:
    session = _DeadlineSession()
    session.trust_env = False  # no REQUESTS_CA_BUNDLE, no .netrc: keyloader's options decide
    session.proxies = dict(requests.utils.get_environ_proxies(config.address))
    if config.https and config.tls_server_name:
        session.mount("https://", _ServerNameAdapter(config.tls_server_name))
    return session


def _existing(path: Path, option: str, env: str) -> Path:
    if not path.is_file():
        raise ConfigError(
            f"option {option!r} of provider 'vault' ({env}): file {path} does not exist; "
            f"give the path of a PEM file"
        )
    return path
