"""A core dump of a keyloader service holds no key material: the memory is looked at.

A child service (tests/memchild.py) runs 200 rounds of ``use()`` and of every data
operation, then waits; it is sent a signal it handles (so its CPU registers land in a
signal frame on its stack) and every readable mapping of ``/proc/PID/mem`` is scanned
(tests/memscan.py) for key material known from an independent unseal in this process:
the master key, every intermediate key, the Secure Cell message key of every key file,
and the data keys and ECDH shared secrets of the child's last values. Counted in full
and as a core dump would hold it (mappings marked ``dd`` left out). Secret pages made
with ``memfd_secret`` cannot be read at all, so a copy outside them is a copy found.
"""

from __future__ import annotations

import hmac
import json
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from keyloader.containers import acrablock, acrastruct, envelope
from keyloader.keyids import key_id_of
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader.stores.filesystem import FilesystemKeyStore
from keyloader.themis import keys as themis_keys
from keyloader.themis import scell

from ..memscan import ScanResult, push_registers, scan

CHILD = Path(__file__).resolve().parents[1] / "memchild.py"
CPU_PATHS = {
    "native": {},
    # OpenSSL without AVX-512, VAES and VPCLMULQDQ: the AES-NI/AVX2 code of most servers
    "avx2": {"OPENSSL_ia32cap": ":~0x60000010000"},
}
KDF = b"\x00\x00\x00\x01Themis secure cell message key\x00"
KEY_IDS = (
    "client/client1/symmetric",
    "client/client1/searchable",
    "client/client1/storage",
    "poison-record",
    "poison-record-symmetric",
)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="reads another process's memory through /proc/PID/mem (Linux, root)",
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, MasterKey]]:
    keys_dir = tmp_path_factory.mktemp("residue") / ".acrakeys"
    with generate_master_key() as master:
        fs = FilesystemKeyStore({"keys_dir": keys_dir})
        with KeyManager(fs, MasterKey(SecretBytes(master.encryption.buffer))) as keys:
            keys.generate(["symmetric", "searchable", "storage"], client_id="client1")
            keys.generate(["poison-record", "poison-record-symmetric"])
        yield keys_dir, master


def _needles(keys_dir: Path, master: MasterKey, last: dict[str, str]) -> dict[str, bytes]:
    """Every secret the child holds or held, from this process's own unseal."""
    mk = master.encryption.bytes()
    with master.to_text() as text:
        needles = {"master key": mk, "master key base64": text.bytes()}
    plain: dict[str, bytes] = {}
    for key_id in KEY_IDS:
        kid = key_id_of(key_id)
        fs = FilesystemKeyStore({"keys_dir": keys_dir})
        with KeyManager(fs, MasterKey(SecretBytes(mk)), cache_size=0) as keys:
            blob = fs.get(kid.store_name)
            with keys.read(key_id) as key:
                plain[key_id] = key.bytes()
        secret = plain[key_id]
        secret = secret if len(secret) == 32 else secret[13:]  # a private scalar
        needles[key_id] = secret
        needles[f"{key_id} first half"] = secret[:16]  # AES-256 round keys 0 and 1: the key
        needles[f"{key_id} second half"] = secret[16:]  # in two registers, maybe apart
        length = struct.pack("<I", len(blob) - scell.HEADER_SIZE)
        needles[f"{key_id} message key"] = hmac.digest(mk, KDF + length + kid.context, "sha256")
    symmetric = plain["client/client1/symmetric"]
    block = acrablock.parse(envelope.unwrap(memoryview(bytes.fromhex(last["acrablock"][66:])))[1])
    with scell.decrypt(symmetric, block.sealed_key) as data_key:
        needles["AcraBlock data key"] = data_key.bytes()
    private = themis_keys.load_private(plain["client/client1/storage"])
    parsed = acrastruct.parse(envelope.unwrap(memoryview(bytes.fromhex(last["acrastruct"])))[1])
    throwaway = themis_keys.load_public(parsed.throwaway_public)
    shared = private.exchange(ec.ECDH(), throwaway)
    needles["ECDH shared secret"] = shared
    with scell.decrypt(shared, parsed.wrapped_key[8:]) as data_key:
        needles["AcraStruct data key"] = data_key.bytes()
    return needles


def _run(
    keys_dir: Path, master: MasterKey, mode: str, cache_size: int, **env: str
) -> tuple[ScanResult, dict[str, bytes]]:
    """Start the child service, let it run its rounds, push its registers, scan it."""
    with master.to_text() as text:
        environment = {**os.environ, "ACRA_MASTER_KEY": text.bytes().decode(), **env}
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(keys_dir), mode, str(cache_size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=environment,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, f"the child failed (exit {child.wait()})"
        push_registers(child.pid)
        needles = _needles(keys_dir, master, json.loads(line))
        found = scan(child.pid, needles)
        assert found.scanned > 10 * 1024 * 1024  # the whole process was read
        return found, needles
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("cpu", list(CPU_PATHS))
@pytest.mark.parametrize(
    ("mode", "cache_size"),
    [("single", 1000), ("single", 0), ("threads", 1000), ("aio", 1000)],
    ids=["cache-on", "cache-off", "8-threads", "aio"],
)
def test_a_service_keeps_no_key_material_outside_secret_pages(
    store: tuple[Path, MasterKey], mode: str, cache_size: int, cpu: str
) -> None:
    found, needles = _run(*store, mode, cache_size, KEYLOADER_ENV_SCRUB="1", **CPU_PATHS[cpu])
    report = {name: (found.count(name), found.core_count(name)) for name in needles}
    leaked = {name: counts for name, counts in report.items() if counts != (0, 0)}
    assert not leaked, "\n".join(f"{name}: {found.where(name)}" for name in leaked)


@pytest.mark.slow
def test_the_scan_finds_keys_kept_in_ordinary_memory(store: tuple[Path, MasterKey]) -> None:
    """The control: with secret pages off and no scrubbing of the variable, the same scan
    finds the keys (so the test above can fail)."""
    found, _ = _run(*store, "single", 1000, KEYLOADER_SECRET_MEMORY="ordinary")
    assert found.count("client/client1/symmetric") >= 1
    assert found.count("master key") >= 1
    assert found.count("master key base64") >= 1


@pytest.mark.slow
def test_with_locked_pages_every_copy_is_in_pages_a_core_dump_leaves_out(
    store: tuple[Path, MasterKey],
) -> None:
    """Without memfd_secret (older kernels), keys live in mlock'ed MADV_DONTDUMP pages:
    root can read them, a core dump cannot hold them, and no copy is anywhere else."""
    found, needles = _run(
        *store, "single", 1000, KEYLOADER_SECRET_MEMORY="locked", KEYLOADER_ENV_SCRUB="1"
    )
    assert found.count("client/client1/symmetric") >= 1  # readable: not memfd_secret
    for name in needles:
        assert found.core_count(name) == 0, found.where(name)
    outside = [hit for hit in found.hits if {"dd", "lo"} - hit.mapping.vmflags]
    assert not outside, "\n".join(
        f"{hit.needle} at {hit.address:#x} in {hit.mapping}" for hit in outside
    )
