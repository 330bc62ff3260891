"""Master keys: parsing (v1, v2, errors), the MasterKey object, generation, key files."""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import json
import os
import pickle
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyloader.errors import (
    ConfigError,
    InvalidMasterKeyError,
    KeyExistsError,
    KeyloaderError,
    MasterKeyError,
    MasterKeyNotFoundError,
)
from keyloader.masterkey import (
    MIN_KEY_LENGTH,
    MasterKey,
    fingerprint,
    generate_master_key,
    master_key_from_bytes,
    master_key_from_file_content,
    master_key_from_raw,
    parse_master_key,
    write_master_key_file,
)
from keyloader.secret import SecretBytes

SOURCE = "environment variable TEST_MASTER_KEY"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def v2_text(encryption: bytes, signature: bytes, names: dict[str, str] | None = None) -> str:
    names = names or {}
    document = {
        names.get("encryption", "encryption"): b64(encryption),
        names.get("signature", "signature"): b64(signature),
    }
    return b64(json.dumps(document).encode())


def forms(secret: bytes) -> list[str]:
    """Ways key bytes could leak into a message."""
    return [b64(secret), secret.hex(), secret.decode("latin-1"), repr(secret)[2:-1]]


def assert_clean(exc: BaseException, *secrets: bytes) -> None:
    """The error names the source, carries no chained cause, and leaks nothing."""
    message = str(exc)
    assert exc.__cause__ is None
    assert exc.__context__ is None
    for secret in filter(None, secrets):
        for form in forms(secret):
            assert form not in message
            assert form not in repr(exc.args)


# -- fingerprint ---------------------------------------------------------------------------


def test_fingerprint_is_16_hex_digits_of_the_documented_hmac() -> None:
    key = os.urandom(32)
    expected = hmac.new(key, b"keyloader fingerprint", hashlib.sha256).hexdigest()[:16]
    assert fingerprint(key) == expected
    assert fingerprint(bytearray(key)) == expected
    assert fingerprint(memoryview(key)) == expected
    assert fingerprint(os.urandom(32)) != expected


def test_v2_fingerprint_is_that_of_the_encryption_key() -> None:
    with generate_master_key("v2") as key:
        assert key.signature is not None
        assert key.fingerprint == fingerprint(key.encryption.bytes())
        assert key.fingerprint != fingerprint(key.signature.bytes())


# -- v1 parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize("length", [32, 33, 48, 64, 100])
def test_v1_round_trip(length: int) -> None:
    raw = os.urandom(length)
    with parse_master_key(b64(raw), source=SOURCE) as key:
        assert key.version == "v1"
        assert key.signature is None
        assert key.encryption == raw
        assert key.fingerprint == fingerprint(raw)


def test_text_may_be_str_bytes_bytearray_or_secretbytes() -> None:
    raw = os.urandom(32)
    text = b64(raw)
    for form in (text, text.encode(), bytearray(text.encode()), SecretBytes(text.encode())):
        with parse_master_key(form) as key:
            assert key.encryption == raw


def test_caller_buffer_is_left_alone() -> None:
    text = bytearray(b64(os.urandom(32)).encode())
    before = bytes(text)
    parse_master_key(text).close()
    assert text == before


@pytest.mark.parametrize("wrap", ["\n", "\r\n", "\r"])
def test_line_breaks_are_ignored_anywhere(wrap: str) -> None:
    raw = os.urandom(80)
    wrapped = base64.encodebytes(raw).decode().replace("\n", wrap)  # 76 columns
    assert wrap in wrapped.rstrip(wrap)
    with parse_master_key(wrapped) as key:
        assert key.encryption == raw
    scattered = wrap.join(b64(raw)) + wrap
    with parse_master_key(wrap + scattered) as key:
        assert key.encryption == raw


@settings(deadline=None, derandomize=True, max_examples=150)
@given(
    raw=st.binary(min_size=MIN_KEY_LENGTH, max_size=120),
    breaks=st.lists(st.tuples(st.integers(0, 200), st.sampled_from(["\r", "\n"])), max_size=8),
)
def test_decoding_matches_the_standard_library(raw: bytes, breaks: list[tuple[int, str]]) -> None:
    text = b64(raw)
    for index, char in breaks:
        index %= len(text) + 1
        text = text[:index] + char + text[index:]
    with parse_master_key(text) as key:
        cleaned = text.replace("\r", "").replace("\n", "").encode()
        assert key.encryption == binascii.a2b_base64(cleaned, strict_mode=True) == raw


@settings(deadline=None, derandomize=True, max_examples=300)
@given(text=st.text(alphabet=st.sampled_from('AQgw+/=\r\n $é{}"-_'), max_size=60))
def test_any_text_gives_a_key_or_a_typed_error(text: str) -> None:
    error: MasterKeyError | None = None
    try:
        key = parse_master_key(text, source=SOURCE)
    except MasterKeyError as exc:
        error = exc
    if error is not None:
        assert str(error).startswith(SOURCE)
        assert error.__context__ is None
        return
    with key:
        cleaned = text.replace("\r", "").replace("\n", "")
        assert key.encryption == binascii.a2b_base64(cleaned.encode(), strict_mode=True)


@settings(deadline=None, derandomize=True, max_examples=400)
@given(data=st.binary(max_size=40) | st.text(alphabet="AQgw+/=\r\n!", max_size=40).map(str.encode))
def test_fast_and_checked_decoders_agree(data: bytes) -> None:
    """The group-at-a-time decoder accepts what the checked one accepts, with equal bytes."""
    from keyloader import secret_base64

    fast = secret_base64.decode_base64_fast(data)
    try:
        checked: bytearray | None = secret_base64.decode_base64_checked(data, SOURCE, "fix")
    except InvalidMasterKeyError:
        checked = None
    if checked is None:
        assert fast is None
    else:
        assert fast == checked
        if fast:
            cleaned = data.replace(b"\r", b"").replace(b"\n", b"")
            assert fast == binascii.a2b_base64(cleaned, strict_mode=True)


@pytest.mark.parametrize("text", ["", "\n", "\r\n", "   ", " \t\n "])
def test_empty_or_blank_is_not_found(text: str) -> None:
    with pytest.raises(MasterKeyNotFoundError) as caught:
        parse_master_key(text, source=SOURCE)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE} is empty")
    assert "keyloader master-key generate" in message
    with pytest.raises(MasterKeyNotFoundError):
        parse_master_key(text.encode(), source=SOURCE)


def test_bad_character_position_is_one_based_in_the_original_text() -> None:
    raw = os.urandom(33)
    text = b64(raw)
    for bad, index in (("$", 0), ("-", 10), ("_", 43), (" ", 20), ("é", 5), ("\t", 43)):
        broken = text[:index] + bad + text[index + 1 :]
        with pytest.raises(InvalidMasterKeyError) as caught:
            parse_master_key(broken, source=SOURCE)
        message = str(caught.value)
        assert f"position {index + 1} " in message
        assert message.startswith(f"{SOURCE} is not valid base64")
        assert "keyloader master-key generate" in message
        with pytest.raises(InvalidMasterKeyError) as other:
            parse_master_key(text[:index] + "!" + text[index + 1 :], source=SOURCE)
        assert str(other.value) == message  # the character itself is never shown
        assert_clean(caught.value, raw)
    # line breaks before the bad character still count as positions
    with pytest.raises(InvalidMasterKeyError, match=r"position 7 "):
        parse_master_key("QUJD\r\n$" + text)
    with pytest.raises(InvalidMasterKeyError, match=r"position 3 "):
        parse_master_key(b"QU\xffJD")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("QUJ", "incomplete group"),
        ("QUJDRA", "incomplete group"),
        ("Q===", "misplaced '=' padding at position 2"),
        ("=QUJ", "misplaced '=' padding at position 1"),
        ("QQ=A", "data after the '=' padding at position 4"),
        ("QQ==QUJD", "data after the '=' padding at position 5"),
        ("QUI==", "data after the '=' padding at position 5"),
        ("QQ=", "incomplete group"),
    ],
)
def test_bad_padding_is_invalid(text: str, words: str) -> None:
    with pytest.raises(InvalidMasterKeyError, match="not valid base64") as caught:
        parse_master_key(text, source=SOURCE)
    assert words in str(caught.value)
    assert str(caught.value).startswith(SOURCE)


def test_standard_library_agrees_these_are_invalid() -> None:
    for text in ("QUJ", "Q===", "=QUJ", "QQ==QUJD", "QUI=="):
        with pytest.raises(binascii.Error):
            binascii.a2b_base64(text.encode(), strict_mode=True)


@pytest.mark.parametrize("length", [1, 16, 31])
def test_short_v1_key_is_invalid(length: int) -> None:
    # Deterministic bytes: a random 1-byte key's hex or base64 could occur in any text.
    raw = bytes([0xA5]) * length
    with pytest.raises(InvalidMasterKeyError) as caught:
        parse_master_key(b64(raw), source=SOURCE)
    message = str(caught.value)
    assert message.startswith(SOURCE)
    assert f"{length} bytes" in message
    assert "at least 32" in message
    assert "keyloader master-key generate" in message
    assert_clean(caught.value, raw)


def test_unknown_keystore_version_is_a_config_error() -> None:
    text = b64(os.urandom(32))
    for version in ("v3", "", "V1", "auto "):
        with pytest.raises(ConfigError, match="keystore_version"):
            parse_master_key(text, keystore_version=version)


def test_non_text_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse_master_key(12345)  # type: ignore[arg-type]


# -- v2 parsing ----------------------------------------------------------------------------


def test_v2_pair_parses_in_auto_and_v2() -> None:
    encryption, signature = os.urandom(32), os.urandom(40)
    text = v2_text(encryption, signature)
    for version in ("auto", "v2"):
        with parse_master_key(text, keystore_version=version) as key:
            assert key.version == "v2"
            assert key.encryption == encryption
            assert key.signature == signature
            assert key.fingerprint == fingerprint(encryption)


def test_v2_field_names_are_case_insensitive_and_extra_fields_ignored() -> None:
    encryption, signature = os.urandom(32), os.urandom(32)
    text = v2_text(encryption, signature, {"encryption": "ENCRYPTION", "signature": "Signature"})
    with parse_master_key(text) as key:
        assert key.version == "v2"
        assert key.encryption == encryption
        assert key.signature == signature
    document = {"signature": b64(signature), "note": 1, "encryption": b64(encryption)}
    with parse_master_key(b64(json.dumps(document).encode())) as key:
        assert key.encryption == encryption
        assert key.signature == signature


def test_v2_text_under_keystore_version_v1_is_a_v1_key_of_the_json() -> None:
    text = v2_text(os.urandom(32), os.urandom(32))
    with parse_master_key(text, keystore_version="v1") as key:
        assert key.version == "v1"
        assert key.encryption == base64.b64decode(text)


def test_auto_treats_other_json_and_brace_keys_as_v1() -> None:
    for decoded in (
        b'{"encryption": "' + b"A" * 44 + b'"}',  # one field only
        b'["encryption", "signature", "padding to 32 bytes"]',
        b"{" + os.urandom(40),  # a random key that starts with a brace
        b'{"encryption": 1, "signatur": 2, "padding": "..."}',
    ):
        with parse_master_key(b64(decoded)) as key:
            assert key.version == "v1"
            assert key.encryption == decoded


def test_v2_required_but_v1_given() -> None:
    raw = os.urandom(32)
    with pytest.raises(InvalidMasterKeyError) as caught:
        parse_master_key(b64(raw), keystore_version="v2", source=SOURCE)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE} is not a keystore v2 master key")
    assert "--keystore-version v2" in message
    assert_clean(caught.value, raw)


def test_v2_equal_keys_are_refused_before_the_length_check() -> None:
    for key in (os.urandom(32), os.urandom(8), b""):
        with pytest.raises(InvalidMasterKeyError, match="are equal") as caught:
            parse_master_key(v2_text(key, key), source=SOURCE)
        assert str(caught.value).startswith(SOURCE)
        assert "--keystore-version v2" in str(caught.value)
        assert_clean(caught.value, key)


def test_v2_short_keys() -> None:
    long, short = os.urandom(32), os.urandom(31)
    for encryption, signature, field in ((short, long, "encryption"), (long, short, "signature")):
        with pytest.raises(InvalidMasterKeyError) as caught:
            parse_master_key(v2_text(encryption, signature), source=SOURCE)
        message = str(caught.value)
        assert f"v2 {field} key is 31 bytes" in message
        assert_clean(caught.value, long, short)


def test_v2_malformed_fields() -> None:
    good = b64(os.urandom(32))
    cases = [
        ({"encryption": good}, "no 'signature' field", "v2"),
        ({"encryption": good, "signature": None}, "'signature' of the keystore v2", "auto"),
        ({"encryption": 5, "signature": good}, "not a base64 string", "auto"),
        ({"encryption": good, "signature": "not base64!"}, "position 4", "auto"),
        ({"encryption": good, "signature": good[:-1]}, "incomplete group", "auto"),
    ]
    for document, words, version in cases:
        text = b64(json.dumps(document).encode())
        with pytest.raises(InvalidMasterKeyError) as caught:
            parse_master_key(text, keystore_version=version, source=SOURCE)
        assert words in str(caught.value), (document, str(caught.value))
        assert SOURCE in str(caught.value)
        assert caught.value.__context__ is None


def test_v2_duplicate_fields_are_refused() -> None:
    one, two = b64(os.urandom(32)), b64(os.urandom(32))
    for raw in (
        f'{{"encryption":"{one}","signature":"{two}","Encryption":"{two}"}}',
        f'{{"encryption":"{one}","signature":"{two}","signature":"{one}"}}',
    ):
        with pytest.raises(InvalidMasterKeyError, match="appears 2 times"):
            parse_master_key(b64(raw.encode()))


def test_v2_not_json_under_v2() -> None:
    for decoded in (b"{" + os.urandom(40), b"[1, 2, 3]" + b" " * 30, b'"a string"' + b" " * 30):
        with pytest.raises(InvalidMasterKeyError, match="not a keystore v2 master key") as caught:
            parse_master_key(b64(decoded), keystore_version="v2", source=SOURCE)
        assert caught.value.__context__ is None


# -- the MasterKey object ------------------------------------------------------------------


def test_to_text_round_trips_and_has_no_newline() -> None:
    for version in ("v1", "v2"):
        with generate_master_key(version) as key, key.to_text() as text:
            assert isinstance(text, SecretBytes)
            assert not text.bytes().endswith(b"\n")
            with parse_master_key(text.bytes().decode()) as again:
                assert again == key
                assert again.version == version


def test_to_bytes_is_what_the_text_form_encodes_and_from_bytes_reads_it() -> None:
    for version in ("v1", "v2"):
        with generate_master_key(version) as key, key.to_bytes() as plain, key.to_text() as text:
            assert isinstance(plain, SecretBytes)
            assert base64.b64encode(plain.bytes()) == text.bytes()
            source = "the KMS plaintext"
            with master_key_from_bytes(plain.view, source=source) as again:
                assert again == key
                assert again.version == version
    with generate_master_key("v1") as key, key.to_bytes() as plain:
        assert plain.bytes() == key.encryption.bytes()


def test_from_bytes_applies_the_rules_after_base64() -> None:
    source = "the KMS plaintext of environment variable ACRA_MASTER_KEY"
    with pytest.raises(MasterKeyNotFoundError, match="is empty"):
        master_key_from_bytes(b"", source=source)
    with pytest.raises(InvalidMasterKeyError, match=f"^{source} is 16 bytes; .* at least 32"):
        master_key_from_bytes(b"k" * 16, source=source)
    with pytest.raises(InvalidMasterKeyError, match="not a keystore v2 master key"):
        master_key_from_bytes(b"k" * 32, keystore_version="v2", source=source)
    with generate_master_key("v2") as pair, pair.to_bytes() as document:
        with master_key_from_bytes(document.view, keystore_version="v1", source=source) as raw:
            assert raw.version == "v1"
            assert raw.encryption.bytes() == document.bytes()
    with pytest.raises(ConfigError, match="keystore_version"):
        master_key_from_bytes(b"k" * 32, keystore_version="v3", source=source)
    buffer = bytearray(b"k" * 32)
    with master_key_from_bytes(buffer, source=source) as key:
        buffer[:] = bytes(32)
        assert key.encryption.bytes() == b"k" * 32, "the key shares the caller's buffer"


def test_v2_text_form_is_acra_serialized_keys() -> None:
    with generate_master_key("v2") as key, key.to_text() as text:
        assert key.signature is not None
        document = base64.b64decode(text.bytes(), validate=True)
        expected = json.dumps(
            {"encryption": b64(key.encryption.bytes()), "signature": b64(key.signature.bytes())},
            separators=(",", ":"),
        ).encode()
        assert document == expected  # Go's json.Marshal layout


def test_v1_text_form_is_plain_base64() -> None:
    with generate_master_key() as key, key.to_text() as text:
        assert text.bytes() == base64.b64encode(key.encryption.bytes())


def test_repr_shows_version_length_fingerprint_only() -> None:
    for version in ("v1", "v2"):
        with generate_master_key(version) as key:
            shown = repr(key)
            assert shown == str(key)
            assert version in shown
            assert "32 bytes" in shown
            assert key.fingerprint in shown
            secrets = [key.encryption.bytes()]
            if key.signature is not None:
                secrets.append(key.signature.bytes())
            for secret in secrets:
                for form in forms(secret):
                    assert form not in shown
    assert "closed" in repr(key)


def test_close_wipes_and_is_idempotent() -> None:
    key = generate_master_key("v2")
    encryption, signature = key.encryption, key.signature
    assert signature is not None
    fp = key.fingerprint
    assert [key.closed] == [False]
    key.close()
    assert key.closed
    assert encryption.wiped
    assert len(encryption) == 0
    assert signature.wiped
    assert len(signature) == 0
    key.close()
    assert key.fingerprint == fp
    assert key.version == "v2"
    with pytest.raises(MasterKeyError, match=fp):
        _ = key.encryption
    with pytest.raises(MasterKeyError, match=fp):
        _ = key.signature
    with pytest.raises(MasterKeyError, match=fp):
        key.to_text()


def test_context_manager_closes() -> None:
    with generate_master_key() as key:
        buffer = key.encryption
        assert [key.closed] == [False]
    assert key.closed
    assert buffer.wiped


def test_pickling_and_hashing_are_refused() -> None:
    with generate_master_key() as key:
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(key)
        with pytest.raises(TypeError):
            copy.copy(key)
        with pytest.raises(TypeError):
            hash(key)


def test_equality() -> None:
    raw = os.urandom(32)
    with MasterKey(SecretBytes(raw)) as one, MasterKey(SecretBytes(raw)) as two:
        assert one == two
        assert one != MasterKey(SecretBytes(os.urandom(32)))
        assert one != raw
        assert one != MasterKey(SecretBytes(raw), SecretBytes(os.urandom(32)))
    assert one == one
    assert one != two  # closed keys only equal themselves


def test_constructor_validates() -> None:
    with pytest.raises(TypeError):
        MasterKey(os.urandom(32))  # type: ignore[arg-type]
    with pytest.raises(InvalidMasterKeyError, match="31 bytes"):
        MasterKey(SecretBytes(os.urandom(31)))
    same = os.urandom(32)
    with pytest.raises(InvalidMasterKeyError, match="equal"):
        MasterKey(SecretBytes(same), SecretBytes(same))
    with pytest.raises(InvalidMasterKeyError, match="signature key is 5 bytes"):
        MasterKey(SecretBytes(os.urandom(32)), SecretBytes(os.urandom(5)))


# -- generation ----------------------------------------------------------------------------


def test_generate_v1_and_v2() -> None:
    with generate_master_key() as one, generate_master_key("v1") as two:
        assert (one.version, len(one.encryption)) == ("v1", 32)
        assert one != two
        assert one.fingerprint != two.fingerprint
    with generate_master_key("v2") as pair:
        assert pair.signature is not None
        assert len(pair.encryption) == len(pair.signature) == 32
        assert pair.encryption != pair.signature


def test_generate_unknown_version() -> None:
    with pytest.raises(ConfigError, match="v3"):
        generate_master_key("v3")  # type: ignore[arg-type]


# -- raw keys and key files ----------------------------------------------------------------


def test_raw_key() -> None:
    raw = bytearray(os.urandom(40))
    with master_key_from_raw(raw, source="file /k") as key:
        assert key.encryption == raw
        assert key.version == "v1"
    assert raw != bytearray(40)  # the caller's buffer is the caller's
    with pytest.raises(InvalidMasterKeyError, match=r"^file /k holds 31 bytes") as caught:
        master_key_from_raw(os.urandom(31), source="file /k")
    assert "keyloader master-key generate --output" in str(caught.value)
    with pytest.raises(MasterKeyNotFoundError, match=r"^file /k is empty"):
        master_key_from_raw(b"", source="file /k")


def test_file_content_raw_v1_and_v2_text() -> None:
    raw = os.urandom(32)
    with master_key_from_file_content(raw, source="file /k") as key:
        assert key.encryption == raw
    with pytest.raises(InvalidMasterKeyError, match="raw key bytes"):
        master_key_from_file_content(raw, keystore_version="v2", source="file /k")
    with generate_master_key("v2") as pair, pair.to_text() as text:
        content = text.bytes() + b"\n"
        with master_key_from_file_content(content, source="file /k") as key:
            assert key == pair
        with master_key_from_file_content(content, keystore_version="v1", source="f") as key:
            assert key.version == "v1"
            assert key.encryption == base64.b64decode(text.bytes())
    # a v1 base64 text in a file is raw bytes: the ASCII itself is the key
    text_v1 = b64(os.urandom(32)).encode()
    with master_key_from_file_content(text_v1, source="file /k") as key:
        assert key.encryption == text_v1
    with pytest.raises(ConfigError):
        master_key_from_file_content(raw, keystore_version="v9", source="file /k")


def test_write_key_file_v1_raw_0600(tmp_path: Path) -> None:
    target = tmp_path / "master.key"
    with generate_master_key() as key:
        assert write_master_key_file(key, target) == target
        assert target.read_bytes() == key.encryption.bytes()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_write_key_file_v2_text(tmp_path: Path) -> None:
    target = tmp_path / "v2.key"
    with generate_master_key("v2") as key:
        write_master_key_file(key, target)
        with master_key_from_file_content(target.read_bytes(), source="f") as again:
            assert again == key


def test_write_key_file_refuses_existing_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "master.key"
    target.write_bytes(b"keep me")
    target.chmod(0o644)
    with generate_master_key() as key:
        with pytest.raises(KeyExistsError, match=str(target)):
            write_master_key_file(key, target)
        assert target.read_bytes() == b"keep me"
        write_master_key_file(key, target, force=True)
        assert target.read_bytes() == key.encryption.bytes()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["master.key"]  # no temp file left


def test_write_key_file_into_missing_directory(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "master.key"
    with generate_master_key() as key:
        for force in (False, True):
            with pytest.raises(ConfigError, match="does not exist") as caught:
                write_master_key_file(key, target, force=force)
            assert str(target) in str(caught.value)
            assert isinstance(caught.value, KeyloaderError)
    assert not target.parent.exists()
