"""The previous master key: reads fall back to it while a store is half-way through a rewrap."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keyloader import api
from keyloader.errors import IntegrityError, MasterKeyNotFoundError
from keyloader.keyids import classify
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.rewrap import rewrap_keys
from keyloader.secret import SecretBytes
from keyloader.stores.filesystem import FilesystemKeyStore
from keyloader.themis import scell

Slot = tuple[str, int]  # key id, index


def copy(key: MasterKey) -> MasterKey:
    return MasterKey(SecretBytes(key.encryption.buffer))


def text(key: MasterKey) -> str:
    return key.to_text().bytes().decode()


@pytest.fixture
def old() -> Iterator[MasterKey]:
    with generate_master_key() as key:
        yield key


@pytest.fixture
def new() -> Iterator[MasterKey]:
    with generate_master_key() as key:
        yield key


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def expected(keys_dir: Path, old: MasterKey) -> dict[Slot, bytes]:
    """A store sealed with ``old``: 6 clients (one rotated twice), audit log; all plaintexts."""
    with KeyManager(FilesystemKeyStore({"keys_dir": keys_dir}), copy(old)) as manager:
        for i in range(6):
            manager.generate(["symmetric", "searchable"], client_id=f"client{i}")
        manager.rotate("client/client0/symmetric")
        manager.rotate("client/client0/symmetric")
        manager.generate(["audit-log"])
        values: dict[Slot, bytes] = {}
        for info in manager.list(rotated=True):
            assert info.key_id is not None
            assert info.index is not None
            with manager.use(info.key_id, info.index) as key:
                values[(info.key_id, info.index)] = key.bytes()
    return values


@pytest.fixture
def half_done(keys_dir: Path, old: MasterKey, new: MasterKey, expected: dict[Slot, bytes]) -> int:
    """Interrupt a rewrap to ``new`` after half of the writes; return how many moved."""
    slots = len(expected)
    stop_at = slots + slots // 2  # the survey's steps, then half of the writes

    def interrupt(done: int, total: int) -> None:
        if done == stop_at:
            raise KeyboardInterrupt

    with KeyManager(FilesystemKeyStore({"keys_dir": keys_dir}), copy(old)) as manager:
        with pytest.raises(KeyboardInterrupt):
            rewrap_keys(manager, new, progress=interrupt)
    under_new = sum(1 for opened in _opened_by(keys_dir, new).values() if opened)
    assert 0 < under_new < slots  # really half-way
    return under_new


def _opened_by(keys_dir: Path, key: MasterKey) -> dict[str, bool]:
    store = FilesystemKeyStore({"keys_dir": keys_dir})
    result: dict[str, bool] = {}
    for blob in store.list():
        kid = classify(blob.name).key_id
        assert kid is not None
        for ts in ([None] if blob.current else []) + list(blob.history):
            data = store.get(blob.name) if ts is None else store.get_history(blob.name, ts)
            try:
                scell.decrypt(key.encryption.buffer, data, kid.context).wipe()
                result[f"{blob.name}/{ts}"] = True
            except IntegrityError:
                result[f"{blob.name}/{ts}"] = False
    return result


def read_all(manager: KeyManager, slots: dict[Slot, bytes]) -> dict[Slot, bytes]:
    found: dict[Slot, bytes] = {}
    for key_id, index in slots:
        with manager.use(key_id, index) as key:
            found[(key_id, index)] = key.bytes()
    return found


def open_with(keys_dir: Path, current: str, previous: str | None, **kwargs: Any) -> KeyManager:
    """Through the API, as an application would: env variables name the keys."""
    extra: dict[str, Any] = {}
    if previous is not None:
        extra = {"previous_provider": "env", "previous_options": {"variable": previous}}
    return api.open_keystore(
        provider="env",
        provider_options={"variable": current},
        keys_dir=keys_dir,
        **extra,
        **kwargs,
    )


@pytest.fixture
def variables(monkeypatch: pytest.MonkeyPatch, old: MasterKey, new: MasterKey) -> None:
    monkeypatch.setenv("OLD_KEY", text(old))
    monkeypatch.setenv("NEW_KEY", text(new))


@pytest.mark.usefixtures("variables", "half_done")
@pytest.mark.parametrize(("current", "previous"), [("NEW_KEY", "OLD_KEY"), ("OLD_KEY", "NEW_KEY")])
@pytest.mark.parametrize("cache_size", [0, 64])
def test_use_works_on_a_half_rewrapped_store(
    keys_dir: Path, expected: dict[Slot, bytes], current: str, previous: str, cache_size: int
) -> None:
    with open_with(keys_dir, current, previous, cache_size=cache_size) as manager:
        assert read_all(manager, expected) == expected
        assert read_all(manager, expected) == expected  # again (from the cache, if on)
        assert all(r.ok for r in manager.verify())
        assert all(info.decrypts for info in manager.list(rotated=True, check=True))


@pytest.mark.usefixtures("variables")
def test_without_the_previous_key_half_of_the_keys_fail(
    keys_dir: Path, expected: dict[Slot, bytes], half_done: int, new: MasterKey, old: MasterKey
) -> None:
    with open_with(keys_dir, "NEW_KEY", None) as manager:
        results = manager.verify()
    failed = [r for r in results if not r.ok]
    assert len(failed) == len(expected) - half_done
    for result in failed:
        assert result.error is not None
        assert f"cannot decrypt with master key {new.fingerprint}" in result.error
        for secret in (old.encryption.bytes(), new.encryption.bytes()):
            assert base64.b64encode(secret).decode() not in result.error
            assert secret.hex() not in result.error


@pytest.mark.usefixtures("variables", "half_done")
def test_a_blob_neither_key_opens_names_both_fingerprints(
    keys_dir: Path, old: MasterKey, new: MasterKey
) -> None:
    with generate_master_key() as stranger:
        blob = scell.encrypt(stranger.encryption.buffer, b"s" * 32, b"client5")
    (keys_dir / "client5_hmac").write_bytes(blob)
    with (
        open_with(keys_dir, "NEW_KEY", "OLD_KEY") as manager,
        pytest.raises(IntegrityError) as caught,
    ):
        manager.read("client/client5/searchable")
    message = str(caught.value)
    assert new.fingerprint in message
    assert f"nor with the previous master key {old.fingerprint}" in message
    assert "client5_hmac" in message


@pytest.mark.usefixtures("variables")
def test_the_previous_key_is_loaded_only_when_needed(
    keys_dir: Path, expected: dict[Slot, bytes], old: MasterKey, new: MasterKey
) -> None:
    with KeyManager(FilesystemKeyStore({"keys_dir": keys_dir}), copy(old)) as manager:
        rewrap_keys(manager, new)
    # the previous key's variable is unset: nothing needs it once the rewrap is done
    with open_with(keys_dir, "NEW_KEY", "UNSET_OLD_KEY") as manager:
        assert read_all(manager, expected) == expected
    (keys_dir / "client1_hmac").write_bytes(
        scell.encrypt(old.encryption.buffer, b"o" * 32, b"client1")
    )
    with (
        open_with(keys_dir, "NEW_KEY", "UNSET_OLD_KEY") as manager,
        pytest.raises(MasterKeyNotFoundError, match="UNSET_OLD_KEY"),
    ):
        manager.read("client/client1/searchable")


@pytest.mark.usefixtures("variables", "half_done")
def test_previous_key_from_the_config_file(
    keys_dir: Path, expected: dict[Slot, bytes], tmp_path: Path
) -> None:
    config = tmp_path / "keyloader.toml"
    config.write_text('[previous]\nprovider = "env"\nvariable = "OLD_KEY"\n')
    with api.open_keystore(
        provider="env", provider_options={"variable": "NEW_KEY"}, keys_dir=keys_dir, config=config
    ) as manager:
        assert read_all(manager, expected) == expected


@pytest.mark.usefixtures("variables", "half_done")
def test_resuming_with_the_rotated_configuration_finishes(
    keys_dir: Path, expected: dict[Slot, bytes], old: MasterKey, new: MasterKey
) -> None:
    """Rerunning the interrupted rewrap resumes it; then the new key alone reads everything."""
    with open_with(keys_dir, "OLD_KEY", None) as manager:
        report = rewrap_keys(manager, new)
    assert report.skipped > 0
    assert report.rewrapped > 0
    assert report.complete
    with open_with(keys_dir, "NEW_KEY", None) as manager:
        assert read_all(manager, expected) == expected
