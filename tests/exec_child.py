"""The child `keyloader exec` starts in the tests: it reports what it received, as JSON.

Run as a script: prints its PID, the fingerprint of the master key in the variable
``argv[1]`` (never the key), which credential variables it sees (AWS_* apart), then waits for
SIGTERM (with ``wait``) or exits with the status ``argv[2]``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time


def main() -> int:
    variable, mode = sys.argv[1], sys.argv[2]
    from keyloader.masterkey import parse_master_key

    text = os.environ.get(variable)
    fingerprint = parse_master_key(text, source=variable).fingerprint if text else None
    report = {
        "pid": os.getpid(),
        "fingerprint": fingerprint,
        "seen": sorted(
            name for name in os.environ if name.startswith(("VAULT_", "KEYLOADER_", "ACRA_", "MY_"))
        ),
        "aws": sorted(name for name in os.environ if name.startswith("AWS_")),
    }
    if mode == "wait":  # before the report: the test signals as soon as it reads it
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(json.dumps(report), flush=True)
    if mode == "wait":
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.05)
        return 1
    return int(mode)


if __name__ == "__main__":
    sys.exit(main())
