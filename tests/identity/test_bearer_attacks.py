"""Forged, broken and missing bearer tokens against the real gateway over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import openai
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.identity.tokens import LEEWAY_S
from gateway.reasons import Reason
from tests.support.gateway import GatewayFactory, RunningGateway


@pytest.fixture(scope="module")
def gw(module_gateway: RunningGateway) -> RunningGateway:
    """One gateway for every attack; each check finds its own audit row by decision id."""
    return module_gateway


def _gateway_key(gw: RunningGateway) -> tuple[ec.EllipticCurvePrivateKey, str]:
    """The gateway's own signing key (from its database) and its kid (also in the JWKS)."""
    signing = gw.signing_key()
    (jwk,) = httpx.get(f"{gw.base_url}/.well-known/jwks.json").json()["keys"]
    assert jwk["kid"] == signing.kid
    return signing.private_key, signing.kid


def _claims(gw: RunningGateway, **overrides: Any) -> dict[str, Any]:
    client_id = gw.credentials["critical"][0]
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": gw.settings.issuer,
        "aud": gw.settings.audience,
        "sub": client_id,
        "client_id": client_id,
        "org": gw.org_ids["critical"],
        "tier": "critical",
        "scope": "models",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "forged-jti",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signed_by_gateway(gw: RunningGateway, **overrides: Any) -> str:
    key, kid = _gateway_key(gw)
    return jwt.encode(_claims(gw, **overrides), key, algorithm="ES256", headers={"kid": kid})


def _alg_none(gw: RunningGateway) -> str:
    _, kid = _gateway_key(gw)
    return jwt.encode(_claims(gw), None, algorithm="none", headers={"kid": kid})


def _hs256_with_public_pem(gw: RunningGateway) -> str:
    """The classic confusion attack: HMAC keyed with the gateway's public key PEM."""
    key, kid = _gateway_key(gw)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = _b64(json.dumps(_claims(gw)).encode())
    signature = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def _rs256(gw: RunningGateway) -> str:
    _, kid = _gateway_key(gw)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(_claims(gw), rsa_key, algorithm="RS256", headers={"kid": kid})


def _foreign_key(gw: RunningGateway, *, claim_our_kid: bool) -> str:
    _, kid = _gateway_key(gw)
    other = ec.generate_private_key(ec.SECP256R1())
    headers = {"kid": kid if claim_our_kid else "attacker-key-1"}
    return jwt.encode(_claims(gw), other, algorithm="ES256", headers=headers)


def _non_string_kid(gw: RunningGateway) -> str:
    header = _b64(json.dumps({"alg": "ES256", "kid": ["x"]}).encode())
    return f"{header}.{_b64(json.dumps(_claims(gw)).encode())}.{_b64(b'x' * 64)}"


# name → (Authorization header builder, expected reason)
ATTACKS: dict[str, tuple[Callable[[RunningGateway], str | None], Reason]] = {
    "missing_header": (lambda gw: None, Reason.TOKEN_MISSING),
    "basic_scheme": (lambda gw: "Basic " + _b64(b"user:pass"), Reason.TOKEN_MALFORMED),
    "token_without_scheme": (lambda gw: _signed_by_gateway(gw), Reason.TOKEN_MALFORMED),
    "garbage": (lambda gw: "Bearer this-is-not-a-jwt", Reason.TOKEN_MALFORMED),
    "alg_none": (lambda gw: f"Bearer {_alg_none(gw)}", Reason.TOKEN_ALG_NOT_ALLOWED),
    "hs256_public_pem": (
        lambda gw: f"Bearer {_hs256_with_public_pem(gw)}",
        Reason.TOKEN_ALG_NOT_ALLOWED,
    ),
    "rs256": (lambda gw: f"Bearer {_rs256(gw)}", Reason.TOKEN_ALG_NOT_ALLOWED),
    "unknown_kid": (
        lambda gw: f"Bearer {_foreign_key(gw, claim_our_kid=False)}",
        Reason.TOKEN_UNKNOWN_KID,
    ),
    "foreign_key_our_kid": (
        lambda gw: f"Bearer {_foreign_key(gw, claim_our_kid=True)}",
        Reason.TOKEN_BAD_SIGNATURE,
    ),
    "non_string_kid": (lambda gw: f"Bearer {_non_string_kid(gw)}", Reason.TOKEN_MALFORMED),
    "wrong_issuer": (
        lambda gw: f"Bearer {_signed_by_gateway(gw, iss='https://evil.example')}",
        Reason.TOKEN_WRONG_ISSUER,
    ),
    "wrong_audience": (
        lambda gw: f"Bearer {_signed_by_gateway(gw, aud='another-api')}",
        Reason.TOKEN_WRONG_AUDIENCE,
    ),
    "expired": (
        lambda gw: f"Bearer {_signed_by_gateway(gw, exp=int(time.time()) - LEEWAY_S - 60)}",
        Reason.TOKEN_EXPIRED,
    ),
    "not_yet_valid": (
        lambda gw: f"Bearer {_signed_by_gateway(gw, nbf=int(time.time()) + LEEWAY_S + 300)}",
        Reason.TOKEN_NOT_YET_VALID,
    ),
    "missing_org_claim": (
        lambda gw: f"Bearer {_signed_by_gateway(gw, org=None)}",
        Reason.TOKEN_MISSING_CLAIM,
    ),
    "missing_jti_claim": (
        lambda gw: f"Bearer {_signed_by_gateway(gw, jti=None)}",
        Reason.TOKEN_MISSING_CLAIM,
    ),
}


def _call(gw: RunningGateway, endpoint: str, authorization: str | None) -> httpx.Response:
    headers = {"authorization": authorization} if authorization is not None else {}
    if endpoint == "chat":
        return httpx.post(
            f"{gw.base_url}/v1/chat/completions",
            headers=headers,
            json={"model": "cyber", "messages": [{"role": "user", "content": "hi"}]},
        )
    return httpx.get(f"{gw.base_url}/v1/models", headers=headers)


@pytest.mark.parametrize("endpoint", ["chat", "models"])
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attack_is_401_with_reason_and_one_audit_row(
    gw: RunningGateway, attack: str, endpoint: str
) -> None:
    """Each bad token is a 401 in OpenAI format with its reason, audited once as a deny."""
    build, reason = ATTACKS[attack]
    authorization = build(gw)
    resp = _call(gw, endpoint, authorization)

    assert resp.status_code == 401, resp.text
    challenge = resp.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    if reason != Reason.TOKEN_MISSING:
        assert f'error_description="{reason}"' in challenge
    body = resp.json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == "authentication_error"
    assert body["error"]["code"] == reason
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]

    row = gw.audit_row(resp.headers["x-decision-id"])
    assert (row["decision"], row["status"]) == ("deny", 401)
    assert json.loads(row["reasons"]) == [reason]
    assert row["endpoint"] == ("chat.completions" if endpoint == "chat" else "models")
    # Nothing from an unverified token is trusted into the record.
    assert (row["subject"], row["client_id"], row["org_id"], row["token_id"], row["tier"]) == (
        None,
        None,
        None,
        None,
        None,
    )
    if authorization:
        token = authorization.split(" ", 1)[-1]
        assert all(token not in str(value) for value in row.values())
        assert token not in resp.text
        assert token not in challenge


def test_valid_token_is_never_written_to_audit(gw: RunningGateway) -> None:
    """An allowed call's audit row holds the jti but never the raw token."""
    token = gw.token("public")
    resp = httpx.post(
        f"{gw.base_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {token}"},
        json={"model": "general", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert resp.status_code == 200, resp.text
    row = gw.audit_row(resp.headers["x-decision-id"])
    assert row["decision"] == "allow"
    assert row["token_id"] == jwt.decode(token, options={"verify_signature": False})["jti"]
    for part in (token, *token.split(".")):
        assert all(part not in str(value) for value in row.values())


def test_openai_sdk_sees_authentication_error(gw: RunningGateway) -> None:
    """The official SDK raises AuthenticationError carrying the stable reason code."""
    client = openai.OpenAI(
        base_url=f"{gw.base_url}/v1", api_key=_signed_by_gateway(gw, aud="x"), max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as err:
        client.models.list()
    assert err.value.status_code == 401
    assert err.value.code == Reason.TOKEN_WRONG_AUDIENCE
    row = gw.audit_row(err.value.response.headers["x-decision-id"])
    assert (row["decision"], row["status"]) == ("deny", 401)


def test_openai_sdk_sees_unknown_kid_on_chat(gw: RunningGateway) -> None:
    """A token signed by a foreign key is refused on chat with token_unknown_kid."""
    factory_token = _foreign_key(gw, claim_our_kid=False)
    client = openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=factory_token, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        client.chat.completions.create(model="general", messages=[{"role": "user", "content": "x"}])
    assert err.value.code == Reason.TOKEN_UNKNOWN_KID


def test_other_gateway_token_refused(gw: RunningGateway, gateway_factory: GatewayFactory) -> None:
    """A genuine token issued by another gateway (own key, own issuer) is refused here."""
    other = gateway_factory.start()
    resp = _call(gw, "models", f"Bearer {other.token('critical')}")
    assert resp.status_code == 401
    # Its issuer (another URL) is not one this gateway trusts: refused before any key lookup.
    assert resp.json()["error"]["code"] == Reason.TOKEN_WRONG_ISSUER
