"""The examples run, as a user would run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_runs_on_the_embedded_defaults() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "generated client/billing-service/symmetric" in out
    assert "record encrypted" in out
    assert "verified every key: all decrypt" in out
    keys_dir = Path(out.strip().splitlines()[-1].split(": ", 1)[1])
    assert (keys_dir / "billing-service_storage_sym").is_file()
    assert len(list((keys_dir / "billing-service_storage_sym.old").iterdir())) == 1
    assert result.stderr == ""
