"""Effective tier = the lower of the token claim and the database now (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import jwt
import openai
import pytest
from sqlalchemy import text

from gateway.admin import ops
from gateway.admin.ops import IssuedCredentials
from gateway.reasons import Reason
from tests.support.dpop import DpopAuth, DpopKey
from tests.support.gateway import GatewayFactory, RunningGateway

DATABASES = pytest.mark.parametrize("database", ["sqlite", "postgres"])
MSG = [{"role": "user", "content": "hello"}]


def _forge(gw: RunningGateway, *, client_id: str, org_id: str, tier: str) -> str:
    """A token signed by the gateway's own key (unsealed from its database) with chosen claims."""
    signing = gw.signing_key()
    key, jwk = signing.private_key, signing.public_jwk
    now = int(time.time())
    claims = {
        "iss": gw.settings.issuer,
        "aud": gw.settings.audience,
        "sub": client_id,
        "client_id": client_id,
        "org": org_id,
        "tier": tier,
        "scope": "models",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": f"forged-{tier}-{now}",
    }
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": jwk["kid"]})  # type: ignore[arg-type]


def _client(gw: RunningGateway, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=token, max_retries=0)


def _chat(client: openai.OpenAI, model: str) -> str:
    """Make a chat call; returns its decision id (raises the SDK's error on refusal)."""
    raw = client.chat.completions.with_raw_response.create(model=model, messages=MSG)
    raw.parse()
    return raw.headers["x-decision-id"]


def _refused(client: openai.OpenAI, model: str, error: type[openai.APIStatusError]) -> Any:
    with pytest.raises(error) as err:
        client.chat.completions.create(model=model, messages=MSG)
    return err.value


def _grant_ids(gw: RunningGateway, org_id: str) -> list[int]:
    async def q(engine: Any) -> list[int]:
        async with engine.connect() as conn:
            result = await conn.execute(
                text("SELECT id FROM trustgrant WHERE org_id = :o ORDER BY id"), {"o": org_id}
            )
            return [int(i) for i in result.scalars()]

    return list(gw.run(q))


def _model_ids(client: openai.OpenAI) -> list[str]:
    return sorted(m.id for m in client.models.list())


@DATABASES
def test_inflated_claim_capped_by_database(gateway_factory: GatewayFactory, database: str) -> None:
    """A gateway-signed token claiming 'critical' for the public org's client is refused cyber."""
    gw = gateway_factory.start(database=database)
    client_id = gw.credentials["public"][0]
    client = _client(
        gw, _forge(gw, client_id=client_id, org_id=gw.org_ids["public"], tier="critical")
    )

    err = _refused(client, "cyber", openai.PermissionDeniedError)
    assert err.status_code == 403
    assert err.code == Reason.TIER_TOO_LOW
    row = gw.audit_row(err.response.headers["x-decision-id"])
    assert (row["decision"], row["status"], row["tier"]) == ("deny", 403, "public")
    assert json.loads(row["reasons"]) == [Reason.TIER_TOO_LOW]

    row = gw.audit_row(_chat(client, "general"))
    assert (row["decision"], row["tier"]) == ("allow", "public")
    assert _model_ids(client) == ["general"]


@DATABASES
def test_low_claim_caps_high_grant(gateway_factory: GatewayFactory, database: str) -> None:
    """A 'public' claim for the critical org's client gets public, not the database's critical."""
    gw = gateway_factory.start(database=database)
    token = _forge(
        gw, client_id=gw.credentials["critical"][0], org_id=gw.org_ids["critical"], tier="public"
    )
    client = _client(gw, token)
    assert _refused(client, "cyber", openai.PermissionDeniedError).code == Reason.TIER_TOO_LOW
    assert _model_ids(client) == ["general"]


@DATABASES
def test_real_tokens_see_their_tiers(gateway_factory: GatewayFactory, database: str) -> None:
    """Tokens from the token endpoint list exactly the models their org's tier allows."""
    gw = gateway_factory.start(database=database)
    assert _model_ids(gw.openai("public")) == ["general"]
    assert _model_ids(gw.openai("verified")) == ["general", "general-tac"]
    assert _model_ids(gw.openai("critical")) == ["cyber", "general", "general-tac"]


@DATABASES
def test_unknown_tier_claim_fails_closed(gateway_factory: GatewayFactory, database: str) -> None:
    """A tier name the gateway does not know ranks below everything: even 'general' is refused."""
    gw = gateway_factory.start(database=database)
    token = _forge(
        gw, client_id=gw.credentials["critical"][0], org_id=gw.org_ids["critical"], tier="root"
    )
    err = _refused(_client(gw, token), "general", openai.PermissionDeniedError)
    assert err.code == Reason.TIER_TOO_LOW


@DATABASES
def test_grant_revocation_takes_effect_at_once(
    gateway_factory: GatewayFactory, database: str
) -> None:
    """Revoking the critical org's grant denies cyber on the very next call, as grant_revoked."""
    gw = gateway_factory.start(database=database)
    client = gw.openai("critical")
    assert gw.audit_row(_chat(client, "cyber"))["tier"] == "critical"

    (grant_id,) = _grant_ids(gw, gw.org_ids["critical"])
    gw.run(lambda e: ops.revoke_grant(e, grant_id=grant_id, at=datetime.now(UTC)))

    err = _refused(client, "cyber", openai.PermissionDeniedError)
    assert err.code == Reason.GRANT_REVOKED
    row = gw.audit_row(err.response.headers["x-decision-id"])
    assert (row["decision"], row["status"], row["tier"]) == ("deny", 403, "public")
    assert json.loads(row["reasons"]) == [Reason.GRANT_REVOKED]
    assert _model_ids(client) == ["general"]


@DATABASES
def test_expired_grant_does_not_count(gateway_factory: GatewayFactory, database: str) -> None:
    """A grant whose expires_at is past gives nothing (grant_expired); a still-valid one does."""
    gw = gateway_factory.start(database=database)
    org_id = gw.org_ids["public"]
    client_id = gw.credentials["public"][0]
    now = datetime.now(UTC)
    gw.run(
        lambda e: ops.grant_tier(
            e, org_id=org_id, tier="critical", granted_by="t", expires_at=now - timedelta(hours=1)
        )
    )
    client = _client(gw, _forge(gw, client_id=client_id, org_id=org_id, tier="critical"))
    assert _refused(client, "cyber", openai.PermissionDeniedError).code == Reason.GRANT_EXPIRED
    # The token endpoint agrees: no live grant, lowest tier.
    assert jwt.decode(gw.token("public"), options={"verify_signature": False})["tier"] == "public"

    gw.run(
        lambda e: ops.grant_tier(
            e, org_id=org_id, tier="verified", granted_by="t", expires_at=now + timedelta(hours=1)
        )
    )
    assert _model_ids(client) == ["general", "general-tac"]


@pytest.mark.parametrize(
    "database",
    ["sqlite", "postgres"],
)
def test_expiry_in_other_timezone_is_respected(
    gateway_factory: GatewayFactory, database: str
) -> None:
    """An expires_at given with a non-UTC offset is compared as the instant it names."""
    gw = gateway_factory.start(database=database)
    org_id = gw.org_ids["public"]
    plus5 = timezone(timedelta(hours=5))
    expired = datetime.now(plus5) - timedelta(minutes=30)
    gw.run(
        lambda e: ops.grant_tier(
            e, org_id=org_id, tier="critical", granted_by="t", expires_at=expired
        )
    )
    token = _forge(gw, client_id=gw.credentials["public"][0], org_id=org_id, tier="critical")
    assert _model_ids(_client(gw, token)) == ["general"]


@DATABASES
def test_subject_grant_applies_only_to_that_subject(
    gateway_factory: GatewayFactory, database: str
) -> None:
    """A grant naming one client's subject lifts only that client, not its org-mates."""
    gw = gateway_factory.start(database=database)
    org_id = gw.org_ids["public"]

    async def setup(engine: Any) -> tuple[IssuedCredentials, IssuedCredentials]:
        special = await ops.create_client(engine, org_id=org_id, name="special")
        plain = await ops.create_client(engine, org_id=org_id, name="plain")
        await ops.grant_tier(
            engine, org_id=org_id, tier="critical", granted_by="t", subject=special.client_id
        )
        return special, plain

    special, plain = gw.run(setup)
    # The critical model takes DPoP-bound tokens: the special client gets one for real.
    key = DpopKey()
    bound = httpx.post(
        f"{gw.base_url}/oauth/token",
        auth=(special.client_id, special.client_secret),
        data={"grant_type": "client_credentials"},
        headers={"DPoP": key.proof("POST", f"{gw.base_url}/oauth/token")},
    ).json()["access_token"]
    as_special = openai.OpenAI(
        base_url=f"{gw.base_url}/v1",
        api_key=bound,
        max_retries=0,
        http_client=httpx.Client(auth=DpopAuth(key, bound)),
    )
    as_plain = _client(gw, _forge(gw, client_id=plain.client_id, org_id=org_id, tier="critical"))
    as_original = gw.openai("public")

    assert gw.audit_row(_chat(as_special, "cyber"))["tier"] == "critical"
    for client in (as_plain, as_original):
        assert _refused(client, "cyber", openai.PermissionDeniedError).code == Reason.TIER_TOO_LOW
        assert _model_ids(client) == ["general"]


@DATABASES
def test_suspended_org_token_is_403_org_suspended(
    gateway_factory: GatewayFactory, database: str
) -> None:
    """A still-valid token of a suspended org is refused with org_suspended, and audited."""
    gw = gateway_factory.start(database=database)
    client = gw.openai("critical")
    _chat(client, "general")
    gw.run(lambda e: ops.set_org_status(e, org_id=gw.org_ids["critical"], status="suspended"))

    for model in ("general", "cyber"):
        err = _refused(client, model, openai.PermissionDeniedError)
        assert err.status_code == 403
        assert err.code == Reason.ORG_SUSPENDED
        row = gw.audit_row(err.response.headers["x-decision-id"])
        assert (row["decision"], row["status"]) == ("deny", 403)
        assert json.loads(row["reasons"]) == [Reason.ORG_SUSPENDED]
    assert _model_ids(client) == []
    # Other organizations keep working.
    _chat(gw.openai("public"), "general")


@DATABASES
def test_revoked_client_token_is_401_client_revoked(
    gateway_factory: GatewayFactory, database: str
) -> None:
    """Revoking a client makes its still-valid token a 401 client_revoked at once."""
    gw = gateway_factory.start(database=database)
    client = gw.openai("critical")
    _chat(client, "cyber")
    client_id = gw.credentials["critical"][0]

    async def revoke(engine: Any) -> None:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE client SET revoked_at = :at WHERE id = :id"),
                {"at": datetime.now(UTC), "id": client_id},
            )

    gw.run(revoke)
    err = _refused(client, "cyber", openai.AuthenticationError)
    assert err.code == Reason.CLIENT_REVOKED
    assert err.response.headers["www-authenticate"].startswith("Bearer ")
    row = gw.audit_row(err.response.headers["x-decision-id"])
    assert (row["decision"], row["status"]) == ("deny", 401)
    assert json.loads(row["reasons"]) == [Reason.CLIENT_REVOKED]
    with pytest.raises(openai.AuthenticationError) as listing:
        client.models.list()
    assert listing.value.code == Reason.CLIENT_REVOKED


@DATABASES
def test_deleted_client_token_is_401(gateway_factory: GatewayFactory, database: str) -> None:
    """A token whose client row is gone is a 401 client_unknown."""
    gw = gateway_factory.start(database=database)
    client = gw.openai("verified")
    client_id = gw.credentials["verified"][0]

    async def delete(engine: Any) -> None:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM client WHERE id = :id"), {"id": client_id})

    gw.run(delete)
    err = _refused(client, "general", openai.AuthenticationError)
    assert err.code == Reason.CLIENT_UNKNOWN


@DATABASES
def test_token_org_mismatch_is_401(gateway_factory: GatewayFactory, database: str) -> None:
    """A gateway-signed token naming another org than the client's is refused."""
    gw = gateway_factory.start(database=database)
    token = _forge(
        gw, client_id=gw.credentials["public"][0], org_id=gw.org_ids["critical"], tier="critical"
    )
    err = _refused(_client(gw, token), "cyber", openai.AuthenticationError)
    assert err.code == Reason.CLIENT_UNKNOWN
