"""JWT, Kubernetes and TLS certificate logins against a real OpenBao: JWTs signed in the test
with ``cryptography``, the Kubernetes TokenReview API answered by a small loopback stand-in
(no package ships one), the certificate login through the dev server's mutual-TLS listener."""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from keyloader.audit import AuditEvent
from keyloader.errors import AuthenticationError, ConfigError
from keyloader.masterkey import MasterKey
from keyloader_vault import VaultProvider
from keyloader_vault.options import KUBERNETES_JWT

from ..keytext import text_of
from ..leakscan import Workflow
from ..pki import make_pki
from .conftest import APPROLE_POLICY
from .test_vault_load import put_v2, unique

NAMESPACE, ACCOUNT = "acra", "keyloader"
ACCOUNT_UID = str(uuid.uuid4())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(key: ec.EllipticCurvePrivateKey, claims: dict[str, Any]) -> str:
    """An ES256 JWT of ``claims``."""
    head = _b64(json.dumps({"alg": "ES256", "typ": "JWT", "kid": "test"}).encode())
    body = _b64(json.dumps(claims).encode())
    r, s = decode_dss_signature(key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256())))
    return f"{head}.{body}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iat": now, "nbf": now - 5, "exp": now + 600, **extra}


@pytest.fixture
def stored(bao: Any, key: MasterKey) -> str:
    name = unique()
    put_v2(bao, name, {"acra_master_key": text_of(key)})
    return f"secret/{name}"


def _provider(bao: Any, events: list[AuditEvent], **options: Any) -> VaultProvider:
    provider = VaultProvider({"address": bao.address, **options})
    provider.audit_sink = events.append
    return provider


def _loads_then_closes(provider: VaultProvider, key: MasterKey, times: int) -> None:
    """``times`` loads that each return ``key``, then the provider closed."""
    try:
        for _ in range(times):
            with provider.load() as loaded:
                assert loaded == key
    finally:
        provider.close()


# -- JWT ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jwt_key(bao: Any) -> ec.EllipticCurvePrivateKey:
    """A signing key whose public half the ``jwt`` auth method trusts; role ``keyloader``."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    admin = bao.admin()
    admin.sys.enable_auth_method("jwt")
    admin.write_data("auth/jwt/config", data={"jwt_validation_pubkeys": [public.decode()]})
    admin.write_data(
        "auth/jwt/role/keyloader",
        data={
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": ["keyloader"],
            "token_policies": [APPROLE_POLICY],
            "token_ttl": "1h",
        },
    )
    return key


def test_a_jwt_login_reads_its_file_at_each_login(
    bao: Any, key: MasterKey, stored: str, jwt_key: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    jwt_file = tmp_path / "jwt"
    jwt_file.write_text(make_jwt(jwt_key, _claims(sub="ci-job", aud="keyloader")))
    events: list[AuditEvent] = []
    options = {"auth_method": "jwt", "role": "keyloader", "jwt_file": jwt_file}
    _loads_then_closes(_provider(bao, events, secrets_path=stored, **options), key, 3)
    assert [(e.action, e.method) for e in events] == [("provider_login", "jwt")]
    jwt_file.write_text(make_jwt(jwt_key, _claims(sub="ci-job", aud="someone-else")))
    provider = _provider(bao, events, secrets_path=stored, **options)
    try:
        with pytest.raises(AuthenticationError, match="jwt login at auth/jwt") as caught:
            provider.load()
    finally:
        provider.close()
    assert jwt_file.read_text() not in str(caught.value)
    with pytest.raises(ConfigError, match="needs option 'role'"):
        VaultProvider({"address": bao.address, "auth_method": "jwt", "jwt_file": jwt_file}).load()


# -- Kubernetes --------------------------------------------------------------------------------


class TokenReviews(BaseHTTPRequestHandler):
    """The Kubernetes TokenReview API as OpenBao's kubernetes auth method calls it: every
    token whose JWT names ``acra/keyloader`` is that service account, any other is not."""

    reviewed: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        token = body["spec"]["token"]
        payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        TokenReviews.reviewed.append(self.path)
        known = payload.get("kubernetes.io/serviceaccount/service-account.name") == ACCOUNT
        status: dict[str, Any] = {"authenticated": known}
        if known:
            status["user"] = {
                "username": f"system:serviceaccount:{NAMESPACE}:{ACCOUNT}",
                "uid": ACCOUNT_UID,
                "groups": ["system:serviceaccounts"],
            }
        answer = json.dumps(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status}
        ).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def kubernetes(
    bao: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ec.EllipticCurvePrivateKey]:
    """OpenBao's kubernetes auth method pointed at the loopback TokenReview stand-in (plain
    HTTP; the CA it insists on is a throw-away one)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), TokenReviews)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    admin = bao.admin()
    admin.sys.enable_auth_method("kubernetes")
    admin.write_data(
        "auth/kubernetes/config",
        data={
            "kubernetes_host": f"http://127.0.0.1:{server.server_port}",
            "kubernetes_ca_cert": make_pki(tmp_path_factory.mktemp("k8s"))["mtls_ca"].read_text(),
            "disable_local_ca_jwt": True,
        },
    )
    admin.write_data(
        "auth/kubernetes/role/keyloader",
        data={
            "bound_service_account_names": [ACCOUNT],
            "bound_service_account_namespaces": [NAMESPACE],
            "token_policies": [APPROLE_POLICY],
            "token_ttl": "1h",
        },
    )
    try:
        yield ec.generate_private_key(ec.SECP256R1())
    finally:
        server.shutdown()
        server.server_close()


def _service_account_token(key: ec.EllipticCurvePrivateKey, name: str = ACCOUNT) -> str:
    return make_jwt(
        key,
        _claims(
            iss="kubernetes/serviceaccount",
            sub=f"system:serviceaccount:{NAMESPACE}:{name}",
            **{
                "kubernetes.io/serviceaccount/namespace": NAMESPACE,
                "kubernetes.io/serviceaccount/service-account.name": name,
                "kubernetes.io/serviceaccount/service-account.uid": ACCOUNT_UID,
            },
        ),
    )


def test_a_kubernetes_login_with_the_service_account_token(
    bao: Any,
    key: MasterKey,
    stored: str,
    kubernetes: ec.EllipticCurvePrivateKey,
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(_service_account_token(kubernetes))
    events: list[AuditEvent] = []
    options = {"auth_method": "kubernetes", "role": "keyloader", "jwt_file": token_file}
    reviews = len(TokenReviews.reviewed)
    _loads_then_closes(_provider(bao, events, secrets_path=stored, **options), key, 3)
    assert TokenReviews.reviewed[reviews:] == ["/apis/authentication.k8s.io/v1/tokenreviews"]
    assert [(e.action, e.method) for e in events] == [("provider_login", "kubernetes")]
    token_file.write_text(_service_account_token(kubernetes, name="intruder"))
    provider = _provider(bao, events, secrets_path=stored, **options)
    try:
        with pytest.raises(AuthenticationError, match="kubernetes login at auth/kubernetes"):
            provider.load()
    finally:
        provider.close()


def test_kubernetes_reads_the_pods_token_by_default(bao: Any, stored: str) -> None:
    provider = VaultProvider(
        {"address": bao.address, "secrets_path": stored, "auth_method": "kubernetes", "role": "x"}
    )
    try:
        with pytest.raises(ConfigError, match=re.escape(KUBERNETES_JWT)):
            provider.load()
    finally:
        provider.close()


# -- TLS certificates --------------------------------------------------------------------------


def test_a_certificate_login_with_the_mutual_tls_client_certificate(
    bao_tls: Any, key: MasterKey, tmp_path: Path
) -> None:
    pki = bao_tls.extra
    admin = bao_tls.admin()
    if "cert/" not in admin.sys.list_auth_methods()["data"]:
        admin.sys.enable_auth_method("cert")
    admin.sys.create_or_update_policy(
        "cert-read", 'path "secret/data/*" { capabilities = ["read"] }'
    )
    admin.write_data(
        "auth/cert/certs/keyloader",
        data={"certificate": Path(pki["mtls_ca"]).read_text(), "token_policies": ["cert-read"]},
    )
    name = unique()
    admin.secrets.kv.v2.create_or_update_secret(
        path=name, secret={"acra_master_key": text_of(key)}, mount_point="secret"
    )
    events: list[AuditEvent] = []
    options = {
        "address": bao_tls.mtls_address,
        "ca_cert": pki["mtls_ca"],
        "client_cert": pki["client_cert"],
        "client_key": pki["client_key"],
        "auth_method": "cert",
        "secrets_path": f"secret/{name}",
    }
    _loads_then_closes(_provider(bao_tls, events, **options), key, 2)
    assert [(e.action, e.method) for e in events] == [("provider_login", "cert")]
    with pytest.raises(ConfigError, match=r"cert login .* client_cert and client_key"):
        VaultProvider({"address": bao_tls.address, "auth_method": "cert"}).load()


def test_the_new_logins_leak_nothing_through_the_cli_at_debug(
    bao: Any,
    key: MasterKey,
    stored: str,
    jwt_key: ec.EllipticCurvePrivateKey,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """JWT logins and a wrapped AppRole secret id through ``keyloader`` at DEBUG, failed and
    not, with and without tracebacks: no JWT, wrapping token, secret id or key anywhere."""
    caplog.set_level(logging.DEBUG)
    flow = Workflow(caplog)
    jwt, refused_jwt = (
        make_jwt(jwt_key, _claims(sub="ci-job", aud=audience))
        for audience in ("keyloader", "someone-else")
    )
    jwt_file = tmp_path / "jwt"
    vault = ["--provider", "vault", "-o", f"address={bao.address}", "-o", f"secrets_path={stored}"]
    base = {"KEYLOADER_LOG_LEVEL": "DEBUG", "VAULT_TOKEN": None, "VAULT_ADDR": None}
    as_jwt = [*vault, "-o", "auth_method=jwt", "-o", "role=keyloader", "-o", f"jwt_file={jwt_file}"]
    jwt_file.write_text(jwt)
    flow.run(*as_jwt, "master-key", "check", env=base)
    jwt_file.write_text(refused_jwt)
    for debug in ("0", "1"):
        flow.run(*as_jwt, "master-key", "check", expect=1, env={**base, "KEYLOADER_DEBUG": debug})
    approle = bao.admin().auth.approle
    role_id = approle.read_role_id("keyloader")["data"]["role_id"]
    answer = approle.generate_secret_id("keyloader", wrap_ttl="60s")
    wrapped = answer["wrap_info"]["token"]
    as_wrapped = [*vault, "-o", f"role_id={role_id}"]
    with_wrapped = {**base, "KEYLOADER_VAULT_SECRET_ID_WRAPPED": wrapped}
    flow.run(*as_wrapped, "master-key", "check", "--json", env=with_wrapped)
    for debug in ("0", "1"):  # spent: a wrapping token works once
        failed = flow.run(
            *as_wrapped,
            "master-key",
            "check",
            expect=1,
            env={**with_wrapped, "KEYLOADER_DEBUG": debug},
        )
        assert b"would not unwrap" in failed.stderr
    flow.run(*vault, "-o", f"secret_id_wrapped={wrapped}", "master-key", "check", expect=1)
    with key.to_bytes() as raw:
        secrets = [raw.bytes()]
    assert flow.scan(secrets, never=[jwt.encode(), refused_jwt.encode(), wrapped.encode()]) == 0
