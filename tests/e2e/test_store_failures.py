"""When the database fails, the gateway refuses (503) rather than guess or forget."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.support.gateway import GatewayFactory, RunningGateway

BODY = {"model": "general", "messages": [{"role": "user", "content": "hi"}]}


def _rename(gw: RunningGateway, old: str, new: str) -> None:
    async def go(engine: Any) -> None:
        async with engine.begin() as conn:
            await conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))

    gw.run(go)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_audit_write_failure_fails_closed(gateway_factory: GatewayFactory, database: str) -> None:
    """With the audit table gone, an allowed call and a denied call both get 503; then recover."""
    gw = gateway_factory.start(database=database)
    headers = {"authorization": f"Bearer {gw.token('public')}"}
    url = f"{gw.base_url}/v1/chat/completions"
    _rename(gw, "auditevent", "auditevent_away")
    try:
        allowed = httpx.post(url, json=BODY, headers=headers)
        denied = httpx.post(url, json={**BODY, "model": "cyber"}, headers=headers)
    finally:
        _rename(gw, "auditevent_away", "auditevent")
    for reply in (allowed, denied):
        assert reply.status_code == 503, reply.text
        assert reply.json()["error"]["code"] == "audit_unavailable"
        assert "choices" not in reply.text  # the model's answer never leaves the gateway
    metrics = httpx.get(f"{gw.base_url}/metrics").text
    assert "tacgw_audit_failures_total 2.0" in metrics

    recovered = httpx.post(url, json=BODY, headers=headers)
    assert recovered.status_code == 200
    assert gw.audit_row(recovered.headers["x-decision-id"])["decision"] == "allow"


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_trust_read_failure_fails_closed(gateway_factory: GatewayFactory, database: str) -> None:
    """With the client table unreadable, a valid token gets 503 trust_unavailable, audited."""
    gw = gateway_factory.start(database=database)
    headers = {"authorization": f"Bearer {gw.token('critical')}"}
    url = f"{gw.base_url}/v1/chat/completions"
    _rename(gw, "client", "client_away")
    try:
        reply = httpx.post(url, json=BODY, headers=headers)
    finally:
        _rename(gw, "client_away", "client")
    assert reply.status_code == 503, reply.text
    assert reply.json()["error"]["code"] == "trust_unavailable"
    row = gw.audit_row(reply.headers["x-decision-id"])
    assert (row["decision"], row["status"], row["reasons"]) == (
        "deny",
        503,
        '["trust_unavailable"]',
    )
    assert httpx.post(url, json=BODY, headers=headers).status_code == 200


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_catalog_read_failure_fails_closed(gateway_factory: GatewayFactory, database: str) -> None:
    """Regression: with the catalog unreadable, a call got 500 internal_error; now 503
    catalog_unavailable, audited, and service resumes when the table is back."""
    gw = gateway_factory.start(database=database)
    headers = {"authorization": f"Bearer {gw.token('public')}"}
    url = f"{gw.base_url}/v1/chat/completions"
    _rename(gw, "modelentry", "modelentry_away")
    try:
        reply = httpx.post(url, json=BODY, headers=headers)
        listing = httpx.get(f"{gw.base_url}/v1/models", headers=headers)
    finally:
        _rename(gw, "modelentry_away", "modelentry")
    for refused in (reply, listing):
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "catalog_unavailable"
        row = gw.audit_row(refused.headers["x-decision-id"])
        assert (row["decision"], row["status"]) == ("deny", 503)
    assert httpx.post(url, json=BODY, headers=headers).status_code == 200
