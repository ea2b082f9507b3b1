"""RFC 7009 revocation and RFC 7662 introspection, client-authenticated, across replicas."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import text

from gateway.admin import ops
from gateway.reasons import Reason
from tests.support.gateway import GatewayFactory, RunningGateway

DATABASES = pytest.mark.parametrize("database", ["sqlite", "postgres"])


def _models(gw: RunningGateway, token: str) -> httpx.Response:
    return httpx.get(f"{gw.base_url}/v1/models", headers={"Authorization": f"Bearer {token}"})


def _code(reply: httpx.Response) -> str:
    return str(reply.json()["error"]["code"])


def _post(gw: RunningGateway, path: str, data: dict[str, str], tier: str | None) -> httpx.Response:
    auth = gw.credentials[tier] if tier else None
    return httpx.post(f"{gw.base_url}/oauth/{path}", data=data, auth=auth)


@DATABASES
def test_revocation_through_one_process_is_refused_by_another_on_the_next_request(
    gateway_factory: GatewayFactory, database: str
) -> None:
    """A token revoked at one replica is refused by a second gateway process at once,
    even though both had it in their verified-token caches."""
    gw = gateway_factory.start(database=database)
    replica = gateway_factory.replica_process(gw)
    token = gw.token("critical")
    assert _models(gw, token).status_code == 200
    assert _models(replica, token).status_code == 200  # cached there too

    reply = _post(gw, "revoke", {"token": token, "token_type_hint": "access_token"}, "critical")
    assert reply.status_code == 200, reply.text
    assert reply.headers["cache-control"] == "no-store"

    for server in (replica, gw):
        refused = _models(server, token)
        assert refused.status_code == 401 and _code(refused) == Reason.TOKEN_REVOKED
    # The client's other tokens are untouched.
    assert _models(replica, gw.token("critical")).status_code == 200
    # Both replicas audited the refusals against the token's id, like the earlier grants.
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    rows = gw.audit_rows(token_id=jti)
    calls = [r for r in rows if not r["endpoint"].startswith("oauth.")]
    reasons = sorted(json.loads(row["reasons"])[0] for row in calls)
    assert reasons == ["allowed", "allowed", Reason.TOKEN_REVOKED, Reason.TOKEN_REVOKED]
    # The token's issuance and its revocation are events on the same id.
    oauth = sorted(r["endpoint"] for r in rows if r["endpoint"].startswith("oauth."))
    assert oauth == ["oauth.revoke", "oauth.token"]


def test_a_client_cannot_revoke_another_clients_token(gateway_factory: GatewayFactory) -> None:
    """RFC 7009 §2.1: only the client the token was issued to may revoke it."""
    gw = gateway_factory.start()
    token = gw.token("critical")
    reply = _post(gw, "revoke", {"token": token}, "public")
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_grant"
    assert _models(gw, token).status_code == 200


@pytest.mark.parametrize("endpoint", ["revoke", "introspect"])
def test_both_endpoints_require_client_authentication(
    module_gateway: RunningGateway, endpoint: str
) -> None:
    """Without credentials, or with a wrong secret: 401 invalid_client, nothing revealed."""
    gw = module_gateway
    token = gw.token("public")
    for auth in (None, (gw.credentials["public"][0], "wrong")):
        reply = httpx.post(f"{gw.base_url}/oauth/{endpoint}", data={"token": token}, auth=auth)
        assert reply.status_code == 401, reply.text
        assert reply.json()["error"] == "invalid_client"
    assert _models(gw, token).status_code == 200


def test_revoking_an_unknown_or_foreign_token_is_a_quiet_success(
    module_gateway: RunningGateway,
) -> None:
    """RFC 7009 §2.2: an invalid token is no error (nothing to revoke)."""
    reply = _post(module_gateway, "revoke", {"token": "not-a-token"}, "public")
    assert reply.status_code == 200
    missing = _post(module_gateway, "revoke", {}, "public")
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


def test_introspection_tells_active_from_revoked(gateway_factory: GatewayFactory) -> None:
    """An active token's claims; after revocation, only `active: false`."""
    gw = gateway_factory.start()
    token = gw.token("verified")
    client_id = gw.credentials["verified"][0]
    # Another client (a resource server) asks about it.
    reply = _post(gw, "introspect", {"token": token}, "public")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["active"] is True
    assert body["client_id"] == body["sub"] == client_id
    assert (body["org"], body["tier"], body["token_type"]) == (
        gw.org_ids["verified"],
        "verified",
        "Bearer",
    )
    assert body["iss"] == gw.settings.issuer and body["aud"] == gw.settings.audience
    assert body["exp"] > datetime.now(UTC).timestamp()
    assert body["acr"] == "client_secret"

    assert _post(gw, "revoke", {"token": token}, "verified").status_code == 200
    assert _post(gw, "introspect", {"token": token}, "public").json() == {"active": False}
    assert _post(gw, "introspect", {"token": "garbage"}, "public").json() == {"active": False}


@DATABASES
def test_revoking_the_client_or_suspending_the_org_kills_its_tokens_at_once(
    gateway_factory: GatewayFactory, database: str
) -> None:
    """No token revocation needed: the trust read refuses them on the next request, and
    introspection reports them inactive."""
    gw = gateway_factory.start(database=database)
    critical, verified = gw.token("critical"), gw.token("verified")
    assert _models(gw, critical).status_code == 200
    assert _models(gw, verified).status_code == 200

    async def revoke_client(engine: Any) -> None:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE client SET revoked_at = :now WHERE id = :id"),
                {"now": datetime.now(UTC), "id": gw.credentials["critical"][0]},
            )

    gw.run(revoke_client)
    gw.run(
        lambda engine: ops.set_org_status(engine, org_id=gw.org_ids["verified"], status="suspended")
    )

    refused = _models(gw, critical)
    assert refused.status_code == 401 and _code(refused) == Reason.CLIENT_REVOKED
    suspended = httpx.post(
        f"{gw.base_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {verified}"},
        json={"model": "general", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert suspended.status_code == 403 and _code(suspended) == Reason.ORG_SUSPENDED
    for token in (critical, verified):
        assert _post(gw, "introspect", {"token": token}, "public").json() == {"active": False}
