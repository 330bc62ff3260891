"""The vault provider against a three-node OpenBao raft cluster (the test suite's cluster,
tests/vault/cluster.py, started here on loopback ports and stopped at the end).

- standby_vs_active   a load through a standby / a load through the active node   (<= 1.2)
- the time from SIGKILL of the active node to the first successful load, with the standbys
  in the address list after it: reported (the issue's bound: under 1 s), not a ratio.

Usage: python benchmarks/vault_cluster.py [ROUNDS]   (default 9)
"""

from __future__ import annotations

import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))  # the repository: tests.vault.cluster

from _common import interleaved_medians, ratio, report

from keyloader.errors import KeyloaderError
from keyloader.masterkey import generate_master_key
from keyloader_vault import VaultProvider
from tests.vault.cluster import start_cluster

CALLS = 40


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    cluster = start_cluster(Path(tempfile.mkdtemp(prefix="keyloader-bench-raft-")))
    try:
        with generate_master_key() as key, key.to_text() as text:
            cluster.admin(
                "POST", "secret/data/bench", data={"acra_master_key": text.bytes().decode()}
            )
        active = cluster.active()
        standby = cluster.standbys()[0]

        def provider(address: str) -> VaultProvider:
            return VaultProvider(
                {
                    "address": address,
                    "token": cluster.token,
                    "secrets_path": "secret/bench",
                    "kv_version": "2",
                    "attempt_timeout": 1.0,
                }
            )

        through_active, through_standby = provider(active.address), provider(standby.address)
        medians = interleaved_medians(
            {
                "load via the active node": lambda: through_active.load().close(),
                "load via a standby": lambda: through_standby.load().close(),
            },
            calls=CALLS,
            rounds=rounds,
        )
        through_active.close()
        through_standby.close()
        report(medians)
        ratio(
            "standby_vs_active",
            medians["load via a standby"] / medians["load via the active node"],
            1.2,
        )
        listed = provider(",".join(n.address for n in [active, *cluster.standbys()]))
        listed.load().close()
        killed = time.monotonic()
        active.signal(signal.SIGKILL)
        while True:
            try:
                listed.load().close()
                break
            except KeyloaderError:
                if time.monotonic() - killed > 30:
                    print("no successful load within 30 s of SIGKILL of the active node")
                    sys.exit(1)
        took = time.monotonic() - killed
        print(f"first successful load {took:.3f} s after SIGKILL of the active node")
        listed.close()
        active.process = None
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
