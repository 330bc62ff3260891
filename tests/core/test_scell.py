"""Themis Secure Cell Seal (keyloader.scell): real Themis vectors, round trips, tampering."""

from __future__ import annotations

import array
import base64
import hashlib
import hmac
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from keyloader.errors import ConfigError, IntegrityError
from keyloader.secret import SecretBytes
from keyloader.secret_mappings import address_of
from keyloader.themis import scell

b64 = base64.b64decode

# Seal-mode blobs produced by Themis itself with a symmetric key (not a passphrase:
# those have alg 0x41010100 and are out of scope). Repository: github.com/cossacklabs/themis
# (commit dc37d03de5069874c2a33223fc947c23b2fa9812). Themis only checks that they decrypt;
# a passing GCM tag proves key derivation, layout and AAD, and fixes the plaintext.
THEMIS_VECTORS = [
    pytest.param(
        # docs/examples/python/scell_test.py (same blob in docs/examples/js/secure_cell.js)
        b"no, this is not a valid master key",
        b"",
        "AAEBQAwAAAAQAAAAEQAAAC0fCd2mOIxlDUORXz8+qCKuHCXcDii4bMF8OjOCOqsKEdV4+Ga2xTHPMupFvg==",
        b"encrypted message",
        id="python-example-no-context",
    ),
    pytest.param(
        # docs/examples/react-native/ThemisTest/src/tests/04_decryptWithKey.js
        b64("CiHPUks38qU5BYoiQY+tNWX+EcExjG8ckySRvsGPDf0="),
        b"",
        "AAEBQAwAAAAQAAAADgAAAIe+NTvInzZLUobUZR1bxh23A+Jd5Hxdv0OkwJxVplXnsGMxR0EdCTATew==",
        b"Hello, Themis!",
        id="react-native-test-no-context",
    ),
    pytest.param(
        # docs/examples/react-native/react-native-example/App.js ("from Java")
        b64("Z7BY52XyuM0ss1Ma/O+4Fy9mal5lvMDRyK2nZpuA4U0="),
        b"Java context",
        "AAEBQAwAAAAQAAAAEwAAAFQFGDh5JAJFNzoXDi3SGSWqNfccYlWc/RiBf3QL8YtaT3gRlj8whlx2umdrsFE1",
        b"Hello, Java Themis!",
        id="java-with-context",
    ),
    pytest.param(
        # docs/examples/react-native/react-native-example/App.js ("from Python")
        b64("pGFN54NKRpF53bpf5YtO5PmDVT9N/Ep9Hm0N0w8UXnU="),
        b"Python context",
        "AAEBQAwAAAAQAAAAEAAAAEIBP7ow0hZg7j1mv0P+S9mYC+H0AJ172CiBOTj1Sqlxzz9wboZCtTnnNwi9",
        b"Hello, PyThemis!",
        id="python-with-context",
    ),
    pytest.param(
        # docs/examples/react-native/react-native-example/App.js ("from Obj-C")
        b64("B+L00zvIOBh/qSTI0hAE2S2unSHhS+0EHspVCToi3oA="),
        b"test",
        "AAEBQAwAAAAQAAAAEAAAACd7hM2MWqiWu5SDNtzvgjcvN3PBY+VBg9kJQB8R1cwcXfOy8sY75+3pRCe0",
        b"Hello, Zombies! ",
        id="objc-with-context",
    ),
    pytest.param(
        # tools/afl/input/scell_seal_decrypt/ok_short_message.dat (made by gothemis,
        # tools/afl/generate/scell_seal_decrypt.go): a 3-byte key
        b"key",
        b"context",
        "AAEBQAwAAAAQAAAABwAAAJsylQSeBhxQ2XopaEFbFY/xCnUALjF2+d8zU0lgHmzEEYew",
        b"message",
        id="gothemis-afl-short-key",
    ),
]

# tests/themis/themis_secure_cell.c, secure_cell_0_9_6_compatibility(): Themis 0.9.6 put the
# message length into the KDF as 64 bits. The Seal blob as is, and the Token Protect pair
# (auth token + ciphertext) joined into the Seal layout.
LEGACY_KEY = bytes.fromhex("08BCFBF38DB4D3D90B2173885CC2D9A39DA9464E03E07849569415B8D5C0CA8C")
LEGACY_CONTEXT = bytes.fromhex("AA5F1462495C59EB")
LEGACY_MESSAGE = b"message encrypted with Themis 0.9.6"
LEGACY_SEAL = bytes.fromhex(
    "000101400C0000001000000023000000F63BAB8DB897FA1EB12C5A898C1A8662ABDDEE56E8BFAECDCEBF"
    "C012537A0EB71A509A8A81E9D696EA5CA7F935005F2D7846F9D086B742F076CEC75651C0E9"
)
LEGACY_TOKEN_AS_SEAL = bytes.fromhex(
    "000101400C0000001000000023000000DB291F5F25F0F2105C0C27B4989C5F0BCC3F9B2971D0BAB06FAF7547"
    "0D8C96FF8A67F54BBFDD2016D88C0749D94A06A07EDD90EB1A3940F792141F4591136F"
)

KEY = bytes(range(32))
FAST = settings(deadline=None, derandomize=True, max_examples=60)

keys = st.binary(min_size=1, max_size=80)
plaintexts = st.binary(min_size=1, max_size=300)
contexts = st.binary(max_size=64)


def reference_open(key: bytes, blob: bytes, context: bytes, length_format: str = "<I") -> bytes:
    """An independent Themis Seal decryption, written from the C source, for cross-checks."""
    alg, iv_len, tag_len, size = struct.unpack_from("<4I", blob)
    assert (alg, iv_len, tag_len, size) == (0x40010100, 12, 16, len(blob) - 44)
    label = b"\x00\x00\x00\x01" + b"Themis secure cell message key" + b"\x00"
    message_key = hmac.new(key, label + struct.pack(length_format, size) + context, "sha256")
    iv, tag, ciphertext = blob[16:28], blob[28:44], blob[44:]
    return AESGCM(message_key.digest()).decrypt(iv, ciphertext + tag, context or None)


def hmac_key_block(key: bytes) -> bytes:
    """The 64-byte block HMAC-SHA256 really keys with: long keys hashed, then zero-padded."""
    return (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\x00")


def flipped(blob: bytes, bit: int) -> bytes:
    """``blob`` with one bit inverted."""
    out = bytearray(blob)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def with_field(blob: bytes, index: int, value: int) -> bytes:
    """``blob`` with header field ``index`` (0 alg, 1 iv_len, 2 tag_len, 3 msg_len) replaced."""
    out = bytearray(blob)
    struct.pack_into("<I", out, 4 * index, value)
    return bytes(out)


@pytest.fixture
def zeroed_buffers(monkeypatch: pytest.MonkeyPatch) -> list[memoryview]:
    """A view of every buffer ``SecretBytes.zeroed`` hands out during the test (a derived
    view of the secret-page slot: it still reads the slot after a wipe gives it back)."""
    made: list[memoryview] = []
    original = SecretBytes.zeroed.__func__  # type: ignore[attr-defined]

    def recording(cls: type[SecretBytes], size: int) -> SecretBytes:
        secret: SecretBytes = original(cls, size)
        made.append(secret.buffer[:])
        return secret

    monkeypatch.setattr(SecretBytes, "zeroed", classmethod(recording))
    return made


# --- real Themis data -------------------------------------------------------------------


@pytest.mark.parametrize(("key", "context", "blob", "message"), THEMIS_VECTORS)
def test_decrypts_themis_vectors(key: bytes, context: bytes, blob: str, message: bytes) -> None:
    plain = scell.decrypt(key, b64(blob), context)
    assert isinstance(plain, SecretBytes)
    assert plain == message
    assert reference_open(key, b64(blob), context) == message


@pytest.mark.parametrize(("key", "context", "blob", "message"), THEMIS_VECTORS)
def test_themis_vectors_are_bound_to_key_and_context(
    key: bytes, context: bytes, blob: str, message: bytes
) -> None:
    with pytest.raises(IntegrityError):
        scell.decrypt(key, b64(blob), context + b"x")
    with pytest.raises(IntegrityError):
        scell.decrypt(key + b"\x01", b64(blob), context)
    with pytest.raises(IntegrityError):
        scell.decrypt(flipped(key, 0), b64(blob), context)


def test_themis_wrong_key_vector_fails() -> None:
    # The "wrong key" case of docs/examples/react-native/ThemisTest/src/tests/04_decryptWithKey.js
    wrong_key = b64("m2kTB09QqLjBOv71wr9EhoqDdveHX1CAwTimZPcC8fA=")
    blob = b64("AAEBQAwAAAAQAAAADgAAAIe+NTvInzZLUobUZR1bxh23A+Jd5Hxdv0OkwJxVplXnsGMxR0EdCTATew==")
    with pytest.raises(IntegrityError):
        scell.decrypt(wrong_key, blob)


@pytest.mark.parametrize("blob", [LEGACY_SEAL, LEGACY_TOKEN_AS_SEAL], ids=["seal", "token"])
def test_themis_0_9_6_legacy_kdf_is_refused(blob: bytes) -> None:
    # The vectors are genuine 0.9.6 blobs (they open with the 64-bit length KDF) ...
    assert reference_open(LEGACY_KEY, blob, LEGACY_CONTEXT, "<Q") == LEGACY_MESSAGE
    # ... and keyloader, like Themis built without SCELL_COMPAT, refuses them.
    with pytest.raises(IntegrityError):
        scell.decrypt(LEGACY_KEY, blob, LEGACY_CONTEXT)


# --- what encrypt produces --------------------------------------------------------------


def test_encrypt_layout_matches_themis() -> None:
    blob = scell.encrypt(KEY, b"secret bytes", b"client1")
    assert struct.unpack_from("<4I", blob) == (0x40010100, 12, 16, 12)
    assert len(blob) == 16 + 12 + 16 + 12
    assert reference_open(KEY, blob, b"client1") == b"secret bytes"


def test_encrypt_uses_a_fresh_iv() -> None:
    first = scell.encrypt(KEY, b"same message", b"ctx")
    second = scell.encrypt(KEY, b"same message", b"ctx")
    assert first[16:28] != second[16:28]
    assert first != second


@FAST
@given(key=keys, plaintext=plaintexts, context=contexts)
def test_round_trip(key: bytes, plaintext: bytes, context: bytes) -> None:
    blob = scell.encrypt(key, plaintext, context)
    assert len(blob) == 44 + len(plaintext)
    with scell.decrypt(key, blob, context) as plain:
        assert plain == plaintext
    assert reference_open(key, blob, context) == plaintext


@FAST
@given(key=keys, plaintext=plaintexts, context=contexts)
def test_round_trip_with_mutable_and_view_inputs(
    key: bytes, plaintext: bytes, context: bytes
) -> None:
    blob = scell.encrypt(bytearray(key), memoryview(plaintext), bytearray(context))
    assert scell.decrypt(memoryview(key), bytearray(blob), memoryview(context)) == plaintext
    assert scell.decrypt(SecretBytes(key).buffer, memoryview(blob), context) == plaintext


def test_accepts_multibyte_item_views() -> None:
    words = array.array("I", [0x01020304, 0x05060708])
    blob = scell.encrypt(memoryview(words), memoryview(words), b"ctx")
    assert scell.decrypt(words.tobytes(), blob, b"ctx") == words.tobytes()
    assert scell.decrypt(words, array.array("B", blob), b"ctx") == words.tobytes()  # type: ignore[arg-type]


def test_strided_views() -> None:
    blob = scell.encrypt(KEY, b"data", b"ctx")
    spread = bytes(b for x in blob for b in (x, 0xFF))  # the blob in every other byte
    assert memoryview(spread)[::2] == blob
    assert scell.decrypt(KEY, memoryview(spread)[::2], b"ctx") == b"data"
    with pytest.raises(ConfigError, match="key must be bytes-like"):
        scell.decrypt(memoryview(KEY + KEY)[::2], blob, b"ctx")


@FAST
@given(key=keys, plaintext=plaintexts, context=contexts, other=contexts)
def test_context_binds_the_blob(key: bytes, plaintext: bytes, context: bytes, other: bytes) -> None:
    assume(other != context)
    blob = scell.encrypt(key, plaintext, context)
    with pytest.raises(IntegrityError):
        scell.decrypt(key, blob, other)


@FAST
@given(key=keys, other=keys, plaintext=plaintexts, context=contexts)
def test_wrong_key_fails(key: bytes, other: bytes, plaintext: bytes, context: bytes) -> None:
    assume(hmac_key_block(other) != hmac_key_block(key))
    blob = scell.encrypt(key, plaintext, context)
    with pytest.raises(IntegrityError):
        scell.decrypt(other, blob, context)


def test_keys_equal_up_to_trailing_zeros_are_one_hmac_key() -> None:
    # An HMAC property Themis shares: keys are zero-padded to the SHA-256 block.
    blob = scell.encrypt(b"short key", b"data", b"ctx")
    assert scell.decrypt(b"short key\x00\x00", blob, b"ctx") == b"data"
    assert reference_open(b"short key\x00", blob, b"ctx") == b"data"


# --- tampering ------------------------------------------------------------------------


def test_every_single_bit_flip_fails() -> None:
    blob = scell.encrypt(KEY, b"k" * 32, b"client1")
    for bit in range(len(blob) * 8):
        with pytest.raises(IntegrityError):
            scell.decrypt(KEY, flipped(blob, bit), b"client1")


def test_every_truncation_and_extension_fails() -> None:
    blob = scell.encrypt(KEY, b"k" * 32, b"client1")
    for length in range(len(blob)):
        with pytest.raises(IntegrityError):
            scell.decrypt(KEY, blob[:length], b"client1")
    for extra in (b"\x00", b"k", bytes(16), blob):
        with pytest.raises(IntegrityError):
            scell.decrypt(KEY, blob + extra, b"client1")
        with pytest.raises(IntegrityError):
            scell.decrypt(KEY, extra + blob, b"client1")


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (0, 0),
        (0, 0x40010080),  # AES-128-GCM: not what keystore v1 writes
        (0, 0x400100C0),  # AES-192-GCM
        (0, 0x41010100),  # the passphrase (PBKDF2) Seal
        (0, 0x40010101),
        (0, 0xFFFFFFFF),
        (1, 0),
        (1, 11),
        (1, 16),
        (1, 0xFFFFFFFF),
        (2, 0),
        (2, 12),
        (2, 17),
        (2, 0xFFFFFFFF),
        (3, 0),
        (3, 31),
        (3, 33),
        (3, 0xFFFFFFFF),
    ],
)
def test_altered_header_fields_fail(index: int, value: int) -> None:
    blob = scell.encrypt(KEY, b"k" * 32, b"client1")
    with pytest.raises(IntegrityError):
        scell.decrypt(KEY, with_field(blob, index, value), b"client1")


def test_swapped_tag_and_ciphertext_fails() -> None:
    blob = scell.encrypt(KEY, b"k" * 16, b"ctx")
    swapped = blob[:28] + blob[44:] + blob[28:44]
    with pytest.raises(IntegrityError):
        scell.decrypt(KEY, swapped, b"ctx")


@FAST
@given(blob=st.binary(max_size=200), key=keys, context=contexts)
def test_arbitrary_bytes_raise_only_integrity_error(
    blob: bytes, key: bytes, context: bytes
) -> None:
    with pytest.raises(IntegrityError):
        scell.decrypt(key, blob, context)


@FAST
@given(body=st.binary(min_size=28, max_size=200), key=keys, context=contexts)
def test_arbitrary_bodies_behind_a_valid_header_raise_only_integrity_error(
    body: bytes, key: bytes, context: bytes
) -> None:
    blob = struct.pack("<4I", 0x40010100, 12, 16, len(body) - 28) + body
    with pytest.raises(IntegrityError):
        scell.decrypt(key, blob, context)


@pytest.mark.parametrize("blob", [None, "AAEBQAwAAAAQ", 12, [0, 1, 1, 64], object()])
def test_non_bytes_blob_is_integrity_error(blob: object) -> None:
    with pytest.raises(IntegrityError):
        scell.decrypt(KEY, blob, b"ctx")  # type: ignore[arg-type]


def test_failure_message_never_contains_key_material() -> None:
    key = b"super secret master key material!!"
    blob = scell.encrypt(key, b"intermediate key bytes", b"client1")
    with pytest.raises(IntegrityError) as caught:
        scell.decrypt(key[:-1] + b"?", blob, b"client1")
    text = str(caught.value) + repr(caught.value)
    assert "wrong master key" in text
    for secret in (key, key[:-1] + b"?", b"intermediate key bytes"):
        for form in (secret.decode(), secret.hex(), base64.b64encode(secret).decode()):
            assert form not in text
    assert caught.value.__cause__ is None


# --- the result buffer -----------------------------------------------------------------


def test_result_is_a_wipeable_secret() -> None:
    plain = scell.decrypt(KEY, scell.encrypt(KEY, b"0123456789abcdef", b"c"), b"c")
    assert isinstance(plain, SecretBytes)
    assert plain.bytes() == b"0123456789abcdef"
    assert "0123456789abcdef" not in repr(plain)
    plain.wipe()
    assert plain.wiped


def test_failed_decrypt_leaves_no_partial_plaintext(zeroed_buffers: list[memoryview]) -> None:
    plaintext = b"P" * 48
    blob = scell.encrypt(KEY, plaintext, b"ctx")
    bad_tag = flipped(blob, 28 * 8)  # ciphertext intact: AES-CTR would yield the plaintext
    with pytest.raises(IntegrityError):
        scell.decrypt(KEY, bad_tag, b"ctx")
    assert zeroed_buffers, "decrypt should fill a SecretBytes buffer in place"
    assert all(not any(buf) for buf in zeroed_buffers)
    assert all(b"P" not in buf for buf in zeroed_buffers)


def test_successful_decrypt_fills_the_buffer_in_place(zeroed_buffers: list[memoryview]) -> None:
    blob = scell.encrypt(KEY, b"in place", b"ctx")
    plain = scell.decrypt(KEY, blob, b"ctx")
    assert zeroed_buffers == [bytearray(b"in place")]
    assert address_of(plain.buffer) == address_of(zeroed_buffers[0])


# --- bad arguments --------------------------------------------------------------------


def test_empty_plaintext_is_refused() -> None:
    with pytest.raises(ConfigError, match="plaintext is empty"):
        scell.encrypt(KEY, b"", b"ctx")


@pytest.mark.parametrize("key", [b"", bytearray(), memoryview(b"")])
def test_empty_key_is_refused(key: bytes) -> None:
    with pytest.raises(ConfigError, match="key is empty"):
        scell.encrypt(key, b"data", b"ctx")
    with pytest.raises(ConfigError, match="key is empty"):
        scell.decrypt(key, scell.encrypt(KEY, b"data", b"ctx"), b"ctx")


def test_wiped_key_is_refused() -> None:
    secret = SecretBytes(KEY)
    blob = scell.encrypt(secret.buffer, b"data", b"ctx")
    secret.wipe()
    with pytest.raises(ConfigError, match="wiped"):
        scell.decrypt(secret.buffer, blob, b"ctx")


@pytest.mark.parametrize("bad", ["text", None, 7])
def test_non_bytes_arguments_are_config_errors(bad: object) -> None:
    blob = scell.encrypt(KEY, b"data", b"ctx")
    with pytest.raises(ConfigError, match="key must be bytes-like"):
        scell.encrypt(bad, b"data")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="key must be bytes-like"):
        scell.decrypt(bad, blob)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="plaintext must be bytes-like"):
        scell.encrypt(KEY, bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="context must be bytes"):
        scell.encrypt(KEY, b"data", bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="context must be bytes"):
        scell.decrypt(KEY, blob, bad)  # type: ignore[arg-type]
