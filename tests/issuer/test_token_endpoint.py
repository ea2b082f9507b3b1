"""The real token endpoint (client credentials via authlib), served by real uvicorn."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import text

from gateway.admin import ops
from tests.support.gateway import GatewayFactory, RunningGateway


@pytest.fixture(scope="module")
def gw(module_gateway: RunningGateway) -> RunningGateway:
    """One gateway for the read-only tests in this module."""
    return module_gateway


def _post(gw: RunningGateway, data: dict[str, str], auth: tuple[str, str] | None = None) -> Any:
    return httpx.post(f"{gw.base_url}/oauth/token", data=data, auth=auth)


def _verify_with_jwks(gw: RunningGateway, token: str) -> dict[str, Any]:
    keys = httpx.get(f"{gw.base_url}/.well-known/jwks.json").json()["keys"]
    kid = jwt.get_unverified_header(token)["kid"]
    (jwk,) = [k for k in keys if k["kid"] == kid]
    public = jwt.PyJWK(jwk).key
    claims: dict[str, Any] = jwt.decode(
        token,
        public,
        algorithms=["ES256"],
        audience=gw.settings.audience,
        issuer=gw.settings.issuer,
        options={"require": ["iss", "aud", "exp", "jti", "sub", "iat"]},
    )
    return claims


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
@pytest.mark.parametrize("tier", ["public", "verified", "critical"])
def test_client_credentials_issue_verifiable_es256_jwt(
    gw: RunningGateway, method: str, tier: str
) -> None:
    """Both auth methods issue an ES256 JWT, verifiable with the published JWKS key."""
    client_id, secret = gw.credentials[tier]
    if method == "client_secret_basic":
        reply = _post(gw, {"grant_type": "client_credentials"}, auth=(client_id, secret))
    else:
        reply = _post(
            gw,
            {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == gw.settings.token_ttl_s
    assert body["scope"] == "models"
    assert reply.headers["cache-control"] == "no-store"
    token = body["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    claims = _verify_with_jwks(gw, token)
    assert claims["iss"] == gw.settings.issuer
    assert claims["aud"] == gw.settings.audience
    assert claims["sub"] == claims["client_id"] == client_id
    assert claims["org"] == gw.org_ids[tier]
    assert claims["tier"] == tier  # the org's granted tier
    assert claims["scope"] == "models"
    assert claims["exp"] - claims["iat"] == gw.settings.token_ttl_s
    assert isinstance(claims["jti"], str) and claims["jti"]


def test_jwks_publishes_only_public_key(gw: RunningGateway) -> None:
    """The JWKS holds the ES256 public key and no private component."""
    reply = httpx.get(f"{gw.base_url}/.well-known/jwks.json")
    assert reply.status_code == 200
    (key,) = reply.json()["keys"]
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
    assert "d" not in key


def test_each_token_has_a_fresh_jti(gw: RunningGateway) -> None:
    """Two tokens for the same client carry different jti values."""
    a, b = (jwt.decode(gw.token(), options={"verify_signature": False}) for _ in range(2))
    assert a["jti"] != b["jti"]


def test_explicit_models_scope_granted(gw: RunningGateway) -> None:
    """Requesting the supported scope explicitly yields exactly that scope."""
    client_id, secret = gw.credentials["public"]
    reply = _post(
        gw, {"grant_type": "client_credentials", "scope": "models"}, auth=(client_id, secret)
    )
    assert reply.status_code == 200, reply.text
    assert _verify_with_jwks(gw, reply.json()["access_token"])["scope"] == "models"


def test_unknown_scope_refused(gw: RunningGateway) -> None:
    """An unsupported scope is refused with 400 invalid_scope and no token."""
    client_id, secret = gw.credentials["public"]
    reply = _post(
        gw, {"grant_type": "client_credentials", "scope": "models admin"}, auth=(client_id, secret)
    )
    assert reply.status_code == 400
    assert reply.json()["error"] == "invalid_scope"
    assert "access_token" not in reply.json()


def test_wrong_secret_is_invalid_client(gw: RunningGateway) -> None:
    """A wrong secret gets 401 invalid_client and no token."""
    client_id, _ = gw.credentials["critical"]
    reply = _post(gw, {"grant_type": "client_credentials"}, auth=(client_id, "tacs_wrong"))
    assert reply.status_code == 401
    assert reply.json()["error"] == "invalid_client"
    assert "access_token" not in reply.json()


def test_wrong_secret_post_is_invalid_client(gw: RunningGateway) -> None:
    """A wrong secret in the form body gets 401 invalid_client too."""
    client_id, _ = gw.credentials["critical"]
    reply = _post(
        gw,
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": "nope"},
    )
    assert reply.status_code == 401
    assert reply.json()["error"] == "invalid_client"


def test_unknown_client_is_invalid_client(gw: RunningGateway) -> None:
    """An unknown client id gets 401 invalid_client."""
    reply = _post(gw, {"grant_type": "client_credentials"}, auth=("tacc_nobody", "tacs_x"))
    assert reply.status_code == 401
    assert reply.json()["error"] == "invalid_client"


def test_unknown_client_and_wrong_secret_are_indistinguishable(gw: RunningGateway) -> None:
    """Regression: an unknown id and a wrong secret get the same 401 body, in plain words
    (authlib's "cannot authenticate with methods [...]" used to leak through)."""
    client_id, _ = gw.credentials["critical"]
    for auth in ((client_id, "tacs_wrong"), ("tacc_nobody", "tacs_wrong")):
        reply = _post(gw, {"grant_type": "client_credentials"}, auth=auth)
        assert reply.status_code == 401
        assert reply.json() == {
            "error": "invalid_client",
            "error_description": "Client authentication failed.",
        }
        assert reply.headers["cache-control"] == "no-store"


def test_no_credentials_is_invalid_client(gw: RunningGateway) -> None:
    """A request with no client authentication at all gets no token."""
    reply = _post(gw, {"grant_type": "client_credentials"})
    assert reply.status_code in (400, 401)
    assert reply.json()["error"] in ("invalid_client", "invalid_request")
    assert "access_token" not in reply.json()


def test_unsupported_grant_type(gw: RunningGateway) -> None:
    """A grant other than client_credentials is 400 unsupported_grant_type."""
    client_id, secret = gw.credentials["public"]
    reply = _post(
        gw, {"grant_type": "password", "username": "u", "password": "p"}, auth=(client_id, secret)
    )
    assert reply.status_code == 400
    assert reply.json()["error"] == "unsupported_grant_type"


def test_revoked_client_gets_no_token(gateway_factory: GatewayFactory) -> None:
    """A client with revoked_at set is refused with invalid_client."""
    gw = gateway_factory.start()
    client_id, secret = gw.credentials["critical"]
    gw.token("critical")  # works before revocation

    async def revoke(engine: Any) -> None:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE client SET revoked_at = :at WHERE id = :id"),
                {"at": datetime.now(UTC), "id": client_id},
            )

    gw.run(revoke)
    reply = _post(gw, {"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert reply.status_code == 401
    assert reply.json()["error"] == "invalid_client"
    assert "access_token" not in reply.json()


@pytest.mark.parametrize("status", ["suspended", "revoked", "applied", "verifying"])
def test_inactive_org_client_gets_no_token(gateway_factory: GatewayFactory, status: str) -> None:
    """A client of a suspended (or not yet verified) org is unauthorized_client."""
    gw = gateway_factory.start()
    client_id, secret = gw.credentials["verified"]
    gw.run(lambda e: ops.set_org_status(e, org_id=gw.org_ids["verified"], status=status))
    reply = _post(gw, {"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert reply.status_code in (400, 401)
    assert reply.json()["error"] == "unauthorized_client"
    # Regression: the caller learns why, once its secret was right.
    assert reply.json()["error_description"] == (
        f"The client's organization is not active (status: {status}); it cannot obtain tokens."
    )
    assert "access_token" not in reply.json()
    # The wrong secret for the same client says nothing about the organization.
    wrong = _post(gw, {"grant_type": "client_credentials"}, auth=(client_id, "tacs_wrong"))
    assert wrong.json()["error"] == "invalid_client"
    # Other organizations are unaffected.
    assert gw.token("public")


def test_tier_claim_follows_current_grants(gateway_factory: GatewayFactory) -> None:
    """After its grant is revoked, a client's next token claims the lowest tier."""
    gw = gateway_factory.start()
    org_id = gw.org_ids["critical"]

    async def revoke_all(engine: Any) -> None:
        async with engine.connect() as conn:
            ids = (
                await conn.execute(
                    text("SELECT id FROM trustgrant WHERE org_id = :o"), {"o": org_id}
                )
            ).scalars()
            grant_ids = list(ids)
        for grant_id in grant_ids:
            await ops.revoke_grant(engine, grant_id=grant_id, at=datetime.now(UTC))

    gw.run(revoke_all)
    claims = jwt.decode(gw.token("critical"), options={"verify_signature": False})
    assert claims["tier"] == "public"


def test_subject_grant_raises_only_that_client(gateway_factory: GatewayFactory) -> None:
    """A subject-specific grant raises only that client's token tier."""
    gw = gateway_factory.start()
    org_id = gw.org_ids["public"]

    async def setup(engine: Any) -> tuple[Any, Any]:
        special = await ops.create_client(engine, org_id=org_id, name="special")
        plain = await ops.create_client(engine, org_id=org_id, name="plain")
        await ops.grant_tier(
            engine, org_id=org_id, tier="verified", granted_by="t", subject=special.client_id
        )
        return special, plain

    special, plain = gw.run(setup)
    tiers = {}
    for creds in (special, plain):
        reply = _post(
            gw, {"grant_type": "client_credentials"}, auth=(creds.client_id, creds.client_secret)
        )
        tiers[creds.client_id] = _verify_with_jwks(gw, reply.json()["access_token"])["tier"]
    assert tiers == {special.client_id: "verified", plain.client_id: "public"}
