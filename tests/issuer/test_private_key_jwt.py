"""private_key_jwt (RFC 7523) client authentication, beside client secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.admin import ops
from tests.support.gateway import GatewayFactory, RunningGateway

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _public_jwk(key: Any, kid: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
    return {**json.loads(algorithm.to_jwk(key.public_key())), "kid": kid}


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }


@pytest.fixture(scope="module")
def gw(module_gateway: RunningGateway, keys: dict[str, Any]) -> RunningGateway:
    """The critical client registers both public keys through the CLI, as an admin would."""
    client_id = module_gateway.credentials["critical"][0]
    jwks = {"keys": [_public_jwk(keys["ec"], "ec-1"), _public_jwk(keys["rsa"], "rsa-1")]}
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "client", "jwks", "set", client_id, "-"],
        input=json.dumps(jwks),
        env={**os.environ, "TACGW_DATABASE_URL": module_gateway.database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "ec-1, rsa-1" in done.stdout
    return module_gateway


def _assertion(
    gw: RunningGateway, key: Any, *, alg: str = "ES256", kid: str = "ec-1", **claims: Any
) -> str:
    client_id = gw.credentials["critical"][0]
    now = int(time.time())
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": f"{gw.settings.issuer}/oauth/token",
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
        **claims,
    }
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _token_request(gw: RunningGateway, assertion: str, **extra: str) -> httpx.Response:
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        **extra,
    }
    return httpx.post(f"{gw.base_url}/oauth/token", data=data)


def test_authlib_client_authenticates_with_private_key_jwt(
    gw: RunningGateway, keys: dict[str, Any]
) -> None:
    """authlib's stock client and PrivateKeyJWT: a token whose `acr` says how it was got."""
    client_id = gw.credentials["critical"][0]
    pem = (
        keys["rsa"]
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    endpoint = f"{gw.base_url}/oauth/token"
    with OAuth2Client(client_id, pem, token_endpoint_auth_method="private_key_jwt") as oauth:
        oauth.register_client_auth_method(PrivateKeyJWT(endpoint))
        token = oauth.fetch_token(endpoint, grant_type="client_credentials")
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == client_id and claims["acr"] == "private_key_jwt"
    reply = httpx.get(
        f"{gw.base_url}/v1/models", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert reply.status_code == 200
    # A bearer token: the critical model (DPoP only) is not listed, the others are.
    assert {m["id"] for m in reply.json()["data"]} == {"general", "general-tac"}


def test_ec_assertion_works_and_is_good_once(gw: RunningGateway, keys: dict[str, Any]) -> None:
    """An ES256 assertion gets a token; the same assertion again is refused (jti replay)."""
    assertion = _assertion(gw, keys["ec"])
    first = _token_request(gw, assertion)
    assert first.status_code == 200, first.text
    again = _token_request(gw, assertion)
    assert again.status_code == 401 and again.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "case",
    ["foreign_key", "wrong_audience", "expired", "iss_not_sub", "hs256_with_public_jwk", "no_jti"],
)
def test_bad_assertions_are_invalid_client(
    gw: RunningGateway, keys: dict[str, Any], case: str
) -> None:
    """Whatever is wrong with the assertion, the answer is the same invalid_client."""
    now = int(time.time())
    if case == "foreign_key":
        assertion = _assertion(gw, ec.generate_private_key(ec.SECP256R1()))
    elif case == "wrong_audience":
        assertion = _assertion(gw, keys["ec"], aud="https://another.example/token")
    elif case == "expired":
        assertion = _assertion(gw, keys["ec"], iat=now - 600, exp=now - 300)
    elif case == "iss_not_sub":
        assertion = _assertion(gw, keys["ec"], iss="someone-else")
    elif case == "no_jti":
        assertion = _assertion(gw, keys["ec"], jti=None)
    else:
        # The key confusion attack: HMAC keyed with the registered public key's JSON
        # (built by hand: PyJWT itself refuses to use a JWK as an HMAC secret).
        secret = json.dumps(_public_jwk(keys["ec"], "ec-1")).encode()
        client_id = gw.credentials["critical"][0]
        body = {
            "iss": client_id,
            "sub": client_id,
            "aud": f"{gw.settings.issuer}/oauth/token",
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        }
        signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'kid': 'ec-1'}).encode())}." + _b64(
            json.dumps(body).encode()
        )
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        assertion = f"{signing_input}.{_b64(mac)}"
    reply = _token_request(gw, assertion)
    assert reply.status_code in (400, 401), reply.text
    assert reply.json() == {
        "error": "invalid_client",
        "error_description": "Client authentication failed.",
    }


def test_a_client_without_keys_cannot_use_private_key_jwt(gw: RunningGateway) -> None:
    """The public-tier client registered no JWKS: its assertions authenticate nothing."""
    client_id = gw.credentials["public"][0]
    key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": client_id,
            "sub": client_id,
            "aud": f"{gw.settings.issuer}/oauth/token",
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        },
        key,
        algorithm="ES256",
    )
    reply = _token_request(gw, assertion)
    assert reply.json()["error"] == "invalid_client"


def test_revocation_and_introspection_accept_private_key_jwt(
    gw: RunningGateway, keys: dict[str, Any]
) -> None:
    """The same client authentication works at the other endpoints (their own audience)."""
    token = gw.token("critical")
    base = f"{gw.settings.issuer}/oauth"

    def auth(endpoint: str) -> dict[str, str]:
        assertion = _assertion(gw, keys["ec"], aud=f"{base}/{endpoint}")
        return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}

    look = httpx.post(
        f"{gw.base_url}/oauth/introspect", data={"token": token, **auth("introspect")}
    )
    assert look.status_code == 200 and look.json()["active"] is True
    gone = httpx.post(f"{gw.base_url}/oauth/revoke", data={"token": token, **auth("revoke")})
    assert gone.status_code == 200
    look = httpx.post(
        f"{gw.base_url}/oauth/introspect", data={"token": token, **auth("introspect")}
    )
    assert look.json() == {"active": False}


@pytest.mark.parametrize(
    ("jwks", "message"),
    [
        ({"keys": []}, "at least one key"),
        ({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}, "no shared secrets"),
        ("private", "private part"),
        ({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}, "kid"),
    ],
)
def test_unusable_jwks_is_refused_at_registration(
    gateway_factory: GatewayFactory, tmp_path: Path, jwks: Any, message: str
) -> None:
    """Secrets, private keys and keys without a kid never get registered."""
    if jwks == "private":
        private = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1())))
        jwks = {"keys": [{**private, "kid": "k"}]}
    with pytest.raises(ValueError, match=message):
        ops.check_client_jwks(jwks)
