"""Sending KMS requests under one overall deadline: botocore signs, this sends.

botocore's own HTTP session applies its timeouts to each socket operation, so a
server that answers its headers and then one byte a second would hold a load
for ever. :class:`DeadlineSender` is a ``before-send`` handler (botocore's
documented way to answer a request in its place): it sends the signed request
with urllib3, every timeout set to the time left, reads the body with
:func:`keyloader.deadline.read_body`, and hands botocore the answer to parse.
Proxies come from the environment (``HTTPS_PROXY``, ``NO_PROXY``), as botocore's.
"""

from __future__ import annotations

import ssl
from typing import Any

import urllib3
import urllib3.exceptions
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.utils import get_environ_proxies

from keyloader.deadline import Deadline, read_body

__all__ = ["DeadlineSender", "SendFailure"]


class SendFailure(Exception):
    """A request got no answer: ``reason`` says why, in words safe to show."""

    def __init__(self, reason: str, *, retryable: bool, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.timed_out = timed_out


class _Body:
    """A body already read, in the shape botocore reads one (``stream()``)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, *_: Any, **__: Any) -> list[bytes]:
        return [self._data]


class DeadlineSender:
    """A ``before-send`` handler that sends each request before :attr:`deadline`."""

    def __init__(self, ca_bundle: str | None) -> None:
        self.deadline = Deadline.at(float("inf"))
        self._context = ssl.create_default_context(cafile=ca_bundle)
        self._managers: dict[str | None, urllib3.PoolManager] = {}

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        remaining = self.deadline.remaining()
        if remaining <= 0:
            raise SendFailure("the overall deadline passed", retryable=False, timed_out=True)
        url = str(request.url)
        timeout = urllib3.Timeout(connect=remaining, read=remaining)
        try:
            response = self._manager(url).urlopen(
                request.method,
                url,
                body=request.body,
                headers=dict(request.headers.items()),
                retries=False,
                redirect=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
                timeout=timeout,
            )
        except urllib3.exceptions.SSLError as exc:
            raise SendFailure(f"TLS failed: {_reason(exc)}", retryable=False) from None
        except urllib3.exceptions.NewConnectionError as exc:  # before TimeoutError: a subclass
            raise SendFailure(_reason(exc), retryable=True) from None
        except urllib3.exceptions.TimeoutError:
            raise SendFailure("no answer in time", retryable=False, timed_out=True) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise SendFailure(_reason(exc), retryable=True) from None
        try:
            body = read_body(response, self.deadline)
        except (TimeoutError, urllib3.exceptions.TimeoutError):
            response.close()
            raise SendFailure(
                "the answer did not arrive in time", retryable=False, timed_out=True
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            response.close()
            raise SendFailure(f"the answer was cut off: {_reason(exc)}", retryable=True) from None
        response.release_conn()
        return AWSResponse(url, response.status, response.headers, _Body(body))

    def _manager(self, url: str) -> urllib3.PoolManager:
        scheme = url.split(":", 1)[0]
        proxy = get_environ_proxies(url).get(scheme)
        manager = self._managers.get(proxy)
        if manager is None:
            if proxy:
                manager = urllib3.ProxyManager(proxy, ssl_context=self._context, maxsize=2)
            else:
                manager = urllib3.PoolManager(ssl_context=self._context, maxsize=2)
            self._managers[proxy] = manager
        return manager

    def close(self) -> None:
        managers, self._managers = self._managers, {}
        for manager in managers.values():
            manager.clear()


def _reason(exc: BaseException) -> str:
    """The innermost cause's words, without the URL-laden wrappers urllib3 adds."""
    current: BaseException = exc
    seen = {id(exc)}
    while True:
        inner = getattr(current, "reason", None) or current.__cause__ or current.__context__
        if not isinstance(inner, BaseException) or id(inner) in seen:
            break
        seen.add(id(inner))
        current = inner
    if isinstance(current, ssl.SSLCertVerificationError):
        return f"certificate verification failed ({current.verify_message})"
    text = getattr(current, "strerror", None) or str(current) or type(current).__name__
    return str(text)
