"""keyloader.aio: every operation awaited, the loop never blocked, cancellation leaves nothing.

A ticker task runs beside keyloader and records the longest gap between its ticks:
blocking work on the event loop (a slow provider, a slow store) would stretch it.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import keyloader
import keyloader.aio
from keyloader.api import resolve
from keyloader.audit import AuditEvent
from keyloader.errors import KeyNotFoundError
from keyloader.masterkey import MasterKey, generate_master_key, parse_master_key
from keyloader.plugins import KeyloaderPluginManager, make_plugin_manager
from keyloader.providers import MasterKeyProvider
from keyloader.secret import SecretBytes
from keyloader.stores.filesystem import FilesystemKeyStore
from keyloader_env import plugin as env_plugin

KID = "client/client1/symmetric"
SLOW = 0.5  # seconds the slow provider and store take
TICK = 0.005
LONGEST_GAP = SLOW / 2  # a blocked loop would show SLOW here; a busy 2-core runner, far less


class Ticker:
    """A task that must keep running: its longest gap tells whether the loop was blocked."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> float:
        assert self._task is not None
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task
        return self.longest


class SlowProvider(MasterKeyProvider):
    """A provider whose load takes SLOW seconds (a Vault or KMS round trip)."""

    name: ClassVar[str] = "slow"
    description: ClassVar[str] = "a master key that takes time to load"
    text: ClassVar[str] = ""
    can_store: ClassVar[bool] = False

    def load(self) -> MasterKey:
        time.sleep(SLOW)
        return parse_master_key(self.text, source="the slow provider")


class SlowStore(FilesystemKeyStore):
    """A filesystem store whose reads and writes take SLOW seconds (a network disk)."""

    name: ClassVar[str] = "slow-fs"
    made: ClassVar[list[SlowStore]] = []

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        SlowStore.made.append(self)

    def get(self, name: str) -> bytes:
        time.sleep(SLOW)
        return super().get(name)

    def create(self, name: str, data: bytes, *, public: bool = False) -> None:
        time.sleep(SLOW)
        super().create(name, data, public=public)

    @property
    def revision_is_cheap(self) -> bool:
        return False


class Plugin:
    def __init__(self) -> None:
        self.threads: list[tuple[str, int]] = []

    @keyloader.hookimpl
    def keyloader_master_key_providers(self) -> list[type[MasterKeyProvider]]:
        return [SlowProvider]

    @keyloader.hookimpl
    def keyloader_key_stores(self) -> list[type[FilesystemKeyStore]]:
        return [SlowStore]

    @keyloader.hookimpl
    def keyloader_audit_event(self, event: AuditEvent) -> None:
        self.threads.append((event.action, threading.get_ident()))


@pytest.fixture
def master(monkeypatch: pytest.MonkeyPatch) -> Iterator[MasterKey]:
    with generate_master_key() as key, key.to_text() as text:
        SlowProvider.text = text.bytes().decode()
        monkeypatch.setenv("ACRA_MASTER_KEY", SlowProvider.text)
        yield key


@pytest.fixture
def plugin() -> Plugin:
    return Plugin()


@pytest.fixture
def pm(plugin: Plugin) -> KeyloaderPluginManager:
    return make_plugin_manager(autoload=False, env={}, plugins=[env_plugin, plugin])


def in_a_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an ``async def`` test in a fresh event loop, with a started :class:`Ticker`."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        async def body() -> None:
            if "ticker" in kwargs:
                kwargs["ticker"].start()
            await test(*args, **kwargs)

        # A full collection of the whole session's heap stops every thread, the loop's too:
        # it is not what the ticker is there to see, so the heap so far is kept out of it.
        gc.collect()
        gc.freeze()
        try:
            asyncio.run(body())
        finally:
            gc.unfreeze()

    return run


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


# -- the operations ----------------------------------------------------------------------


@in_a_loop
async def test_every_operation_awaited(
    tmp_path: Path, master: MasterKey, pm: KeyloaderPluginManager, ticker: Ticker
) -> None:
    keys_dir = tmp_path / ".acrakeys"
    async with keyloader.aio.open_keystore(keys_dir=keys_dir, plugin_manager=pm) as keys:
        assert isinstance(keys, keyloader.aio.AsyncKeyManager)
        assert await keys.generate(["symmetric", "storage"], client_id="client1")
        async with keys.use(KID) as key:
            assert isinstance(key, SecretBytes)
            value = key.bytes()
        assert key.wiped, "the key outlived its block"
        with await keys.read(KID) as read:
            assert read.bytes() == value
        assert len(await keys.read_public("client/client1/storage")) > 0
        rotated = await keys.rotate(KID)
        assert str(rotated) == KID
        listed = await keys.list(rotated=True)
        assert {info.index for info in listed if info.key_id == KID} == {1, 2}
        assert all(result.ok for result in await keys.verify())
        await keys.destroy(KID, 2)
        assert await keys.fingerprint() == master.fingerprint
        assert await keys.reload_master_key() is False
        with pytest.raises(KeyNotFoundError):
            async with keys.use("client/nobody/symmetric"):
                pass
    longest = await ticker.stop()
    assert longest < LONGEST_GAP, f"the loop stood still for {longest:.3f} s"


@in_a_loop
async def test_open_can_be_awaited_and_module_functions(
    tmp_path: Path,
    master: MasterKey,
    pm: KeyloaderPluginManager,
    ticker: Ticker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys_dir = tmp_path / ".acrakeys"
    slow: dict[str, Any] = {"provider": "slow", "keystore": "slow-fs"}
    keys = await keyloader.aio.open_keystore(keys_dir=keys_dir, plugin_manager=pm, **slow)
    try:
        await keys.generate(["symmetric"], client_id="client1")
        async with keys.use(KID) as key:
            value = key.bytes()
    finally:
        await keys.aclose()
    with await keyloader.aio.load_master_key(provider="slow", plugin_manager=pm) as loaded:
        assert loaded == master
    settings = resolve(keys_dir=keys_dir, **slow)
    bundle, secret = tmp_path / "keys.bundle", tmp_path / "keys.secret"
    exported = await keyloader.aio.export_keystore(
        settings, None, bundle, secret, plugin_manager=pm
    )
    assert KID in exported.key_ids
    with generate_master_key() as new, new.to_text() as text:
        monkeypatch.setenv("DST_ACRA_MASTER_KEY", text.bytes().decode())
        report = await keyloader.aio.rewrap_keystore(settings, to_provider="env", plugin_manager=pm)
        assert report.rewrapped == 1
        monkeypatch.setenv("ACRA_MASTER_KEY", text.bytes().decode())
        imported_dir = tmp_path / "imported"
        imported = await keyloader.aio.import_keystore(
            resolve(keys_dir=imported_dir, keystore="slow-fs"), bundle, secret, plugin_manager=pm
        )
        assert imported.imported, "nothing was imported"
        async with keyloader.aio.open_keystore(keys_dir=keys_dir) as again:
            async with again.use(KID) as key:
                assert key.bytes() == value
    longest = await ticker.stop()
    assert longest < LONGEST_GAP, f"the loop stood still for {longest:.3f} s"


@in_a_loop
async def test_the_data_operations_awaited_never_block_the_loop(
    tmp_path: Path, master: MasterKey, pm: KeyloaderPluginManager, ticker: Ticker
) -> None:
    options: dict[str, Any] = {"keys_dir": tmp_path / ".acrakeys", "plugin_manager": pm}
    async with keyloader.aio.open_keystore(provider="slow", keystore="slow-fs", **options) as keys:
        await keys.generate(["symmetric", "searchable", "storage"], client_id="client1")
        await keys.generate(["poison-record", "poison-record-symmetric"])
        for key_id in (KID, "client/client1/storage"):
            sealed = await keys.encrypt(key_id, b"row", searchable=True, context=b"c")
            assert await keys.decrypt(key_id, sealed, searchable=True, context=b"c") == b"row"
            many = await keys.encrypt_many(key_id, (b"row %d" % n for n in range(5)))
            assert await keys.decrypt_many(key_id, iter(many)) == [b"row %d" % n for n in range(5)]
            bare = await keys.encrypt(key_id, b"row", envelope=False)
            assert not bare.startswith(b"%%%")
        assert (await keys.search_hash("client1", b"row")) == sealed[:33]
        record = await keys.make_poison_record("acrablock", 10)
        assert await keys.is_poison_record(record)
        assert not await keys.is_poison_record(sealed)
    longest = await ticker.stop()
    assert longest < LONGEST_GAP, f"the loop stood still for {longest:.3f} s"


# -- the loop is never blocked -----------------------------------------------------------


@in_a_loop
async def test_a_slow_provider_and_a_slow_store_never_block_the_loop(
    tmp_path: Path, master: MasterKey, pm: KeyloaderPluginManager, ticker: Ticker
) -> None:
    options: dict[str, Any] = {"keys_dir": tmp_path / ".acrakeys", "plugin_manager": pm}
    async with keyloader.aio.open_keystore(provider="slow", keystore="slow-fs", **options) as keys:
        started = time.monotonic()
        await keys.generate(["symmetric"], client_id="client1")  # loads the key: SLOW, writes: SLOW
        async with keys.use(KID):
            pass
        assert time.monotonic() - started >= 2 * SLOW, "the slow parts did not run"
        with await keys.read(KID):
            pass
    longest = await ticker.stop()
    assert longest < LONGEST_GAP, f"the loop stood still for {longest:.3f} s"


@in_a_loop
async def test_a_cached_key_on_a_local_disk_is_served_inline(
    tmp_path: Path, master: MasterKey, pm: KeyloaderPluginManager, plugin: Plugin
) -> None:
    loop_thread = threading.get_ident()
    async with keyloader.aio.open_keystore(keys_dir=tmp_path / "k", plugin_manager=pm) as keys:
        await keys.generate(["symmetric"], client_id="client1")
        assert keys.sync.store.revision_is_cheap, "tmp_path is on a local disk"
        async with keys.use(KID):  # first use: decrypted in a thread, then cached
            pass
        async with keys.use(KID):  # cached: no thread hop
            pass
    uses = [thread for action, thread in plugin.threads if action == "key_used"]
    assert uses[0] != loop_thread
    assert uses[1] == loop_thread


@in_a_loop
async def test_a_store_whose_revision_is_not_cheap_always_hops(
    tmp_path: Path, master: MasterKey, pm: KeyloaderPluginManager, plugin: Plugin
) -> None:
    loop_thread = threading.get_ident()
    options: dict[str, Any] = {"keys_dir": tmp_path / "k", "plugin_manager": pm}
    async with keyloader.aio.open_keystore(keystore="slow-fs", **options) as keys:
        await keys.generate(["symmetric"], client_id="client1")
        for _ in range(2):
            async with keys.use(KID):
                pass
    uses = [thread for action, thread in plugin.threads if action == "key_used"]
    assert uses
    assert loop_thread not in uses


# -- cancellation --------------------------------------------------------------------------


@in_a_loop
async def test_a_cancelled_use_wipes_the_key_it_decrypted(
    tmp_path: Path, master: MasterKey, pm: KeyloaderPluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    wiped: list[SecretBytes] = []
    real_wipe = keyloader.aio._wipe

    def recording_wipe(secret: SecretBytes) -> None:
        real_wipe(secret)
        wiped.append(secret)

    monkeypatch.setattr(keyloader.aio, "_wipe", recording_wipe)
    options: dict[str, Any] = {"keys_dir": tmp_path / "k", "plugin_manager": pm}
    async with keyloader.aio.open_keystore(keystore="slow-fs", **options) as keys:
        await keys.generate(["symmetric"], client_id="client1")

        async def use_it() -> None:
            async with keys.use(KID):
                raise AssertionError("the block ran after its task was cancelled")

        task = asyncio.create_task(use_it())
        await asyncio.sleep(SLOW / 4)  # the thread is reading (SLOW) now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        deadline = time.monotonic() + 5
        while not wiped and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    assert len(wiped) == 1, "the key the thread decrypted was not wiped"
    assert wiped[0].wiped


@in_a_loop
async def test_a_cancelled_generate_is_all_or_nothing(
    tmp_path: Path, master: MasterKey, pm: KeyloaderPluginManager
) -> None:
    options: dict[str, Any] = {"keys_dir": tmp_path / "k", "plugin_manager": pm}
    async with keyloader.aio.open_keystore(keystore="slow-fs", **options) as keys:
        task = asyncio.create_task(keys.generate(["symmetric"], client_id="client1"))
        await asyncio.sleep(SLOW / 4)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    # aclose waited for the write in its thread: the key is there, whole
    async with keyloader.aio.open_keystore(keys_dir=tmp_path / "k", plugin_manager=pm) as keys:
        listed = [info for info in await keys.list() if info.key_id == KID]
        assert len(listed) == 1
        assert all(result.ok for result in await keys.verify())
