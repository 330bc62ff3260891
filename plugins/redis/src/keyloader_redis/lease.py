"""The writer lock of the ``redis`` store: a leased Redis key, renewed while it is held.

``SET <keys_dir>.keyloader-lock <token> NX PX <lease>`` takes it; a daemon
thread renews the lease every third of it; release deletes it only if the
token is still ours. A writer that crashes loses the lock when the lease runs
out. Write scripts check the token, so a writer that lost its lock writes
nothing. Re-entrant within one store object, and thread safe.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Sequence
from typing import Any

from keyloader.errors import KeyloaderError, KeyStoreError
from keyloader.stores.reentrant import ReentrantHold

from . import scripts
from .connection import RedisConnection

__all__ = ["WriterLease"]

log = logging.getLogger("keyloader.stores.redis")

_LOCKLOST = b"LOCKLOST"
_POLL_FIRST = 0.002
_POLL_MAX = 0.05


class WriterLease(ReentrantHold):
    """The writer lock ``key`` on the server of ``connection``."""

    def __init__(
        self, connection: RedisConnection, key: str, lease: float, timeout: float, location: str
    ) -> None:
        super().__init__(timeout)
        self.connection = connection
        self.key = key
        self.lease = lease
        self.location = location
        self.token: str | None = None
        self._renewer: threading.Thread | None = None
        self._renewer_stop = threading.Event()

    @property
    def lease_ms(self) -> str:
        """The lease in milliseconds, as the write scripts take it."""
        return str(int(self.lease * 1000))

    def busy_message(self) -> str:
        return (
            f"timed out after {self.timeout:g} s waiting for the lock of "
            f"{self.location}: another thread of this process holds it; let it finish or "
            "raise lock_timeout"
        )

    def take_outer(self, deadline: float) -> None:
        token = secrets.token_hex(16)
        lease = int(self.lease * 1000)
        key = self.key

        def take(client: Any, attempt: int) -> bool:
            if client.set(key, token, nx=True, px=lease):
                return True
            # a retry: the first SET may have landed before the connection broke
            return attempt > 0 and client.get(key) == token.encode()

        delay = _POLL_FIRST
        while not self.connection.run(f"take the writer lock {key}", take):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KeyStoreError(
                    f"timed out after {self.timeout:g} s waiting for the writer lock "
                    f"{key} on {self.connection.settings.display_url}: another writer holds it; "
                    f"let it finish or raise lock_timeout (a crashed writer's lock expires "
                    f"within {self.lease:g} s)"
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, _POLL_MAX)
        self.token = token
        self._renewer_stop = threading.Event()
        self._renewer = threading.Thread(
            target=self._renew,
            args=(token, self._renewer_stop),
            name=f"keyloader-redis-lock-{key}",
            daemon=True,
        )
        self._renewer.start()

    def _renew(self, token: str, stop: threading.Event) -> None:
        """Renew the lease every third of it until ``stop``; give up once the lock is lost."""
        lease = int(self.lease * 1000)
        while not stop.wait(self.lease / 3):
            try:
                still_ours = self.connection.run(
                    f"renew the writer lock {self.key}",
                    lambda client, _: self.connection.script(scripts.RENEW)(
                        keys=[self.key], args=[token, lease]
                    ),
                )
            except KeyloaderError as exc:
                log.warning("%s", exc)
                continue
            if not still_ours:
                log.warning(
                    "the writer lock %s on %s was lost; writes under it will be refused",
                    self.key,
                    self.connection.settings.display_url,
                )
                return

    def forget_outer(self) -> None:
        # the parent holds the lease and renews it; a child never releases or renews it
        self.token = None
        self._renewer = None  # the renewing thread does not exist in the child
        self._renewer_stop = threading.Event()

    def release_outer(self) -> None:
        token, self.token = self.token, None
        renewer, self._renewer = self._renewer, None
        self._renewer_stop.set()
        if renewer is not None:
            renewer.join()
        try:
            self.connection.run(
                f"release the writer lock {self.key}",
                lambda client, _: self.connection.script(scripts.RELEASE)(
                    keys=[self.key], args=[token]
                ),
            )
        except KeyloaderError as exc:  # the lease expires on its own
            log.warning("%s (it expires within %g s)", exc, self.lease)

    def write(
        self, action: str, source: str, keys: Sequence[str], values: Sequence[bytes]
    ) -> bytes:
        """Run write script ``source`` (:mod:`.scripts`) on ``keys`` with ``values`` while
        holding the lock; ``KeyStoreError`` if the lock was lost (nothing was written).

        With replicas (``wait_replicas``), the script and a ``WAIT`` go down one
        connection; a write fewer replicas acknowledged in ``wait_timeout`` is done
        on the master but reported unconfirmed (it could be lost if the master
        failed now).
        """
        connection, settings = self.connection, self.connection.settings
        acks: list[tuple[int, int]] = []
        with self.hold():
            token, lease = self.token, self.lease_ms

            def call(client: Any, attempt: int) -> bytes:
                script = connection.script(source)
                args = [token, lease, "1" if attempt else "0", *values]
                client = connection.node_client(client, self.key)
                wanted = connection.wanted_acks(client)
                if not wanted:
                    return bytes(script(keys=[self.key, *keys], args=args))
                pipe = client.pipeline(transaction=False)
                script(keys=[self.key, *keys], args=args, client=pipe)
                pipe.wait(wanted, int(settings.wait_timeout * 1000))
                result, acked = pipe.execute()
                acks[:] = [(int(acked), wanted)]
                return bytes(result)

            result = connection.run(action, call)
        if result == _LOCKLOST:
            raise KeyStoreError(
                f"cannot {action}: the writer lock {self.key} on "
                f"{settings.display_url} was lost (its lease expired, another writer "
                "took it, or a failover lost it); nothing was written, run the operation again"
            )
        if acks:
            acked, wanted = acks[0]
            if acked < wanted:
                raise KeyStoreError(
                    f"{action} is done on the master of {settings.display_url}, but "
                    f"{acked} of {wanted} replicas acknowledged it within wait_timeout "
                    f"({settings.wait_timeout:g} s): unconfirmed, it would be lost if the "
                    "master failed now; check the replicas (INFO replication), then check the "
                    "key with `keyloader keys list --check`"
                )
        return result
