"""``moto_server`` with one rule of AWS KMS that moto 5 lacks: key states.

AWS refuses ``Decrypt`` and ``Encrypt`` with a disabled key (``DisabledException``)
and with a key pending deletion (``KMSInvalidStateException``), as the KMS API
reference says; moto decrypts with them. This script adds that rule to moto's
KMS backend and runs moto's own server (``moto.server.main``): the tests still
talk to a real server process over HTTP. Arguments are ``moto_server``'s.
"""

from __future__ import annotations

import sys
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.kms.models import KmsBackend
from moto.server import main


class _KeyStateError(JsonRESTError):
    code = 400


def _check_state(backend: KmsBackend, key_id: str) -> None:
    key = backend.keys[key_id]
    if key.key_state == "Disabled":
        raise _KeyStateError("DisabledException", f"{key.arn} is disabled.")
    if key.key_state != "Enabled":
        raise _KeyStateError("KMSInvalidStateException", f"{key.arn} is {key.key_state}.")


_decrypt = KmsBackend.decrypt
_encrypt = KmsBackend.encrypt


def _checked_decrypt(self: KmsBackend, *args: Any, **kwargs: Any) -> Any:
    plaintext, arn = _decrypt(self, *args, **kwargs)
    _check_state(self, arn.rsplit("/", 1)[-1])
    return plaintext, arn


def _checked_encrypt(self: KmsBackend, key_id: str, *args: Any, **kwargs: Any) -> Any:
    _check_state(self, self.any_id_to_key_id(key_id))
    return _encrypt(self, key_id, *args, **kwargs)


KmsBackend.decrypt = _checked_decrypt  # type: ignore[method-assign]
KmsBackend.encrypt = _checked_encrypt  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
