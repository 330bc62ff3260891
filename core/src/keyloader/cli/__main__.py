"""``python -m keyloader.cli``: the same as the ``keyloader`` console script."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
