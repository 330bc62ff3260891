"""The Enterprise Edition placeholders aws-kms, gcp-kms and keywhiz behind the gate.

The real distributions keyloader-aws, keyloader-gcp and keyloader-keywhiz are
installed in the venv. An Enterprise Edition stand-in (``fixtures_enterprise/``)
is installed once with pip into a temporary ``--target`` directory and put on
``sys.path`` (or ``PYTHONPATH``) only by the tests that want it installed.
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner, Result

from keyloader.api import create_provider, load_master_key
from keyloader.cli.app import app
from keyloader.config import provider_option_env_names
from keyloader.errors import (
    ConfigError,
    EnterpriseFeatureError,
    KeyloaderError,
    MasterKeyNotFoundError,
    ProviderNotImplementedError,
)
from keyloader.masterkey import generate_master_key
from keyloader.plugins import KeyloaderPluginManager, make_plugin_manager
from keyloader.providers import ProviderStatus

FIXTURE = Path(__file__).parent / "fixtures_enterprise" / "kltest-enterprise"
NAMES = ("aws-kms", "gcp-kms", "keywhiz")
STATES = ("locked", "unavailable", "available")
PLACEHOLDER_PLUGINS = (
    "aws",
    "gcp",
    "keywhiz",
    "env",
    "vault",
    "redis",
    "command",
    "kltest-enterprise",
)
SDK_MODULES = (
    "boto3",
    "botocore",
    "aiobotocore",
    "google",
    "googleapiclient",
    "grpc",
    "hvac",
    "requests",
    "urllib3",
    "httpx",
    "aiohttp",
    "keywhiz",
)
OPTIONS = {
    "aws-kms": [
        "credentials_path",
        "region",
        "key_alias",
        "encrypted_key_variable",
        "endpoint",
        "ca_bundle",
        "timeout",
        "retries",
    ],
    "gcp-kms": ["key_name", "credentials_path", "encrypted_key_variable"],
    "keywhiz": ["server_url", "client_cert", "client_key", "ca_cert", "secret_name"],
}
REQUIRED = {
    "aws-kms": [],  # credentials_path is optional: the AWS credential chain stands in
    "gcp-kms": ["key_name"],
    "keywhiz": ["server_url", "client_cert", "client_key", "secret_name"],
}
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
GCP_KEY_NAME = "projects/acme-prod/locations/europe-west1/keyRings/acra/cryptoKeys/master"


# -- set-up ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def enterprise_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-in implementation, installed as a real distribution (not yet on sys.path)."""
    target = tmp_path_factory.mktemp("enterprise-site")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    command += ["--no-build-isolation", "--no-index", "--disable-pip-version-check"]
    command += ["--target", str(target), str(FIXTURE)]
    process = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    assert process.returncode == 0, process.stderr
    return target


@pytest.fixture
def implementation(enterprise_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Put the stand-in on sys.path for one test; yields its module (``LOADED`` cleared)."""
    monkeypatch.syspath_prepend(str(enterprise_site))
    module = importlib.import_module("kltest_enterprise")
    module.LOADED.clear()
    yield module
    module.LOADED.clear()
    importlib.invalidate_caches()


@pytest.fixture(autouse=True)
def no_cloud_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The native variables the placeholders read must come from the tests only.

    boto3 is installed here (tests/aws needs it), so keyloader-aws's ``aws_kms``
    plugin would replace the aws-kms placeholder: these tests leave it out
    (``KEYLOADER_PLUGINS``); tests/aws tests the real provider.
    """
    for name in list(os.environ):
        if name.startswith("AWS_") or name == "GOOGLE_APPLICATION_CREDENTIALS":
            monkeypatch.delenv(name)
    monkeypatch.setenv("KEYLOADER_PLUGINS", ",".join(PLACEHOLDER_PLUGINS))


@pytest.fixture(scope="module")
def pem_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real self-signed client certificate, its EC key, and a CA bundle."""
    directory = tmp_path_factory.mktemp("pem")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keyloader-test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    files = {"cert": cert_pem, "key": key_pem, "ca": cert_pem}
    paths = {name: directory / f"{name}.pem" for name in files}
    for name, content in files.items():
        paths[name].write_bytes(content)
        paths[name].chmod(0o600)
    return paths


@pytest.fixture
def valid(tmp_path: Path, pem_files: dict[str, Path]) -> dict[str, dict[str, str]]:
    """Valid options of each provider, as text (what the environment or the CLI give)."""
    aws = tmp_path / "aws-kms.json"
    aws.write_text(
        json.dumps(
            {"access_key_id": "AKIDEXAMPLE", "secret_access_key": AWS_SECRET, "region": "eu-west-1"}
        )
    )
    gcp = tmp_path / "gcp-sa.json"
    gcp.write_text(
        json.dumps(
            {
                "type": "service_account",
                "client_email": "acra@acme-prod.iam.gserviceaccount.com",
                "private_key": "-----BEGIN PRIVATE KEY-----\nnot a real key\n",
            }
        )
    )
    return {
        "aws-kms": {"credentials_path": str(aws), "key_alias": "alias/acra_master_key"},
        "gcp-kms": {"key_name": GCP_KEY_NAME, "credentials_path": str(gcp)},
        "keywhiz": {
            "server_url": "https://keywhiz.example.invalid:4444",
            "client_cert": str(pem_files["cert"]),
            "client_key": str(pem_files["key"]),
            "ca_cert": str(pem_files["ca"]),
            "secret_name": "acra_master_key",
        },
    }


@pytest.fixture
def master_key_text(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A fresh key, "encrypted" for the stand-ins: (base64 text, fingerprint)."""
    with generate_master_key() as key, key.to_text() as text:
        encoded = text.bytes().decode("ascii")
        fingerprint = key.fingerprint
    monkeypatch.setenv("ACRA_MASTER_KEY", encoded)
    monkeypatch.setenv("KLTEST_KEYWHIZ_SECRETS", json.dumps({"acra_master_key": encoded}))
    return encoded, fingerprint


def enter_state(state: str, request: pytest.FixtureRequest) -> bool:
    """Install the stand-in for ``available``; return the enterprise flag of ``state``."""
    if state == "available":
        request.getfixturevalue("implementation")
    return state != "locked"


def env_name(provider: str, option: str) -> str:
    return provider_option_env_names(provider, _option(provider, option))[0]


def _option(provider: str, option: str) -> Any:
    cls = make_plugin_manager(env={}, allow=PLACEHOLDER_PLUGINS).find_provider(provider)
    return next(o for o in cls.option_schema() if o.name == option)


# -- how a provider is selected ------------------------------------------------------------


def select_api(name: str, options: dict[str, str], enterprise: bool, _: pytest.MonkeyPatch) -> Any:
    return load_master_key(provider=name, provider_options=options, enterprise=enterprise)


def select_config(name: str, options: dict[str, str], enterprise: bool, _: Any) -> Any:
    lines = [f'provider = "{name}"', f"enterprise = {str(enterprise).lower()}", ""]
    lines.append(f"[providers.{name}]")
    lines += [f"{key} = {json.dumps(value)}" for key, value in options.items()]
    Path("keyloader.toml").write_text("\n".join(lines) + "\n")  # the cwd is a fresh temp dir
    return load_master_key()


def select_env(
    name: str, options: dict[str, str], enterprise: bool, monkeypatch: pytest.MonkeyPatch
) -> Any:
    monkeypatch.setenv("KEYLOADER_PROVIDER", name)
    monkeypatch.setenv("KEYLOADER_ENTERPRISE", "1" if enterprise else "0")
    for key, value in options.items():
        monkeypatch.setenv(env_name(name, key), value)
    return load_master_key()


def select_by_name(name: str, options: dict[str, str], enterprise: bool, _: Any) -> Any:
    """The core's own path: plugin manager lookup, then create_provider (no settings)."""
    pm = make_plugin_manager()
    cls = pm.find_provider(name)
    converted = {
        option.name: option.convert(options[option.name], origin=f"option {option.name!r}")
        if option.name in options
        else option.default
        for option in cls.option_schema()
    }
    provider = create_provider(pm, name, converted, set(options), enterprise=enterprise)
    return provider.load()


def select_alias(
    name: str, options: dict[str, str], enterprise: bool, monkeypatch: pytest.MonkeyPatch
) -> Any:
    alias = {"aws-kms": "kms_encrypted_master_key"}.get(name, name)
    return select_api(alias, options, enterprise, monkeypatch)


Selector = Callable[[str, dict[str, str], bool, pytest.MonkeyPatch], Any]
SELECTORS: dict[str, Selector] = {
    "api": select_api,
    "config": select_config,
    "env": select_env,
    "name": select_by_name,
    "alias": select_alias,
}


# -- the three states ------------------------------------------------------------------


@pytest.mark.parametrize("how", sorted(SELECTORS))
@pytest.mark.parametrize("name", NAMES)
def test_flag_off_is_an_enterprise_feature_error(
    name: str, how: str, valid: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(EnterpriseFeatureError) as excinfo:
        SELECTORS[how](name, valid[name], False, monkeypatch)
    message = str(excinfo.value)
    description = make_plugin_manager().find_provider(name).description
    assert f"provider '{name}' ({description})" in message  # what it is
    assert "Enterprise Edition feature" in message
    for hint in ("KEYLOADER_ENTERPRISE=1", "enterprise = true", "--enterprise", "enterprise=True"):
        assert hint in message


@pytest.mark.parametrize("how", sorted(SELECTORS))
@pytest.mark.parametrize("name", NAMES)
def test_flag_on_without_implementation_is_not_implemented(
    name: str, how: str, valid: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ProviderNotImplementedError) as excinfo:
        SELECTORS[how](name, valid[name], True, monkeypatch)
    message = str(excinfo.value)
    assert "placeholder" in message
    assert f"registers a non-placeholder provider named '{name}'" in message


@pytest.mark.parametrize("how", sorted(SELECTORS))
@pytest.mark.parametrize("name", NAMES)
def test_flag_on_with_implementation_loads_it_with_the_same_options(
    name: str,
    how: str,
    valid: dict[str, dict[str, str]],
    implementation: Any,
    master_key_text: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with SELECTORS[how](name, valid[name], True, monkeypatch) as key:
        assert key.fingerprint == master_key_text[1]
    [(loaded, config)] = implementation.LOADED
    assert loaded == name
    cls = make_plugin_manager().find_provider(name)
    assert cls.__module__ == "kltest_enterprise"
    for option in cls.option_schema():
        given = valid[name].get(option.name)
        expected = option.default if given is None else option.convert(given, origin="test")
        assert config[option.name] == expected, option.name


def test_the_implementation_sees_options_that_are_not_defaults(
    valid: dict[str, dict[str, str]],
    implementation: Any,
    master_key_text: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encoded, fingerprint = master_key_text
    monkeypatch.setenv("MY_WRAPPED_KEY", encoded)
    monkeypatch.delenv("ACRA_MASTER_KEY")
    options = {
        **valid["aws-kms"],
        "region": "us-gov-west-1",
        "key_alias": "alias/team/acra",
        "encrypted_key_variable": "MY_WRAPPED_KEY",
    }
    with load_master_key(provider="aws-kms", provider_options=options, enterprise=True) as key:
        assert key.fingerprint == fingerprint
    [(_, config)] = implementation.LOADED
    assert config["region"] == "us-gov-west-1"
    assert config["key_alias"] == "alias/team/acra"
    assert config["encrypted_key_variable"] == "MY_WRAPPED_KEY"
    assert config["credentials_path"] == Path(valid["aws-kms"]["credentials_path"])


# -- option validation comes first, required options last ---------------------------------


INVALID: list[tuple[str, str, Callable[[Path], str], str]] = [
    ("aws-kms", "credentials_path", lambda d: str(d / "missing.json"), "does not exist"),
    (
        "aws-kms",
        "credentials_path",
        lambda d: _write(d / "bad.json", "{not json"),
        "not valid JSON",
    ),
    (
        "aws-kms",
        "credentials_path",
        lambda d: _write(d / "extra.json", json.dumps({"secret_access_key": AWS_SECRET, "x": 1})),
        "unknown field 'x'",
    ),
    (
        "aws-kms",
        "credentials_path",
        lambda d: _write(d / "short.json", json.dumps({"secret_access_key": AWS_SECRET})),
        "field 'access_key_id' is missing",
    ),
    ("aws-kms", "region", lambda d: "EU West", "not an AWS region name"),
    ("aws-kms", "key_alias", lambda d: "acra_master_key", "not a KMS key alias"),
    ("gcp-kms", "key_name", lambda d: "projects/acme/keyRings/acra", "not a Cloud KMS"),
    ("gcp-kms", "credentials_path", lambda d: str(d / "nope.json"), "does not exist"),
    ("gcp-kms", "credentials_path", lambda d: _write(d / "list.json", "[]"), "JSON object"),
    ("keywhiz", "server_url", lambda d: "http://keywhiz.example.invalid", "https://"),
    ("keywhiz", "client_cert", lambda d: str(d / "nope.pem"), "does not exist"),
    ("keywhiz", "secret_name", lambda d: "a/b", "not a Keywhiz secret name"),
]


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("how", ["api", "config", "env", "name"])
@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize(("name", "option", "make", "expected"), INVALID)
def test_invalid_given_options_are_config_errors_in_every_state(
    name: str,
    option: str,
    make: Callable[[Path], str],
    expected: str,
    state: str,
    how: str,
    valid: dict[str, dict[str, str]],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    enterprise = enter_state(state, request)
    options = {**valid[name], option: make(tmp_path)}
    with pytest.raises(ConfigError) as excinfo:
        SELECTORS[how](name, options, enterprise, monkeypatch)
    message = str(excinfo.value)
    assert f"'{option}'" in message
    assert expected in message
    assert AWS_SECRET not in message


@pytest.mark.parametrize("name", NAMES)
def test_missing_required_options_are_reported_only_after_the_gate(
    name: str, request: pytest.FixtureRequest
) -> None:
    with pytest.raises(EnterpriseFeatureError):
        load_master_key(provider=name, enterprise=False)
    with pytest.raises(ProviderNotImplementedError):
        load_master_key(provider=name, enterprise=True)
    request.getfixturevalue("implementation")
    if not REQUIRED[name]:  # nothing is missing: the implementation loads, and says why not
        with pytest.raises(MasterKeyNotFoundError, match="ACRA_MASTER_KEY is not set"):
            load_master_key(provider=name, enterprise=True)
        return
    with pytest.raises(ConfigError) as excinfo:
        load_master_key(provider=name, enterprise=True)
    message = str(excinfo.value)
    for option in REQUIRED[name]:
        assert f"option '{option}'" in message
        assert env_name(name, option) in message
    for option in set(OPTIONS[name]) - set(REQUIRED[name]):
        assert f"option '{option}'" not in message


def test_a_config_file_can_turn_the_flag_on_and_configure_the_provider(
    valid: dict[str, dict[str, str]], implementation: Any, master_key_text: tuple[str, str]
) -> None:
    credentials = Path(valid["aws-kms"]["credentials_path"])
    Path("keyloader.toml").write_text(
        'provider = "kms_encrypted_master_key"\nenterprise = true\n\n'
        f'[providers.kms_encrypted_master_key]\ncredentials_path = "{credentials}"\n'
    )
    with load_master_key() as key:
        assert key.fingerprint == master_key_text[1]
    assert implementation.LOADED[0][1]["credentials_path"] == credentials


# -- nothing is contacted, no SDK is imported ----------------------------------------------

WATCH_NETWORK = """
import json, sys
network = []
sys.addaudithook(
    lambda event, args: network.append(event)
    if event.startswith(("socket.", "http.client.", "urllib.")) else None
)
"""

PROBE = (
    WATCH_NETWORK
    + """
from keyloader.api import load_master_key
from keyloader.errors import KeyloaderError
from keyloader.plugins import make_plugin_manager
outcomes = {}
for name, options in json.loads(sys.argv[1]).items():
    make_plugin_manager().provider_infos(enterprise=False)
    for enterprise in (False, True):
        for given in (options, {}):
            try:
                load_master_key(provider=name, provider_options=given, enterprise=enterprise)
                outcome = "loaded"
            except KeyloaderError as exc:
                outcome = type(exc).__name__
            outcomes[f"{name} {enterprise} {bool(given)}"] = outcome
heavy = set(sys.argv[2].split(","))
imported = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
print(json.dumps({"outcomes": outcomes, "imported": imported, "network": network}))
"""
)


def run_probe(options: dict[str, dict[str, str]], env: dict[str, str]) -> dict[str, Any]:
    process = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(options), ",".join(SDK_MODULES)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )
    assert process.returncode == 0, process.stderr
    result: dict[str, Any] = json.loads(process.stdout)
    return result


def test_the_network_watch_sees_a_connection_attempt() -> None:
    """The control: the audit hook of the probe does record network use."""
    code = WATCH_NETWORK + (
        "import socket\n"
        "try:\n    socket.create_connection(('127.0.0.1', 9), timeout=0.2)\n"
        "except OSError:\n    pass\n"
        "print(json.dumps(network))\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "socket.connect" in json.loads(process.stdout)


def test_no_sdk_is_imported_and_nothing_is_contacted(valid: dict[str, dict[str, str]]) -> None:
    result = run_probe(valid, dict(os.environ))
    expected = {}
    for name in NAMES:
        for given in (True, False):
            expected[f"{name} False {given}"] = "EnterpriseFeatureError"
            expected[f"{name} True {given}"] = "ProviderNotImplementedError"
    assert result == {"outcomes": expected, "imported": [], "network": []}


def test_with_the_implementation_still_no_sdk_and_no_network(
    valid: dict[str, dict[str, str]], enterprise_site: Path, master_key_text: tuple[str, str]
) -> None:
    env = {**os.environ, "PYTHONPATH": str(enterprise_site)}
    result = run_probe(valid, env)
    expected = {}
    for name in NAMES:
        for given in (True, False):
            expected[f"{name} False {given}"] = "EnterpriseFeatureError"
        expected[f"{name} True True"] = "loaded"
        # required options are reported after the gate; aws-kms has none (the AWS chain)
        expected[f"{name} True False"] = "ConfigError" if REQUIRED[name] else "loaded"
    assert result == {"outcomes": expected, "imported": [], "network": []}


# -- the listing: statuses and options -------------------------------------------------------


def infos(pm: KeyloaderPluginManager, enterprise: bool) -> dict[str, Any]:
    return {row.name: row for row in pm.provider_infos(enterprise=enterprise) if row.name in NAMES}


def test_statuses_in_each_state(request: pytest.FixtureRequest) -> None:
    pm = make_plugin_manager()
    assert {n: r.status for n, r in infos(pm, False).items()} == dict.fromkeys(
        NAMES, ProviderStatus.LOCKED
    )
    assert {n: r.status for n, r in infos(pm, True).items()} == dict.fromkeys(
        NAMES, ProviderStatus.UNAVAILABLE
    )
    for row in infos(pm, True).values():
        assert (row.enterprise, row.placeholder, row.error) == (True, True, None)
        assert row.plugin == {"aws-kms": "aws", "gcp-kms": "gcp", "keywhiz": "keywhiz"}[row.name]
    request.getfixturevalue("implementation")
    pm = make_plugin_manager()
    assert {n: r.status for n, r in infos(pm, False).items()} == dict.fromkeys(
        NAMES, ProviderStatus.LOCKED
    )
    rows = infos(pm, True)
    assert {n: r.status for n, r in rows.items()} == dict.fromkeys(NAMES, ProviderStatus.AVAILABLE)
    assert {r.plugin for r in rows.values()} == {"kltest-enterprise"}
    assert not any(r.placeholder for r in rows.values())


@pytest.mark.parametrize("enterprise", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_provider_info_lists_every_option(name: str, enterprise: bool) -> None:
    info = make_plugin_manager().provider_info(name, enterprise=enterprise)
    assert info.name == name
    assert info.description
    assert [o.name for o in info.options] == [*OPTIONS[name], "keystore_version"]
    assert [o.name for o in info.options if o.required] == REQUIRED[name]
    assert all(o.help for o in info.options)
    assert not any(o.secret for o in info.options)
    expected = ProviderStatus.UNAVAILABLE if enterprise else ProviderStatus.LOCKED
    assert info.status is expected


def test_provider_info_by_acra_alias_and_defaults() -> None:
    info = make_plugin_manager().provider_info("kms_encrypted_master_key", enterprise=False)
    assert info.name == "aws-kms"
    assert info.aliases == ("kms_encrypted_master_key",)
    defaults = {o.name: o.default for o in info.options}
    assert defaults["key_alias"] == "alias/acra_master_key"
    assert defaults["encrypted_key_variable"] == "ACRA_MASTER_KEY"
    region = next(o for o in info.options if o.name == "region")
    assert provider_option_env_names("aws-kms", region) == (
        "KEYLOADER_AWS_KMS_REGION",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    )


def test_the_implementation_keeps_the_option_schema(request: pytest.FixtureRequest) -> None:
    before = {n: make_plugin_manager().provider_info(n, enterprise=True) for n in NAMES}
    request.getfixturevalue("implementation")
    pm = make_plugin_manager()
    for name in NAMES:
        after = pm.provider_info(name, enterprise=True)
        assert after.cls is not before[name].cls
        assert after.options == before[name].options


# -- the CLI -----------------------------------------------------------------------------


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def cli_options(options: dict[str, str]) -> list[str]:
    return [arg for key, value in options.items() for arg in ("-o", f"{key}={value}")]


def assert_one_error_line(result: Result, *expected: str) -> str:
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    for text in expected:
        assert text in line
    assert "Traceback" not in result.stderr
    return line


@pytest.mark.parametrize("name", NAMES)
def test_cli_flag_off(name: str, valid: dict[str, dict[str, str]]) -> None:
    result = cli("--provider", name, *cli_options(valid[name]), "master-key", "check")
    assert_one_error_line(result, f"'{name}'", "Enterprise Edition feature", "--enterprise")


def test_cli_flag_off_by_acra_alias(valid: dict[str, dict[str, str]]) -> None:
    args = ["--provider", "kms_encrypted_master_key", *cli_options(valid["aws-kms"])]
    result = cli(*args, "master-key", "check")
    assert_one_error_line(result, "'aws-kms'", "Enterprise Edition feature")


@pytest.mark.parametrize("name", NAMES)
def test_cli_flag_on_without_implementation(name: str, valid: dict[str, dict[str, str]]) -> None:
    args = ["--enterprise", "--provider", name, *cli_options(valid[name])]
    result = cli(*args, "master-key", "check")
    assert_one_error_line(result, f"provider named '{name}'", "placeholder")


@pytest.mark.parametrize("name", NAMES)
def test_cli_flag_on_with_implementation(
    name: str,
    valid: dict[str, dict[str, str]],
    implementation: Any,
    master_key_text: tuple[str, str],
) -> None:
    args = ["--enterprise", "--provider", name, *cli_options(valid[name]), "--json"]
    result = cli(*args, "master-key", "check")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    document = json.loads(result.stdout)
    assert (document["provider"], document["fingerprint"]) == (name, master_key_text[1])
    assert master_key_text[0] not in result.stdout
    assert implementation.LOADED[0][0] == name
    if REQUIRED[name]:
        missing = cli("--enterprise", "--provider", name, "master-key", "check")
        assert_one_error_line(missing, f"option '{REQUIRED[name][0]}'")


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize(("name", "option", "make", "expected"), INVALID)
def test_cli_invalid_options_in_every_state(
    name: str,
    option: str,
    make: Callable[[Path], str],
    expected: str,
    state: str,
    valid: dict[str, dict[str, str]],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    flag = ["--enterprise"] if enter_state(state, request) else []
    options = {**valid[name], option: make(tmp_path)}
    result = cli(*flag, "--provider", name, *cli_options(options), "master-key", "check")
    assert_one_error_line(result, f"'{option}'", expected)
    assert AWS_SECRET not in result.stderr


@pytest.mark.parametrize("state", STATES)
def test_cli_providers_listing(state: str, request: pytest.FixtureRequest) -> None:
    flag = ["--enterprise"] if enter_state(state, request) else []
    result = cli(*flag, "providers", "--json")
    assert result.exit_code == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["providers"]}
    for name in NAMES:
        assert rows[name]["status"] == state
        assert rows[name]["enterprise"] is True


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("name", NAMES)
def test_cli_providers_show(name: str, state: str, request: pytest.FixtureRequest) -> None:
    flag = ["--enterprise"] if enter_state(state, request) else []
    result = cli(*flag, "providers", "show", name, "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)["provider"]
    assert (document["name"], document["status"]) == (name, state)
    assert [o["name"] for o in document["options"]] == [*OPTIONS[name], "keystore_version"]
    assert [o["name"] for o in document["options"] if o["required"]] == REQUIRED[name]


def test_gate_errors_stay_keyloader_errors() -> None:
    for enterprise, error in ((False, EnterpriseFeatureError), (True, ProviderNotImplementedError)):
        with pytest.raises(KeyloaderError) as excinfo:
            load_master_key(provider="gcp-kms", enterprise=enterprise)
        assert type(excinfo.value) is error
