"""Every answer of the OAuth endpoints is an audit event and a leaf of the log, durable
before it is sent; no secret, assertion or token is ever in it."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import text

from gateway.admin import clients, ops
from gateway.admin.actor import Actor
from gateway.reasons import Reason
from tests.support.dpop import DpopKey
from tests.support.gateway import GatewayFactory, RunningGateway

DATABASES = pytest.mark.parametrize("database", ["sqlite", "postgres"])
GRANT = {"grant_type": "client_credentials"}


@pytest.fixture(scope="module")
def gw(module_gateway: RunningGateway) -> RunningGateway:
    """One gateway for the tests that only add their own events."""
    return module_gateway


def _post(
    gw: RunningGateway,
    path: str,
    data: dict[str, str],
    auth: tuple[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.post(f"{gw.base_url}/oauth/{path}", data=data, auth=auth, headers=headers)


def _leaf(gw: RunningGateway, decision_id: str) -> dict[str, Any]:
    """The decision's event as logged (the leaf's exact bytes, parsed)."""

    async def q(engine: Any) -> list[Any]:
        async with engine.connect() as conn:
            query = text("SELECT event FROM tlog_leaf WHERE decision_id = :d AND kind = 'decision'")
            return list((await conn.execute(query, {"d": decision_id})).scalars())

    (event,) = gw.run(q)
    return dict(json.loads(bytes(event)))


def _everything_logged(gw: RunningGateway) -> str:
    """Every audit row and every leaf, as text: what an auditor (or a thief) can read."""

    async def q(engine: Any) -> str:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT * FROM auditevent"))).all()
            leaves = (await conn.execute(text("SELECT event FROM tlog_leaf"))).scalars().all()
        return "\n".join([*(repr(tuple(r)) for r in rows), *(bytes(e).decode() for e in leaves)])

    return str(gw.run(q))


def _claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


@DATABASES
def test_granted_token_event_names_the_jti_it_carries(
    gateway_factory: GatewayFactory, database: str
) -> None:
    """A granted token's event (row and leaf) names its client, org, tier and the token's jti."""
    gw = gateway_factory.start(database=database)
    client_id, secret = gw.credentials["verified"]
    reply = _post(gw, "token", GRANT, auth=(client_id, secret))
    assert reply.status_code == 200, reply.text
    claims = _claims(reply.json()["access_token"])
    decision_id = reply.headers["x-decision-id"]

    row = gw.audit_row(decision_id)
    assert (row["endpoint"], row["decision"], row["status"]) == ("oauth.token", "allow", 200)
    assert (row["client_id"], row["subject"]) == (client_id, client_id)
    assert (row["org_id"], row["tier"]) == (gw.org_ids["verified"], "verified")
    assert row["token_id"] == claims["jti"]
    assert json.loads(row["reasons"]) == [Reason.ALLOWED]
    detail = json.loads(row["detail"])
    assert detail == {
        "auth_method": "client_secret_basic",
        "token_type": "Bearer",
        "dpop_bound": False,
        "scope": "models",
        "expires_in": gw.settings.token_ttl_s,
    }

    event = _leaf(gw, decision_id)
    assert (event["type"], event["action"], event["endpoint"]) == (
        "decision",
        "token_issue",
        "oauth.token",
    )
    assert event["actor"]["token_id"] == claims["jti"]
    assert event["actor"]["client_id"] == client_id
    assert event["actor"]["source"] == "127.0.0.1"
    assert (event["tier"], event["decision"], event["status"]) == ("verified", "allow", 200)
    assert event["policy"] is None and event["request_sha256"] is None
    assert json.loads(event["detail"]) == detail
    # The token itself and the secret are nowhere in what is logged.
    logged = _everything_logged(gw)
    assert reply.json()["access_token"] not in logged
    assert secret not in logged


def test_dpop_bound_token_event_says_so(gw: RunningGateway) -> None:
    """A token bound to a DPoP key is logged as such."""
    client_id, secret = gw.credentials["critical"]
    url = f"{gw.base_url}/oauth/token"
    key = DpopKey()
    proof = {"DPoP": key.proof("POST", url)}
    reply = _post(gw, "token", GRANT, auth=(client_id, secret), headers=proof)
    assert reply.status_code == 200, reply.text
    row = gw.audit_row(reply.headers["x-decision-id"])
    assert row["token_id"] == _claims(reply.json()["access_token"])["jti"]
    assert row["tier"] == "critical"
    detail = json.loads(row["detail"])
    assert (detail["token_type"], detail["dpop_bound"]) == ("DPoP", True)


def test_bad_dpop_proof_is_an_event_naming_no_client(gw: RunningGateway) -> None:
    """A proof for another URL is refused before the client authenticates: no client named."""
    client_id, secret = gw.credentials["critical"]
    proof = DpopKey().proof("POST", "https://elsewhere.example/oauth/token")
    reply = _post(gw, "token", GRANT, auth=(client_id, secret), headers={"DPoP": proof})
    assert reply.status_code == 400
    row = gw.audit_row(reply.headers["x-decision-id"])
    assert json.loads(row["reasons"]) == [Reason.INVALID_DPOP_PROOF]
    assert (row["client_id"], row["subject"], row["token_id"]) == (None, None, None)


def test_wrong_secret_event_names_no_client_and_stores_no_secret(gw: RunningGateway) -> None:
    """A wrong secret is an invalid_client event without the client id; neither the typed
    secret nor an unknown client id (maybe a secret in the wrong field) is stored."""
    client_id, _ = gw.credentials["public"]
    typed = f"tacs_typed_{uuid.uuid4().hex}"
    unknown = f"tacs_in_the_id_field_{uuid.uuid4().hex}"
    wrong = _post(gw, "token", GRANT, auth=(client_id, typed))
    posted = _post(gw, "token", {**GRANT, "client_id": unknown, "client_secret": typed})
    for reply in (wrong, posted):
        assert reply.status_code in (400, 401)  # authlib: 401 with Basic, 400 in the form
        assert reply.json()["error"] == "invalid_client"
        row = gw.audit_row(reply.headers["x-decision-id"])
        assert (row["endpoint"], row["decision"]) == ("oauth.token", "deny")
        assert row["status"] == reply.status_code
        assert json.loads(row["reasons"]) == [Reason.INVALID_CLIENT]
        assert (row["client_id"], row["subject"], row["org_id"]) == (None, None, None)
        assert (row["token_id"], row["detail"]) == (None, None)
        assert _leaf(gw, reply.headers["x-decision-id"])["actor"]["client_id"] is None
    logged = _everything_logged(gw)
    assert typed not in logged
    assert unknown not in logged


def test_invalid_scope_of_an_authenticated_client_names_it(gw: RunningGateway) -> None:
    """Refused after authenticating (a scope it may not have): the client is named."""
    client_id, secret = gw.credentials["public"]
    reply = _post(gw, "token", {**GRANT, "scope": "models admin"}, auth=(client_id, secret))
    assert reply.status_code == 400
    row = gw.audit_row(reply.headers["x-decision-id"])
    assert json.loads(row["reasons"]) == [Reason.INVALID_SCOPE]
    assert (row["client_id"], row["org_id"]) == (client_id, gw.org_ids["public"])
    assert (row["tier"], row["token_id"]) == (None, None)


def test_malformed_form_is_an_event(gw: RunningGateway) -> None:
    """A request refused before the issuer (a repeated parameter) is audited too."""
    reply = httpx.post(
        f"{gw.base_url}/oauth/token",
        content=b"grant_type=client_credentials&grant_type=client_credentials",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert reply.status_code == 400
    row = gw.audit_row(reply.headers["x-decision-id"])
    assert (row["endpoint"], row["status"]) == ("oauth.token", 400)
    assert json.loads(row["reasons"]) == [Reason.INVALID_REQUEST]


def test_inactive_org_refusal_names_the_org_status(gateway_factory: GatewayFactory) -> None:
    """A client of a suspended organization: unauthorized_client, client and status logged."""
    gw = gateway_factory.start()
    client_id, secret = gw.credentials["verified"]
    org_id = gw.org_ids["verified"]
    gw.run(lambda e: ops.set_org_status(e, org_id=org_id, status="suspended"))
    reply = _post(gw, "token", GRANT, auth=(client_id, secret))
    assert reply.json()["error"] == "unauthorized_client"
    row = gw.audit_row(reply.headers["x-decision-id"])
    assert json.loads(row["reasons"]) == [Reason.UNAUTHORIZED_CLIENT]
    assert (row["client_id"], row["org_id"], row["decision"]) == (client_id, org_id, "deny")
    assert json.loads(row["detail"])["org_status"] == "suspended"


def test_revocation_and_introspection_events_name_the_jti(gw: RunningGateway) -> None:
    """Who revoked which jti; who introspected which jti, and whether it was active."""
    client_id, secret = gw.credentials["public"]
    token = gw.token("public")
    jti = _claims(token)["jti"]

    looked = _post(gw, "introspect", {"token": token}, auth=(client_id, secret))
    assert looked.json()["active"] is True
    revoked = _post(gw, "revoke", {"token": token}, auth=(client_id, secret))
    assert revoked.status_code == 200
    again = _post(gw, "introspect", {"token": token}, auth=(client_id, secret))
    assert again.json() == {"active": False}

    row = gw.audit_row(revoked.headers["x-decision-id"])
    assert (row["endpoint"], row["decision"], row["status"]) == ("oauth.revoke", "allow", 200)
    assert (row["client_id"], row["token_id"]) == (client_id, jti)
    assert json.loads(row["detail"])["revoked"] is True
    assert _leaf(gw, revoked.headers["x-decision-id"])["action"] == "token_revoke"
    for reply, active in ((looked, True), (again, False)):
        row = gw.audit_row(reply.headers["x-decision-id"])
        assert (row["endpoint"], row["client_id"], row["token_id"]) == (
            "oauth.introspect",
            client_id,
            jti,
        )
        assert json.loads(row["detail"])["active"] is active
    # The token's whole life, by its id: issued, introspected, revoked, introspected.
    endpoints = [r["endpoint"] for r in gw.audit_rows(token_id=jti)]
    assert endpoints == ["oauth.token", "oauth.introspect", "oauth.revoke", "oauth.introspect"]
    assert token not in _everything_logged(gw)


def test_revoking_another_clients_token_is_refused_and_logged(gw: RunningGateway) -> None:
    """A client may not revoke another client's token: invalid_grant, both named."""
    victim = gw.token("critical")
    client_id, secret = gw.credentials["public"]
    reply = _post(gw, "revoke", {"token": victim}, auth=(client_id, secret))
    assert reply.status_code == 400
    row = gw.audit_row(reply.headers["x-decision-id"])
    assert json.loads(row["reasons"]) == [Reason.INVALID_GRANT]
    assert (row["client_id"], row["token_id"]) == (client_id, _claims(victim)["jti"])
    detail = json.loads(row["detail"])
    assert detail["revoked"] is False
    assert detail["token_client_id"] == gw.credentials["critical"][0]


def test_token_events_in_the_auditor_api(gw: RunningGateway) -> None:
    """`/audit/decisions?endpoint=oauth.token` lists them; the log verifies; explain says
    there is no policy input to replay."""
    client_id, secret = gw.credentials["public"]
    granted = _post(gw, "token", GRANT, auth=(client_id, secret))
    headers = _auditor_headers(gw)
    page = httpx.get(
        f"{gw.base_url}/audit/decisions",
        params={"endpoint": "oauth.token", "subject": client_id, "limit": 1000},
        headers=headers,
    ).json()
    found = {d["decision_id"]: d for d in page["decisions"]}
    assert granted.headers["x-decision-id"] in found
    assert {d["endpoint"] for d in page["decisions"]} == {"oauth.token"}
    one = found[granted.headers["x-decision-id"]]
    assert one["token_id"] == _claims(granted.json()["access_token"])["jti"]

    verified = httpx.get(f"{gw.base_url}/audit/verify", headers=headers)
    assert verified.status_code == 200 and verified.json()["ok"] is True, verified.text
    explain = httpx.get(
        f"{gw.base_url}/audit/decisions/{granted.headers['x-decision-id']}/explain",
        headers=headers,
    )
    assert explain.status_code == 404, explain.text
    assert explain.json()["error"]["code"] == Reason.NOT_REPLAYABLE
    assert "no policy input" in explain.text


def _auditor_headers(gw: RunningGateway) -> dict[str, str]:
    """A bearer token of a client holding the auditor role, created as an admin would."""

    async def make(engine: Any) -> tuple[str, str]:
        creds = await clients.create_client(
            engine,
            actor=Actor.cli(),
            org_id=gw.org_ids["public"],
            name=f"auditor-{uuid.uuid4().hex[:6]}",
            roles=["auditor"],
        )
        return creds.client_id, creds.client_secret

    client_id, secret = gw.run(make)
    reply = _post(gw, "token", GRANT, auth=(client_id, secret))
    reply.raise_for_status()
    return {"authorization": f"Bearer {reply.json()['access_token']}"}


@DATABASES
def test_audit_down_means_503_and_no_token(gateway_factory: GatewayFactory, database: str) -> None:
    """With the audit table gone, a good token request gets 503 temporarily_unavailable
    (reason audit_unavailable) and no token; revocation likewise; then service resumes."""
    gw = gateway_factory.start(database=database)
    client_id, secret = gw.credentials["public"]
    token = gw.token("public")

    async def rename(engine: Any, old: str, new: str) -> None:
        async with engine.begin() as conn:
            await conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))

    gw.run(lambda e: rename(e, "auditevent", "auditevent_away"))
    try:
        refused = _post(gw, "token", GRANT, auth=(client_id, secret))
        introspected = _post(gw, "introspect", {"token": token}, auth=(client_id, secret))
    finally:
        gw.run(lambda e: rename(e, "auditevent_away", "auditevent"))
    for reply in (refused, introspected):
        assert reply.status_code == 503, reply.text
        body = reply.json()
        assert body["error"] == Reason.TEMPORARILY_UNAVAILABLE
        assert body["reason"] == Reason.AUDIT_UNAVAILABLE
        assert "access_token" not in body and "active" not in body
        assert "x-decision-id" not in reply.headers
    assert "tacgw_audit_failures_total 2.0" in httpx.get(f"{gw.base_url}/metrics").text

    recovered = _post(gw, "token", GRANT, auth=(client_id, secret))
    assert recovered.status_code == 200
    assert gw.audit_row(recovered.headers["x-decision-id"])["decision"] == "allow"


def test_rate_limited_token_request_is_an_event(gateway_factory: GatewayFactory) -> None:
    """The per-address limit's 429 slow_down is audited (no client: none authenticated)."""
    gw = gateway_factory.start(token_endpoint_rate_limit="1/minute")
    client_id, secret = gw.credentials["public"]
    assert _post(gw, "token", GRANT, auth=(client_id, secret)).status_code == 200
    limited = _post(gw, "token", GRANT, auth=(client_id, secret))
    assert limited.status_code == 429 and limited.json()["error"] == "slow_down"
    assert int(limited.headers["retry-after"]) >= 1
    row = gw.audit_row(limited.headers["x-decision-id"])
    assert (row["endpoint"], row["decision"], row["status"]) == ("oauth.token", "deny", 429)
    assert json.loads(row["reasons"]) == [Reason.SLOW_DOWN]
    assert row["client_id"] is None
