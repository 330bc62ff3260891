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
import os
import struct
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from keyloader.bundle_format import BUNDLE_CONTEXT, read_secret_file
from keyloader.keyids import KeyId
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader.themis import scell

from ..memscan import ScanResult
from ..residue import KDF, aes_key_needles, residue_store, scan_service, sealed_needles

CHILD = Path(__file__).resolve().parents[1] / "memchild.py"
CPU_PATHS = {
    "native": {},
    # OpenSSL without AVX-512, VAES and VPCLMULQDQ: the AES-NI/AVX2 code of most servers
    "avx2": {"OPENSSL_ia32cap": ":~0x60000010000"},
}
pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="reads another process's memory through /proc/PID/mem (Linux, root)",
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, MasterKey]]:
    yield from residue_store(tmp_path_factory.mktemp("residue") / ".acrakeys")


def _run(
    keys_dir: Path, master: MasterKey, mode: str, cache_size: int, **env: str
) -> tuple[ScanResult, dict[str, bytes]]:
    """Start the child service, let it run its rounds, push its registers, scan it."""
    with master.to_text() as text:
        environment = {**os.environ, "ACRA_MASTER_KEY": text.bytes().decode(), **env}
    command = [sys.executable, str(CHILD), str(keys_dir), mode, str(cache_size)]
    return scan_service(command, environment, keys_dir, master)


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


@pytest.mark.slow
@pytest.mark.parametrize("scrub", ["1", "0"], ids=["scrubbed", "control"])
def test_rewrap_export_and_import_keep_no_key_material_outside_secret_pages(
    tmp_path: Path, scrub: str
) -> None:
    """An operator's tool in one process: rewrap to a new master key (both keys from
    scrubbed variables), export every key to a bundle, import it into a new store. The
    control leaves the variables in place: the scan finds them there."""
    stores = residue_store(tmp_path / "store" / ".acrakeys")
    keys_dir, master = next(stores)
    with closing(stores), generate_master_key() as new:
        new_key = new.encryption.bytes()
        with master.to_text() as old_text, new.to_text() as new_text:
            env = {
                **os.environ,
                "ACRA_MASTER_KEY": old_text.bytes().decode(),
                "DST_ACRA_MASTER_KEY": new_text.bytes().decode(),
                "KEYLOADER_ENV_SCRUB": scrub,
            }
            extra = {"new master key": new_key, "new master key base64": new_text.bytes()}

        def made(paths: dict[str, str]) -> dict[str, bytes]:
            with read_secret_file(Path(paths["secret"])) as bundle_key:
                key = bundle_key.bytes()
            sealed = Path(paths["bundle"]).read_bytes()
            length = struct.pack("<I", len(sealed) - scell.HEADER_SIZE)
            payload_key = hmac.digest(key, KDF + length + BUNDLE_CONTEXT, "sha256")
            return {
                **sealed_needles(keys_dir, new_key, "rewrapped"),
                **sealed_needles(Path(paths["imported"]), new_key, "imported"),
                **aes_key_needles("bundle key", key),
                **aes_key_needles("bundle message key", payload_key),
            }

        command = [sys.executable, str(CHILD), str(keys_dir), "admin", "0"]
        found, needles = scan_service(command, env, keys_dir, master, extra, before=made)
    assert "bundle message key round key 14" in needles  # the tool's work was looked at
    if scrub == "0":
        assert found.count("new master key base64") >= 1
        assert found.count("master key base64") >= 1
        return
    report = {name: (found.count(name), found.core_count(name)) for name in needles}
    leaked = {name: counts for name, counts in report.items() if counts != (0, 0)}
    assert not leaked, "\n".join(f"{name}: {found.where(name)}" for name in leaked)


def _v2_needles(root: Path, last: dict[str, str]) -> dict[str, bytes]:
    """Every secret a child on Acra's v2 store holds or held: the pair (raw and its text),
    every key of every ring it used (whole, in halves, round keys) with its Secure Cell
    message key, and what its data operations derived."""
    from keyloader.keyrings import format as rings_format
    from keyloader.keyrings.directory import RingDirectory

    from ..acrav2 import manifest, master_pair
    from ..residue import KEY_IDS, aes_key_needles, value_needles

    encryption, signature = master_pair()
    with encryption, signature:
        enc, sig = encryption.bytes(), signature.bytes()
    text = manifest()["master_keys"]["v2"]["ACRA_MASTER_KEY"].encode()
    needles = {"v2 encryption key": enc, "v2 signature key": sig, "v2 pair base64": text}
    store, plain = RingDirectory(root), {}
    for key_id in KEY_IDS:
        kid = KeyId.parse(key_id)
        path = kid.ring_path
        ring = rings_format.open_ring(store.read(path) or b"", path, SecretBytes(sig))
        for key in ring.keys:
            private = kid.kind.keypair
            with rings_format.unseal_key(SecretBytes(enc), path, key, private=private) as k:
                secret = k.bytes()
            if key.seqnum == ring.current:
                plain[key_id] = secret
            name = f"{key_id} #{key.seqnum}"
            if len(secret) == 32:
                needles.update(aes_key_needles(name, secret))
            else:
                needles[name] = secret[13:]
            form = key.data[0]
            sealed = form.private if private else form.symmetric
            assert sealed is not None
            context = rings_format.key_context(path, key.seqnum, private=private)
            size = struct.pack("<I", len(sealed) - scell.HEADER_SIZE)
            message_key = hmac.digest(enc, KDF + size + context, "sha256")
            needles.update(aes_key_needles(f"{name} message key", message_key))
    return {**needles, **value_needles(plain, last)}


@pytest.mark.slow
@pytest.mark.parametrize("cache_size", [1000, 0], ids=["cache-on", "cache-off"])
def test_a_service_on_a_keystore_v2_store_keeps_no_key_material(
    tmp_path: Path, cache_size: int
) -> None:
    """The same service on a copy of Acra's own keystore v2 store, its pair from a
    scrubbed variable: no key, derived key or pair outside secret pages."""
    from ..acrav2 import copy_store, manifest

    root = copy_store("main", tmp_path / "keystore")
    env = {
        **os.environ,
        "ACRA_MASTER_KEY": manifest()["master_keys"]["v2"]["ACRA_MASTER_KEY"],
        "KEYLOADER_ENV_SCRUB": "1",
    }
    command = [sys.executable, str(CHILD), str(root), "single", str(cache_size)]
    with generate_master_key() as unused:
        found, needles = scan_service(
            command, env, root, unused, needles_of=lambda last: _v2_needles(root, last)
        )
    assert "client/client1/symmetric #2 round key 14" in needles
    report = {name: (found.count(name), found.core_count(name)) for name in needles}
    leaked = {name: counts for name, counts in report.items() if counts != (0, 0)}
    assert not leaked, "\n".join(f"{name}: {found.where(name)}" for name in leaked)


@pytest.mark.slow
def test_the_v2_scan_finds_keys_kept_in_ordinary_memory(tmp_path: Path) -> None:
    """The control of the test above: with secret pages off and no scrub, the same scan
    finds the keys, their message keys and the pair's text (so it can fail)."""
    from ..acrav2 import copy_store, manifest

    root = copy_store("main", tmp_path / "keystore")
    env = {
        **os.environ,
        "ACRA_MASTER_KEY": manifest()["master_keys"]["v2"]["ACRA_MASTER_KEY"],
        "KEYLOADER_SECRET_MEMORY": "ordinary",
    }
    command = [sys.executable, str(CHILD), str(root), "single", "1000"]  # keys stay cached
    with generate_master_key() as unused:
        found, _ = scan_service(
            command, env, root, unused, needles_of=lambda last: _v2_needles(root, last)
        )
    assert found.count("client/client1/symmetric #2") >= 1
    assert found.count("v2 pair base64") >= 1
    assert found.count("v2 encryption key") >= 1
