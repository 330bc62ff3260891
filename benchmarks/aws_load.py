"""Loading the master key through AWS KMS (a moto server) against raw boto3, in the same run.

Starts its own moto server (tests/aws/moto_kms_server.py) on a free loopback port,
makes a KMS key behind alias/acra_master_key, encrypts a master key into
ACRA_MASTER_KEY, then measures, alternated every round (one client / one provider
each, reused like a service would):

- boto3 `decrypt`                 the floor: one signed POST to KMS, JSON parsed
- provider load                   read + decode the variable, the same Decrypt sent
                                  under the deadline, wiped copies, parse + validate

Also shown, for reading the ratio (no target): boto3 decrypt + `master_key_from_bytes`.

Ratio (lower is better):
- load_vs_boto3_decrypt    provider load / raw boto3 decrypt    target <= 1.2

Usage: python benchmarks/aws_load.py [ROUNDS]   (default 15)
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).parent))

from _common import interleaved_medians, ratio, report, stop_process

from keyloader.masterkey import master_key_from_bytes
from keyloader_aws import AwsKmsProvider

SERVER = Path(__file__).parents[1] / "tests" / "aws" / "moto_kms_server.py"
REGION = "eu-west-1"
ALIAS = "alias/acra_master_key"
ACCESS = ("AKIABENCHMARK0000001", "bench/secret/access/key")
CALLS = 40


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(workdir: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYLOADER_"))}
    log = open(Path(workdir) / "moto.log", "wb")  # noqa: SIM115 - closed by the caller's exit
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with {process.returncode}")
        try:
            request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")  # noqa: S310
            with urllib.request.urlopen(request, timeout=1):  # noqa: S310
                return process, url
        except OSError:
            time.sleep(0.05)
    stop_process(process)
    raise RuntimeError("moto server did not start")


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    workdir = tempfile.mkdtemp(prefix="keyloader-bench-aws-")
    process, url = _start(workdir)
    try:
        raw = boto3.client(
            "kms",
            region_name=REGION,
            endpoint_url=url,
            aws_access_key_id=ACCESS[0],
            aws_secret_access_key=ACCESS[1],
        )
        key_id = raw.create_key()["KeyMetadata"]["KeyId"]
        raw.create_alias(AliasName=ALIAS, TargetKeyId=key_id)
        blob = raw.encrypt(KeyId=ALIAS, Plaintext=secrets.token_bytes(32))["CiphertextBlob"]
        os.environ["ACRA_MASTER_KEY"] = base64.b64encode(blob).decode()
        os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = ACCESS
        provider = AwsKmsProvider({"region": REGION, "endpoint": url, "keystore_version": "auto"})

        def raw_decrypt() -> object:
            return raw.decrypt(KeyId=ALIAS, CiphertextBlob=blob)["Plaintext"]

        def raw_decrypt_and_parse() -> None:
            plaintext = raw.decrypt(KeyId=ALIAS, CiphertextBlob=blob)["Plaintext"]
            master_key_from_bytes(plaintext, source="bench").close()

        def load() -> None:
            provider.load().close()

        try:
            medians = interleaved_medians(
                {
                    "boto3 decrypt": raw_decrypt,
                    "provider load": load,
                    "(boto3 decrypt + parse)": raw_decrypt_and_parse,
                },
                calls=CALLS,
                rounds=rounds,
            )
        finally:
            provider.close()
            raw.close()
    finally:
        stop_process(process)
        shutil.rmtree(workdir, ignore_errors=True)
    report(medians)
    ratio("load_vs_boto3_decrypt", medians["provider load"] / medians["boto3 decrypt"], 1.2)


if __name__ == "__main__":
    main()
