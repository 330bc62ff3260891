"""keyloader_vault.jsonfield: secret values taken out of a JSON answer before json reads it.

Checked against ``json`` itself: for any document, what is taken at a path is what
``json`` reads there (the last of duplicates), the redacted copy parses to the same
document with those values as ``*``, and nothing is taken from what ``json`` refuses.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyloader.secret import SecretBytes
from keyloader_vault.jsonfield import PLACEHOLDER, Capture, Path, find_strings

FIELD = "acra_master_key"
V2: Path = (b"data", b"data", FIELD.encode())
V1: Path = (b"data", FIELD.encode())
LOGIN: Path = (b"auth", b"client_token")
PATHS = (V2, V1, LOGIN)

KV2_ANSWER = {
    "request_id": "62969be6-2d5d-0442-b754-809db168f624",
    "lease_id": "",
    "renewable": False,
    "lease_duration": 0,
    "data": {
        "data": {FIELD: "83k/Crw1INgCYq5UIcslQN2bemu0/lzVRsQgPSf58ps=", "note": "kept"},
        "metadata": {
            "created_time": "2026-12-06T05:47:14.123456789Z",
            "custom_metadata": None,
            "deletion_time": "",
            "destroyed": False,
            "version": 3,
        },
    },
    "wrap_info": None,
    "warnings": ["a warning"],
    "auth": None,
    "mount_type": "kv",
}


def _at(document: Any, path: Path) -> Any:
    for key in path:
        if not isinstance(document, dict) or key.decode() not in document:
            return None
        document = document[key.decode()]
    return document


def _check(text: bytes) -> dict[Path, bytes]:
    """Take the values of ``text`` and check them and the redacted copy against json."""
    original = json.loads(text)
    with SecretBytes(text) as body:
        capture = Capture(PATHS)
        redacted = capture.take(body.view)
        taken = {}
        for path in PATHS:
            value = capture.pop(path)
            if value is not None:
                with value:
                    taken[path] = value.bytes()
    document = json.loads(redacted)
    for path in PATHS:
        expected = _at(original, path)
        if isinstance(expected, str):
            assert taken[path].decode("utf-8", "surrogatepass") == expected
            placeholder = _at(document, path)
            assert placeholder == PLACEHOLDER.decode() * len(placeholder)
        else:
            assert path not in taken
            assert _at(document, path) == expected
    return taken


@pytest.mark.parametrize("separators", [(",", ":"), (", ", ": ")])
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_a_kv2_answer(separators: tuple[str, str], ensure_ascii: bool) -> None:
    text = json.dumps(KV2_ANSWER, separators=separators, ensure_ascii=ensure_ascii, indent=None)
    taken = _check(text.encode())
    assert taken == {V2: b"83k/Crw1INgCYq5UIcslQN2bemu0/lzVRsQgPSf58ps="}
    redacted = Capture(PATHS).take(memoryview(text.encode()))
    assert b"83k/" not in redacted
    assert b'"note":"kept"' in redacted.replace(b" ", b"")


def test_a_kv1_answer_and_a_login() -> None:
    assert _check(b'{"data": {"acra_master_key": "QUJD"}, "auth": null}') == {V1: b"QUJD"}
    login = b'{"auth": {"client_token": "hvs.token", "policies": ["a", "b"]}, "data": null}'
    assert _check(login) == {LOGIN: b"hvs.token"}


def test_escaped_values_and_names_are_unescaped_into_secret_pages() -> None:
    text = rb'{"d\u0061ta": {"acra_master_key": "a\/b\u00e9\ud83d\ude00\"\\\n"}}'
    assert _check(text) == {V1: 'a/bé\U0001f600"\\\n'.encode()}


def test_a_name_given_twice_every_value_is_hidden_the_last_is_taken() -> None:
    text = b'{"data": {"acra_master_key": "first", "acra_master_key": "second"}}'
    assert _check(text) == {V1: b"second"}
    assert b"first" not in Capture(PATHS).take(memoryview(text))


def test_values_elsewhere_are_left() -> None:
    text = b'{"data": {"x": [{"acra_master_key": "in an array"}], "y": {"acra_master_key": 1}}}'
    assert _check(text) == {}
    assert Capture(PATHS).take(memoryview(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        b'{"data": {"acra_master_key": "a\x01b"}}',  # a raw control character
        b'{"data": {"acra_master_key": "a\\qb"}}',  # an unknown escape
        b'{"data": {"acra_master_key": "\\u12"}}',
        b'{"data": {"acra_master_key": "open',
        b'{"data": {"acra_master_key": "v"}} trailing',
        b'{"data": {"acra_master_key": "v",}}',
        b'{"data" {"acra_master_key": "v"}}',
        b'{"data": {"acra_master_key": "v"]}',
        b"",
    ],
)
def test_what_json_refuses_is_left_as_it_is(text: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    assert find_strings(memoryview(text), PATHS) is None
    capture = Capture(PATHS)
    assert capture.take(memoryview(text)) == text
    assert all(capture.pop(path) is None for path in PATHS)


_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
_NAMES = st.sampled_from(["data", "auth", FIELD, "client_token", "note", ""]) | _TEXT
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT
_DOCUMENTS = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_NAMES, children, max_size=5),
    max_leaves=20,
)


@st.composite
def _answers(draw: st.DrawFn) -> dict[str, Any]:
    """Documents shaped like Vault's answers: the wanted paths are there, with anything."""
    fields = draw(st.dictionaries(_NAMES, _DOCUMENTS, max_size=3))
    fields[FIELD] = draw(_TEXT | _SCALARS)
    inner = {**draw(st.dictionaries(_NAMES, _DOCUMENTS, max_size=2)), "data": fields}
    login = {**draw(st.dictionaries(_NAMES, _DOCUMENTS, max_size=2)), "client_token": draw(_TEXT)}
    answer = draw(st.dictionaries(_NAMES, _DOCUMENTS, max_size=3))
    answer["data"] = inner if draw(st.booleans()) else fields
    if draw(st.booleans()):
        answer["auth"] = login
    return answer


@given(document=_answers() | _DOCUMENTS, ensure_ascii=st.booleans(), spaced=st.booleans())
def test_any_document_reads_as_json_reads_it(
    document: Any, ensure_ascii: bool, spaced: bool
) -> None:
    separators = (", ", ": ") if spaced else (",", ":")
    text = json.dumps(document, ensure_ascii=ensure_ascii, separators=separators)
    _check(text.encode("utf-8", "surrogatepass"))
