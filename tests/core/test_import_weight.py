"""`import keyloader` stays light: no CLI framework, no provider SDK (docs/architecture.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FORBIDDEN = ("typer", "rich", "click", "hvac", "redis", "boto3", "botocore", "google", "requests")


def _modules_after(code: str) -> set[str]:
    probe = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return set(json.loads(out))


@pytest.mark.parametrize(
    "code",
    [
        "import keyloader",
        "import keyloader; keyloader.open_keystore; keyloader.KeyManager; keyloader.MasterKey",
        "import keyloader.testing",
        "import keyloader.plugins; keyloader.plugins.make_plugin_manager().provider_classes()",
    ],
)
def test_no_cli_or_sdk_modules(code: str) -> None:
    loaded = _modules_after(code)
    heavy = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN)
    assert heavy == []


def test_bare_import_defers_the_engine() -> None:
    loaded = _modules_after("import keyloader")
    assert "keyloader.keystore" not in loaded
    assert "cryptography" not in {m.split(".")[0] for m in loaded}


def test_lazy_names_resolve() -> None:
    import keyloader

    for name in keyloader.__all__:
        assert getattr(keyloader, name) is not None
    with pytest.raises(AttributeError):
        _ = keyloader.no_such_name  # type: ignore[attr-defined]
