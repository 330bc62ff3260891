"""The keys one data operation opens, and the secret-page slots its data keys go in.

:class:`OpenedKeys` unseals the keys of one key id on first need (the current one first,
then the rotated ones, newest first), keeps them for the operation and wipes them at its
end; :func:`take_scratch` lends this thread a 32-byte slot for the data key of the value
being opened or made, :func:`draw` fills it with fresh random bytes (and draws the ivs
with it), :func:`data_keys` draws many fresh data keys at once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

from .containers import acrablock
from .errors import IntegrityError, KeyloaderError, KeyNotFoundError
from .secret import SecretBytes, burn
from .themis import keys as themis_keys
from .themis import scell

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from .dataops import DataOperations
    from .keyids import KeyId

__all__ = [
    "OpenedKeys",
    "UnsealFailed",
    "data_keys",
    "draw",
    "give_back",
    "opening_slot",
    "take_scratch",
]


class UnsealFailed(Exception):
    """A key of the id itself failed to open (wrong master key, damaged key file): that
    error, not the value's, is the one to report."""

    def __init__(self, error: KeyloaderError) -> None:
        super().__init__()
        self.error = error


class OpenedKeys:
    """The keys of ``kid``, current first, then the rotated ones newest first: each
    unsealed on first need and kept until the block ends, then wiped. Iterating again
    goes over the ones already open before unsealing more. :attr:`scratch` is 32 bytes
    in secret pages for the data key of the value being opened."""

    __slots__ = ("_keks", "_kid", "_listed", "_open", "_ops", "_pending", "_private", "scratch")

    def __init__(self, ops: DataOperations, kid: KeyId) -> None:
        self._ops, self._kid = ops, kid
        self._open: list[SecretBytes] = []
        self._private: list[ec.EllipticCurvePrivateKey | None] = []
        self._keks: list[acrablock.Kek] = []
        self._pending: list[int] = [1]
        self._listed = False
        self.scratch: SecretBytes | None = None

    def __enter__(self) -> OpenedKeys:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        for kek in self._keks:
            kek.close()
        for key in self._open:
            key.wipe()
        if self.scratch is not None:
            give_back(self.scratch)
            self.scratch = None
        self._open.clear()
        self._private.clear()
        self._keks.clear()
        if isinstance(exc, UnsealFailed):
            raise exc.error from None

    def __iter__(self) -> Iterator[SecretBytes]:
        position = 0
        while position < len(self._open) or self._unseal_next():
            yield self._open[position]
            position += 1

    def private_keys(self) -> Iterator[ec.EllipticCurvePrivateKey]:
        """The keys as P-256 private keys (keypair ids), each loaded once."""
        for position, key in enumerate(self):
            loaded = self._private[position]
            if loaded is None:
                try:
                    loaded = themis_keys.load_private(key, f"{self._kid} (private half)")
                except IntegrityError as exc:
                    raise UnsealFailed(exc) from None
                self._private[position] = loaded
            yield loaded

    def open_block(self, block: acrablock.AcraBlock, context: bytes | None) -> bytes:
        """The plaintext of ``block``, from the first of the keys (as AcraBlock KEKs under
        ``context``, each made once) that opens it."""
        scratch = self.scratch
        if scratch is None:
            scratch = self.scratch = take_scratch()
        keks = self._keks
        if not keks and (self._open or self._unseal_next()):
            keks.append(acrablock.Kek.of(self._open[0], context))
        if keks and keks[0].key_id == block.key_id:  # the common case: the current key
            kek, data_key = keks[0], scratch.buffer
            try:
                kek.open_into(block.sealed_key, data_key)
                if context:
                    return scell.decrypt_data(data_key, block.sealed_data, kek.context)
                return scell.open_data_cell(data_key, block.sealed_data)
            except IntegrityError:
                pass
            finally:
                data_key[:] = acrablock.ZERO_KEY
        return block.decrypt(self._keks_from(context), scratch.buffer)

    def _keks_from(self, context: bytes | None) -> Iterator[acrablock.Kek]:
        keks = self._keks
        for position, key in enumerate(self):
            if position == len(keks):
                keks.append(acrablock.Kek.of(key, context))
            yield keks[position]

    def _unseal_next(self) -> bool:
        while True:
            if not self._pending and not self._listed:
                self._listed = True
                rotated = self._ops._rotated_count(self._kid)
                self._pending = list(range(rotated + 1, 1, -1))
            if not self._pending:
                return False
            index = self._pending.pop(0)
            try:
                key = self._ops._decrypt(self._kid, index)
            except KeyNotFoundError as exc:
                if index == 1 and self._ops._rotated_count(self._kid):
                    continue  # the current key is destroyed: rotated ones open old values
                raise UnsealFailed(exc) from None
            except KeyloaderError as exc:
                raise UnsealFailed(exc) from None
            self._open.append(key)
            self._private.append(None)
            return True


_local = threading.local()


def take_scratch() -> SecretBytes:
    """32 zero bytes in secret pages for a data key, from this thread's free list (one
    slot per thread and nesting depth, instead of one per call)."""
    try:
        return _local.free.pop()  # type: ignore[no-any-return]
    except (AttributeError, IndexError):  # this thread's first call, or a nested one
        return SecretBytes.zeroed(acrablock.DATA_KEY_SIZE)


def opening_slot() -> memoryview:
    """This thread's 32 bytes in secret pages for the data key of a value the common case
    opens (:func:`~keyloader.containers.acrablock.open_kept`), zeroed after each use. Shared
    by nested calls on the thread: one that interrupts another (a signal handler) can only
    change the data key under the interrupted one, whose AES-GCM check then fails, and
    that call takes the general path. Not for sealing: there a changed key is lost data."""
    try:
        return _local.opening[1]  # type: ignore[no-any-return]
    except AttributeError:
        slot = SecretBytes.zeroed(acrablock.DATA_KEY_SIZE)
        _local.opening = slot, slot.buffer  # the object keeps the slot
        return slot.buffer


def give_back(scratch: SecretBytes) -> None:
    """Zero ``scratch`` and keep it for this thread's next call."""
    scratch.buffer[:] = acrablock.ZERO_KEY
    try:
        free: list[SecretBytes] = _local.free
    except AttributeError:
        free = _local.free = []
    if len(free) < 4:
        free.append(scratch)
    else:
        scratch.wipe()


def draw(out: memoryview, public: int = 0) -> bytes:
    """Fill ``out`` (a slot in secret pages: a data key) with fresh random bytes and return
    ``public`` more that need no secrecy (ivs), from one CSPRNG read whose heap copy is
    burnt at once."""
    size = len(out)
    fresh = os.urandom(size + public)
    with memoryview(fresh) as view:  # a slice of the bytes would be a copy left unburnt
        out[:] = view[:size]
    ivs = fresh[size:]
    burn(fresh)
    return ivs


def data_keys(count: int, chunk: int = 128) -> Generator[memoryview, None, None]:
    """``count`` random 32-byte data keys in secret pages, drawn ``chunk`` at a time (one
    CSPRNG read and one burnt heap copy per chunk); each chunk is wiped once used, and the
    last when the generator is closed."""
    while count > 0:
        batch = min(chunk, count)
        with SecretBytes.random(batch * acrablock.DATA_KEY_SIZE) as keys:
            view = keys.buffer
            for start in range(0, len(view), acrablock.DATA_KEY_SIZE):
                yield view[start : start + acrablock.DATA_KEY_SIZE]
        count -= batch
