"""Secret-leak scanning of CLI runs: capture every output and log record, then look for keys.

Shared by the secret-leak tests of each key store (tests/core, tests/redis). Test modules
import it relatively (``from ..leakscan import Workflow``): pytest's importlib mode names
them ``tests.<dir>.<module>``, so ``tests`` is a namespace package holding this module.
"""

from __future__ import annotations

import base64
import logging
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keyloader.cli.app import app

__all__ = ["KEYLOADER", "Captured", "Workflow", "forms"]

KEYLOADER = Path(sys.executable).with_name("keyloader")
"""The installed ``keyloader`` command of this virtual environment."""


@dataclass
class Captured:
    """One CLI run: its arguments, exit code and raw output."""

    args: tuple[str, ...]
    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def may_print_keys(self) -> bool:
        """Only these two commands exist to print key material (on stdout)."""
        a = self.args
        if "read" in a and "keys" in a:
            return True
        return "generate" in a and "master-key" in a and "--output" not in a


def forms(secret: bytes) -> list[bytes]:
    """Every way a key could show up in text: raw, base64 (both alphabets, padded or not), hex."""
    std = base64.b64encode(secret)
    url = base64.urlsafe_b64encode(secret)
    return [
        secret,
        std,
        std.rstrip(b"="),
        url,
        url.rstrip(b"="),
        secret.hex().encode(),
        secret.hex().upper().encode(),
    ]


class Workflow:
    """Runs CLI commands in-process (and as processes), keeps every output for :meth:`scan`."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.captured: list[Captured] = []

    def run(
        self, *args: str, expect: int = 0, env: Mapping[str, str | None] | None = None
    ) -> Captured:
        """``keyloader *args`` through typer's runner; its exit code must be ``expect``."""
        result = CliRunner().invoke(app, list(args), env=env)
        captured = Captured(args, result.exit_code, result.stdout_bytes, result.stderr_bytes)
        self.captured.append(captured)
        assert result.exit_code == expect, (args, result.exit_code, result.stderr)
        return captured

    def run_process(
        self, *args: str, env: Mapping[str, str], expect: int = 0, cwd: Path | None = None
    ) -> Captured:
        """``keyloader *args`` as a real process of the installed command."""
        process = subprocess.run(
            [KEYLOADER, *args],
            capture_output=True,
            env=dict(env),
            cwd=cwd,
            check=False,
            timeout=60,
        )
        captured = Captured(
            ("subprocess", *args), process.returncode, process.stdout, process.stderr
        )
        self.captured.append(captured)
        assert process.returncode == expect, (args, process.returncode, process.stderr)
        return captured

    def logs(self) -> bytes:
        """Every captured log record: message, arguments and exception (with its chain)."""
        parts = []
        for record in self.caplog.records:
            parts.append(record.getMessage())
            parts.append(repr(record.args))
            if record.exc_info and record.exc_info[1] is not None:
                parts.append(repr(record.exc_info[1]))
                parts.append(logging.Formatter().formatException(record.exc_info))
        return "\n".join(parts).encode()

    def scan(self, secrets: Iterable[bytes], never: Iterable[bytes] = ()) -> int:
        """Fail on any form of ``secrets`` outside the stdout of the key-printing commands,
        and on any form of ``never`` anywhere; return how often the allowed stdout showed one.
        """
        assert self.captured, "nothing ran"
        logs = self.logs()
        printed_keys = 0
        for secret in secrets:
            assert secret, "an empty secret matches everything"
            for form in forms(secret):
                assert form not in logs, "a log record holds key material"
                for captured in self.captured:
                    assert form not in captured.stderr, f"stderr of {captured.args} leaks a key"
                    if form in captured.stdout:
                        assert captured.may_print_keys, f"stdout of {captured.args} leaks a key"
                        printed_keys += 1
        for secret in never:
            assert secret, "an empty secret matches everything"
            for form in forms(secret):
                assert form not in logs, "a log record holds a secret"
                for captured in self.captured:
                    assert form not in captured.stderr, f"stderr of {captured.args} leaks a secret"
                    assert form not in captured.stdout, f"stdout of {captured.args} leaks a secret"
        return printed_keys
