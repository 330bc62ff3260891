"""Install test plugin distributions into a private site directory on ``sys.path``.

The plugin manager then finds their ``keyloader`` entry points as it finds
installed plugins. Used by the plugin-manager and hook-call tests.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["installed_site"]


@contextmanager
def installed_site(target: Path, distributions: Iterable[Path]) -> Iterator[Path]:
    """pip-install ``distributions`` into ``target`` and put it first on ``sys.path``.

    On exit ``sys.path`` is restored and the ``kltest_*`` modules imported meanwhile
    are forgotten.
    """
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    command += ["--no-build-isolation", "--no-index", "--disable-pip-version-check"]
    command += ["--target", str(target), *sorted(str(p) for p in distributions)]
    process = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    assert process.returncode == 0, process.stderr
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    try:
        yield target
    finally:
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules:
            if name.split(".")[0].startswith("kltest_"):
                del sys.modules[name]
        importlib.invalidate_caches()
