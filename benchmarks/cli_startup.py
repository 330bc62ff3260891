"""Start-up time of the `keyloader` CLI against floors measured in the same run.

Measures, alternated every round (each is one fresh process, wall time):
- `python -c pass`                       the interpreter floor
- `python -c "import typer"`             the CLI framework alone (about 5x the floor)
- `keyloader --help`                     typer and the command tree; no plugin is loaded
- `keyloader master-key check`           env provider, ACRA_MASTER_KEY set: load, validate, print
- `keyring --help`                       another Python secrets CLI (the `bench` dependency group)

Ratios (lower is better):
- help_vs_python_pass   `keyloader --help` / `python -c pass`                       target <= 8.0
- help_vs_import_typer  `keyloader --help` / `python -c "import typer"`             target <= 1.5
- check_vs_keyring      `keyloader master-key check` / `keyring --help`             target <= 1.0

Usage: python benchmarks/cli_startup.py [ROUNDS]   (default 15)
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import ratio

BIN = Path(sys.executable).parent


def _tool(name: str) -> str | None:
    local = BIN / name
    return str(local) if local.exists() else shutil.which(name)


def _time(command: list[str], env: dict[str, str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    keyloader = _tool("keyloader")
    if keyloader is None:
        sys.exit("keyloader is not installed: run `make install`")
    keyring = _tool("keyring")
    workdir = tempfile.mkdtemp(prefix="keyloader-bench-cli-")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KEYLOADER_", "ACRA_", "VAULT_"))
        # Installed packages run from .pyc files; let the warm-up write ours as keyring's exist.
        and key != "PYTHONDONTWRITEBYTECODE"
    }
    env["ACRA_MASTER_KEY"] = base64.b64encode(secrets.token_bytes(32)).decode()
    env["HOME"] = workdir

    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import typer'": [sys.executable, "-c", "import typer"],
        "keyloader --help": [keyloader, "--help"],
        "keyloader master-key check": [keyloader, "master-key", "check"],
    }
    if keyring is not None:
        cases["keyring --help"] = [keyring, "--help"]

    samples: dict[str, list[float]] = {name: [] for name in cases}
    for command in cases.values():  # warm-up: page cache, .pyc files
        _time(command, env, workdir)
    for _ in range(rounds):
        for name, command in cases.items():
            samples[name].append(_time(command, env, workdir))
    medians = {name: statistics.median(values) for name, values in samples.items()}

    for name, seconds in medians.items():
        print(f"{name:<30} {seconds * 1e3:8.1f} ms  (median of {rounds})")
    floor = medians["python -c pass"]
    check = medians["keyloader master-key check"]
    help_time = medians["keyloader --help"]
    ratio("help_vs_python_pass", help_time / floor, 8.0)
    ratio("help_vs_import_typer", help_time / medians["python -c 'import typer'"], 1.5)
    if keyring is None:
        print(
            "note: keyring is not installed (`make bench` installs the bench group); "
            "check_vs_keyring skipped"
        )
    else:
        ratio("check_vs_keyring", check / medians["keyring --help"], 1.0)


if __name__ == "__main__":
    main()
