"""The engine of Acra keystore v2: keys in signed rings, under a v2 master key pair.

:class:`RingKeyManager` is :class:`~keyloader.engine.EngineBase` over a
:class:`~keyloader.keyrings.backend.RingBackend` (a directory, Redis): the same ``read``,
``use``, cache, audit events and data operations as keystore v1's ``KeyManager``. A key
id maps to its ring (``client/<id>/symmetric`` -> ``client/<id>/storage-sym``, ...); index 1 is the
ring's current key, index N >= 2 the rotated ones that are not destroyed, oldest first
(``acra-keys``' order, and v1's). Each ring read is verified with the master key's
signature half before any key in it is used, and every decrypted key is cached (in
secret pages) against the ring's revision, so a cached ``use()`` pays neither the
signature nor the DER parse. Writes (:meth:`RingKeyManager.generate`, ``rotate``,
``destroy``) hold Acra's exclusive lock and leave rings as Acra's own code would.

A ring is signed and sealed under one pair. Half-way through a rewrap, a ring the current
pair does not verify is tried under the keys a reload replaced and the ``previous`` pair
(as keystore v1 tries blobs), and its keys are opened with the pair that verified it; a
write to such a ring seals the whole ring again under the current pair first.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Iterator

from ..audit import AuditEvent
from ..defaults import DEFAULT_CACHE_SIZE, DEFAULT_CACHE_TTL
from ..engine import EngineBase
from ..errors import (
    ConfigError,
    KeyExistsError,
    KeyloaderError,
    KeyNotFoundError,
    RingFormatError,
)
from ..inventory import KeyInfo, VerifyResult
from ..keycache import MasterKeySource
from ..keyids import KeyId, KeyKind, key_id_of, key_id_of_ring
from ..masterkey import MasterKey
from ..secret import SecretBytes
from ..themis import keys as themis_keys
from ..themis import scell
from . import edit
from . import format as rings
from .backend import RingBackend

__all__ = ["RingKeyManager"]

_SYMMETRIC_SIZE = 32
_PARSED_RINGS = 4096
"""How many parsed rings are kept (the oldest kept goes first)."""
_UNREAD = object()
UNKNOWN_RING = "unknown ring: not a ring path of an Acra key (left untouched)"


class RingKeyManager(EngineBase):
    """Keys of one Acra keystore v2, under one v2 master key pair."""

    store: RingBackend
    keystore_version = "v2"

    def __init__(
        self,
        store: RingBackend,
        master_key: MasterKeySource,
        *,
        previous: MasterKeySource | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        emit: Callable[[AuditEvent], None] | None = None,
        provider_name: str | None = None,
        auto_reload: bool = False,
        wants: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__(
            master_key,
            previous=previous,
            cache_size=cache_size,
            cache_ttl=cache_ttl,
            emit=emit,
            provider_name=provider_name,
            auto_reload=auto_reload,
            wants=wants,
        )
        self.store = store
        # path -> (revision, the current signature key then, the ring, its encryption key)
        self._parsed: dict[str, tuple[object, SecretBytes, rings.KeyRing, SecretBytes]] = {}

    # -- the master key pair -----------------------------------------------------------

    def _pair(self) -> tuple[SecretBytes, SecretBytes]:
        key = self.master_key  # the slot refuses a v1 key
        assert key.signature is not None
        return key.encryption, key.signature

    # -- rings -------------------------------------------------------------------------

    def _ring(self, path: str, revision: object = _UNREAD) -> rings.KeyRing | None:
        """Ring ``path``, verified; None if absent (:meth:`_opened` without the key)."""
        opened = self._opened(path, revision)
        return opened[0] if opened is not None else None

    def _opened(
        self, path: str, revision: object = _UNREAD
    ) -> tuple[rings.KeyRing, SecretBytes] | None:
        """Ring ``path``, verified, and the encryption key of the pair that signed it; None
        if absent. A ring is read (under the shared lock), its signature checked and its
        DER parsed once per revision of its file and master key: the parsed rings kept
        hold sealed keys and public halves, no plaintext."""
        if revision is _UNREAD:
            revision = self.store.revision(path)
        if revision is None:
            return None
        current = self._pair()[1]
        kept = self._parsed.get(path)
        if kept is not None and kept[0] == revision and kept[1] is current:
            return kept[2], kept[3]
        with self.store.locked(exclusive=False):
            data = self.store.read(path)
        if data is None:
            return None
        ring, encryption = self._verified(data, path)
        self._parsed[path] = (revision, current, ring, encryption)
        if len(self._parsed) > _PARSED_RINGS:
            self._parsed.pop(next(iter(self._parsed)), None)
        return ring, encryption

    def _verified(self, data: bytes, path: str) -> tuple[rings.KeyRing, SecretBytes]:
        """The ring in ``data``, under the first pair whose signature verifies it: the
        current one, then the ones a reload replaced, then the previous pair (loaded only
        now); the current pair's error if none does."""
        what = f"key ring {path}"
        container = rings.parse_container(data, what)
        context = rings.ring_signature_context(path)
        first: RingFormatError | None = None
        for pair in self._pairs():
            assert pair.signature is not None
            try:
                container.verify(pair.signature, context, what)
            except RingFormatError as exc:
                first = first or exc
                continue
            return rings.ring_of(container, what), pair.encryption
        assert first is not None
        raise first

    def _pairs(self) -> Iterator[MasterKey]:
        yield self.master_key
        yield from self._master.replaced
        if self._previous is not None:
            yield self._previous.get(lambda _: None)

    def _key_at(self, kid: KeyId, ring: rings.KeyRing | None, index: int) -> rings.RingKey:
        if index < 1:
            raise ConfigError(f"index must be 1 (current) or more, not {index}")
        if ring is None:
            raise KeyNotFoundError(f"{kid} does not exist in {self.location}")
        if index == 1:
            key = ring.key(ring.current) if ring.current != rings.NO_KEY else None
            if key is None or key.destroyed:
                raise KeyNotFoundError(f"{kid} has no current key in {self.location}")
            return key
        rotated = _rotated(ring)
        if index - 2 >= len(rotated):
            raise KeyNotFoundError(
                f"{kid} has no index {index}: it has {len(rotated)} rotated version"
                f"{'s' if len(rotated) != 1 else ''}"
            )
        return rotated[index - 2]

    # -- what EngineBase and the data operations ask -----------------------------------

    def _decrypt(self, kid: KeyId, index: int) -> SecretBytes:
        path = kid.ring_path
        cache = self._cache
        revision = self.store.revision(path)
        if cache is not None and revision is not None:
            cached = cache.get((path, str(index)), revision)
            if cached is not None:
                return cached
        opened = self._opened(path, revision)
        key = self._key_at(kid, opened[0] if opened is not None else None, index)
        assert opened is not None
        secret = rings.unseal_key(opened[1], path, key, private=kid.kind.keypair)
        if cache is not None and revision is not None:
            return cache.put((path, str(index)), revision, secret)
        return secret

    def _peek(self, kid: KeyId) -> SecretBytes | None:
        cache = self._cache
        if cache is None:
            return None
        path = kid.ring_path
        return cache.peek((path, "1"), self.store.revision(path))

    def cached(self, key_id: KeyId | str, index: int = 1) -> SecretBytes | None:
        cache = self._cache
        if cache is None or not self._master.loaded:
            return None
        path = key_id_of(key_id).ring_path
        return cache.get((path, str(index)), self.store.revision(path))

    def _rotated_count(self, kid: KeyId) -> int:
        ring = self._ring(kid.ring_path)
        return len(_rotated(ring)) if ring is not None else 0

    def _has_current(self, kid: KeyId) -> bool:
        ring = self._ring(kid.ring_path)
        if ring is None or ring.current == rings.NO_KEY:
            return False
        key = ring.key(ring.current)
        return key is not None and not key.destroyed

    def read_public(self, key_id: KeyId | str) -> bytes:
        """The public half of a keypair's current key (``client/<id>/storage``,
        ``poison-record``), as the ring holds it in the clear."""
        kid = key_id_of(key_id)
        if not kid.kind.keypair:
            raise ConfigError(f"{kid} is a symmetric key: it has no public part")
        key = self._key_at(kid, self._ring(kid.ring_path), 1)
        for form in key.data:
            if form.public is not None:
                return form.public
        raise KeyNotFoundError(f"{kid}: the current key has no public part")

    def forget(self, name: str) -> None:
        if self._cache is not None:
            self._cache.drop(name)
        self._parsed.pop(name, None)

    # -- listing and verification ------------------------------------------------------

    def list(self, *, rotated: bool = False, check: bool = False) -> builtins.list[KeyInfo]:
        """Every ring's current key (and with ``rotated`` its rotated ones, index 2 the
        oldest), with ``check`` each tried; a ring path that is not a key is ``unknown``."""
        infos: list[KeyInfo] = []
        try:
            for path, kid, opened in self._rings():
                where = self.store.where(path)
                if kid is None or opened is None:
                    infos.append(KeyInfo(None, "unknown", None, None, "unknown", None, where))
                    continue
                ring, encryption = opened
                for index, key in self._indexed(ring, rotated=rotated):
                    decrypts = self._failure(kid, key, path, encryption) is None if check else None
                    infos.append(
                        KeyInfo(
                            str(kid),
                            kid.kind.value,
                            kid.client_id,
                            index,
                            "current" if index == 1 else "rotated",
                            key.valid_since.timestamp(),
                            where,
                            decrypts,
                        )
                    )
        finally:
            scell.scrub()
        return infos

    def verify(
        self, progress: Callable[[int, int], None] | None = None
    ) -> builtins.list[VerifyResult]:
        """Every ring's signature and every key in it (current and rotated), one result
        per key; a ring that does not verify is one failed result. A master key that
        cannot load, or is not a v2 pair, is raised: it is no fault of any ring."""
        self._pair()
        results: list[VerifyResult] = []
        listed = self.store.list()
        try:
            for done, path in enumerate(listed, start=1):
                kid = key_id_of_ring(path)
                where = self.store.where(path)
                if kid is None:
                    results.append(VerifyResult(None, None, where, None, UNKNOWN_RING, "unknown"))
                    continue
                try:
                    opened = self._opened(path)
                    failures = (
                        []
                        if opened is None
                        else [
                            (index, self._failure(kid, key, path, opened[1]))
                            for index, key in self._indexed(opened[0], rotated=True)
                        ]
                    )
                except KeyloaderError as exc:
                    failures = [(1, exc)]
                for index, error in failures:
                    self.audit("key_verified", kid, index, error=error)
                    results.append(
                        VerifyResult(str(kid), index, where, True)
                        if error is None
                        else VerifyResult(
                            str(kid), index, where, False, str(error), type(error).__name__
                        )
                    )
                if progress is not None:
                    progress(done, len(listed))
        finally:
            scell.scrub()
        return results

    def _rings(
        self,
    ) -> Iterator[tuple[str, KeyId | None, tuple[rings.KeyRing, SecretBytes] | None]]:
        for path in self.store.list():
            kid = key_id_of_ring(path)
            yield path, kid, self._opened(path) if kid is not None else None

    def _indexed(
        self, ring: rings.KeyRing, *, rotated: bool
    ) -> builtins.list[tuple[int, rings.RingKey]]:
        current = ring.key(ring.current) if ring.current != rings.NO_KEY else None
        found = [(1, current)] if current is not None and not current.destroyed else []
        if rotated:
            found += list(enumerate(_rotated(ring), start=2))
        return found

    def _failure(
        self, kid: KeyId, key: rings.RingKey, path: str, encryption: SecretBytes
    ) -> KeyloaderError | None:
        """Why ``key`` does not decrypt under ``encryption``, or None when it does."""
        try:
            rings.unseal_key(encryption, path, key, private=kid.kind.keypair).wipe()
        except KeyloaderError as exc:
            return exc
        return None

    # -- writing -----------------------------------------------------------------------

    def generate(
        self, kinds: Iterable[KeyKind | str], client_id: str | None = None
    ) -> builtins.list[KeyId]:
        """A first key in the ring of each kind; ``KeyExistsError`` if one has a current
        key already (nothing is written then)."""
        kids = [
            KeyId(KeyKind(kind), client_id if KeyKind(kind).per_client else None) for kind in kinds
        ]
        with self.store.locked(exclusive=True):
            for kid in kids:
                if self._has_current(kid):
                    raise KeyExistsError(f"{kid} already exists: use `keyloader keys rotate {kid}`")
            for kid in kids:
                self._add_key(kid)
                self.audit("key_generated", kid, 1)
        return kids

    def rotate(self, key_id: KeyId | str) -> KeyId:
        """A new current key in the ring; the old one stays in it (the newest rotated)."""
        kid = key_id_of(key_id)
        with self.store.locked(exclusive=True):
            if self._ring(kid.ring_path) is None:
                raise KeyNotFoundError(f"{kid} does not exist in {self.location}")
            self._add_key(kid)
        self.audit("key_rotated", kid, 1)
        return kid

    def destroy(self, key_id: KeyId | str, index: int | None = None) -> None:
        """Destroy the current key, or the rotated one at ``index`` (>= 2), as Acra does:
        its seqnum stays in the ring, its data goes."""
        kid = key_id_of(key_id)
        path = kid.ring_path
        with self.store.locked(exclusive=True):
            ring = self._writable(path)
            key = self._key_at(kid, ring, index or 1)
            assert ring is not None
            self._write(path, edit.destroy_key(ring, key.seqnum))
        self.audit("key_destroyed", kid, index or 1)

    def _add_key(self, kid: KeyId) -> None:
        path = kid.ring_path
        encryption, _ = self._pair()
        try:
            ring = self._writable(path) or edit.empty_ring(path)
            if kid.kind.keypair:
                secret, public = themis_keys.generate_keypair()
                with secret:
                    ring = edit.add_key(ring, path, encryption, secret, public)
            else:
                with SecretBytes.random(_SYMMETRIC_SIZE) as secret:
                    ring = edit.add_key(ring, path, encryption, secret)
        finally:
            scell.scrub()
        self._write(path, ring)

    def _writable(self, path: str) -> rings.KeyRing | None:
        """Ring ``path`` with its keys under the current pair: a ring an older pair signed
        (a rewrap half-way) is sealed again whole before a write changes it."""
        opened = self._opened(path)
        if opened is None:
            return None
        ring, encryption = opened
        current = self._pair()[0]
        if encryption is current:
            return ring
        try:
            return edit.reseal(ring, path, encryption, current)
        finally:
            scell.scrub()

    def _write(self, path: str, ring: rings.KeyRing) -> None:
        self.store.write(path, rings.signed_ring(ring, path, self._pair()[1]))
        self.forget(path)


def _rotated(ring: rings.KeyRing) -> list[rings.RingKey]:
    """The ring's keys other than the current one, not destroyed, oldest first."""
    return [key for key in ring.keys if key.seqnum != ring.current and not key.destroyed]
