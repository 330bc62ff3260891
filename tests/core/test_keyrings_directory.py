"""An Acra keystore v2 directory kept as Acra keeps it: root mode, version file, the
``.lock`` flock shared with Acra, atomic ring writes; and rings changed as Acra changes
them (a new current key, a destroyed key)."""

from __future__ import annotations

import datetime
import fcntl
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from keyloader.errors import InsecurePermissionsError, KeyStoreError, RingFormatError
from keyloader.keyrings import directory as ring_dir
from keyloader.keyrings import edit
from keyloader.keyrings import format as rings_format
from keyloader.secret import SecretBytes
from keyloader.testing import RingBackendContract
from keyloader.themis import keys as themis_keys

from ..acrav2 import copy_store, manifest, master_pair


@pytest.fixture
def store(tmp_path: Path) -> ring_dir.RingDirectory:
    return ring_dir.RingDirectory(copy_store("main", tmp_path / "keystore"))


def test_acras_directory_opens_and_lists_its_rings(store: ring_dir.RingDirectory) -> None:
    assert ring_dir.is_v2(store.root)
    # in Go's filepath.Walk order, as `acra-keys list` printed them
    assert store.list() == [entry["KeyID"] for entry in manifest()["v2"]["list_keys"]]
    _, signature = master_pair()
    with store.locked(exclusive=False):
        for path in store.list():
            data = store.read(path)
            assert data is not None
            assert rings_format.open_ring(data, path, signature).purpose == path
    assert store.read("client/nobody/storage") is None


def test_the_root_must_be_0700_and_hold_acras_version(tmp_path: Path) -> None:
    root = copy_store("main", tmp_path / "keystore")
    root.chmod(0o755)
    with pytest.raises(InsecurePermissionsError, match="chmod 700"):
        ring_dir.RingDirectory(root)
    root.chmod(0o700)
    (root / "version").write_bytes(b"Acra Keystore v3")
    with pytest.raises(KeyStoreError, match="invalid keystore version"):
        ring_dir.RingDirectory(root)
    assert not ring_dir.is_v2(root)
    (root / "version").unlink()
    with pytest.raises(KeyStoreError, match="no version file"):
        ring_dir.RingDirectory(root)
    v1 = Path(__file__).parents[1] / "acra_fixtures" / "v1" / "keystore"
    assert not ring_dir.is_v2(v1)


def test_a_new_directory_is_made_as_acra_makes_one(tmp_path: Path) -> None:
    created = ring_dir.RingDirectory.create(tmp_path / "new" / ".acrakeys")
    assert (created.root / "version").read_bytes() == b"Acra Keystore v2"
    assert created.root.stat().st_mode & 0o777 == 0o700
    assert created.list() == []
    with created.locked(exclusive=True):
        created.write("client/client1/storage-sym", b"ring bytes")
    assert (created.root / ".lock").exists()
    written = created.root / "client" / "client1" / "storage-sym.keyring"
    assert written.read_bytes() == b"ring bytes"
    assert written.stat().st_mode & 0o777 == 0o600
    assert written.parent.stat().st_mode & 0o777 == 0o700


def test_a_write_replaces_the_ring_and_clears_what_a_dead_writer_left(
    store: ring_dir.RingDirectory,
) -> None:
    path = "audit-log"
    before = store.revision(path)
    stale = store.ring_file(path).with_name("audit-log.keyring.new")
    stale.write_bytes(b"half a ring")  # Acra would refuse to write this ring again
    with store.locked(exclusive=True):
        store.write(path, b"new ring")
    assert not stale.exists()
    assert store.read(path) == b"new ring"
    assert store.revision(path) != before
    assert store.list().count(path) == 1


def test_bad_ring_paths_are_refused(store: ring_dir.RingDirectory) -> None:
    for path in ("", "../x", "client//storage", "a/./b", "nul\0"):
        with pytest.raises(KeyStoreError, match="invalid key ring path"):
            store.ring_file(path)


HOLDER = r"""
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
"""


def test_the_lock_is_acras_flock_on_dot_lock(store: ring_dir.RingDirectory) -> None:
    """Another process holding LOCK_EX on .lock (as Acra's writer does) keeps a reader
    out until it lets go; a reader's LOCK_SH keeps an exclusive flock out."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store.root / ".lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdin is not None
    try:
        assert holder.stdout.readline().strip() == "held"
        entered = threading.Event()

        def reader() -> None:
            with store.locked(exclusive=False):
                entered.set()

        thread = threading.Thread(target=reader)
        thread.start()
        assert not entered.wait(0.3)  # still out while the other process holds it
        holder.stdin.write("\n")
        holder.stdin.flush()
        thread.join(timeout=10)
        assert entered.is_set()
    finally:
        holder.kill()
        holder.wait(timeout=10)
    with store.locked(exclusive=False):
        fd = os.open(store.root / ".lock", os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)


# -- rings changed as Acra changes them ----------------------------------------------------


def test_new_keys_get_the_next_seqnum_and_become_current() -> None:
    encryption, signature = master_pair()
    path = "client/new-client/storage-sym"
    now = datetime.datetime(2026, 12, 6, 4, 1, 2, tzinfo=datetime.UTC)
    first, second = SecretBytes(os.urandom(32)), SecretBytes(os.urandom(32))
    ring = edit.add_key(edit.empty_ring(path), path, encryption, first, now=now)
    ring = edit.add_key(ring, path, encryption, second, now=now)
    assert [key.seqnum for key in ring.keys] == [1, 2]
    assert ring.current == 2
    assert all(key.state == rings_format.STATE_PRE_ACTIVE for key in ring.keys)
    assert ring.keys[0].valid_until - ring.keys[0].valid_since == edit.CRYPTOPERIOD
    signed = rings_format.encode_container(
        rings_format.CONTENT_KEY_RING,
        now,
        rings_format.encode_ring(ring),
        [signature],
        rings_format.ring_signature_context(path),
    )
    again = rings_format.open_ring(signed, path, signature)
    assert again == ring
    for key, secret in zip(again.keys, (first, second), strict=True):
        with rings_format.unseal_key(encryption, path, key, private=False) as opened:
            assert opened == secret
    destroyed = edit.destroy_key(again, 1)
    assert destroyed.keys[0].destroyed
    assert destroyed.keys[0].data == ()
    assert destroyed.current == 2
    with pytest.raises(RingFormatError, match="destroyed"):
        rings_format.unseal_key(encryption, path, destroyed.keys[0], private=False)


def test_a_keypair_key_keeps_its_public_half_in_the_clear() -> None:
    encryption, _ = master_pair()
    path = "client/new-client/storage"
    private, public = themis_keys.generate_keypair()
    with private:
        ring = edit.add_key(edit.empty_ring(path), path, encryption, private, public)
        form = ring.keys[0].data[0]
        assert form.format == rings_format.FORMAT_KEY_PAIR
        assert form.public == public
        with rings_format.unseal_key(encryption, path, ring.keys[0], private=True) as opened:
            assert opened == private
    with pytest.raises(RingFormatError, match="no symmetric part"):
        rings_format.unseal_key(encryption, path, ring.keys[0], private=False)


class TestRingDirectoryContract(RingBackendContract):
    """The directory backend passes the contract every keystore v2 backend passes."""

    @pytest.fixture
    def rings(self, tmp_path: Path) -> ring_dir.RingDirectory:
        return ring_dir.RingDirectory.create(tmp_path / "keystore")
