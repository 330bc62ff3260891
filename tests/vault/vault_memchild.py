"""A service that loads its master key from Vault, for tests/vault/test_vault_memory.py.

Run as ``python vault_memchild.py KEYS_DIR ADDRESS SECRETS_PATH TOKEN_FILE MODE [CA_CERT]``:
it opens the store with provider ``vault`` (the token from ``TOKEN_FILE``, option
``token_file``; ``CA_CERT`` for an https address), runs the ``ROUNDS`` rounds of every
data operation and of ``use()`` of tests/memchild.py, then prints one JSON line with the
values of its last round and waits on stdin. It handles SIGUSR1 (the scanner's signal to
push registers into memory).

MODE ``provider``: the key is loaded at the first use, before the rounds. MODE
``reload``: it is also loaded again from Vault as the very last thing before waiting
(``reload_master_key()``, what a service does when its key store was rewrapped), so
nothing done after the load can have overwritten what the load left in memory. MODE
``hvac`` is the control: it also reads the secret as an application using hvac directly
would (the token read into a ``str``, the answer a ``dict`` it keeps).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: tests.memchild

import keyloader
from tests.memchild import NONCE, ROUNDS, SYM, one_round

KEPT: list[Any] = []
"""What the control keeps, as an application would (a client, an answer)."""


def read_with_hvac(address: str, secrets_path: str, token_file: str) -> None:
    """The control: plain hvac, the token and the answer in ordinary objects."""
    import hvac
    import requests

    session = requests.Session()
    session.trust_env = False
    token = Path(token_file).read_text().strip()
    client = hvac.Client(url=address, token=token, session=session)
    mount, _, path = secrets_path.partition("/")
    answer = client.secrets.kv.v2.read_secret_version(
        path=path, mount_point=mount, raise_on_deleted_version=True
    )
    KEPT.extend((client, answer))


def main() -> None:
    keys_dir, address, secrets_path, token_file, mode = sys.argv[1:6]
    ca_cert = sys.argv[6] if len(sys.argv) > 6 else None
    signal.signal(signal.SIGUSR1, lambda *_: None)
    if mode == "hvac":
        read_with_hvac(address, secrets_path, token_file)
    options = {"address": address, "secrets_path": secrets_path, "token_file": token_file}
    if ca_cert:
        options["ca_cert"] = ca_cert
    keys = keyloader.open_keystore(
        keys_dir=keys_dir, provider="vault", provider_options=options, cache_size=1000
    )
    last: dict[str, Any] = {}
    for _ in range(ROUNDS):
        last = one_round(keys)
    keys.decrypt(SYM, bytes.fromhex(last["acrablock"])[33:])  # the last things before waiting
    with keys.use(SYM) as key:
        AESGCM(key.view).encrypt(NONCE, b"application data", None)
    if mode == "reload":
        keys.reload_master_key()
    last["pid"] = os.getpid()
    print(json.dumps(last), flush=True)  # done: the parent scans now
    sys.stdin.readline()
    keys.close()


if __name__ == "__main__":
    main()
