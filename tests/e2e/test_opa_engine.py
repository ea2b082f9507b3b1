"""The gateway with a real OPA server as its policy engine: same decisions, fails closed."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.support.gateway import GatewayFactory
from tests.support.services import OpaServer, free_port


def test_opa_engine_allows_and_denies_like_embedded(
    gateway_factory: GatewayFactory, opa_server: OpaServer
) -> None:
    """Public may use `general` and is refused `cyber`; critical may use `cyber`."""
    gw = gateway_factory.start(policy_engine="opa", opa_url=opa_server.url)
    reply = gw.openai("public").chat.completions.create(
        model="general", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError) as denied:
        gw.openai("public").chat.completions.create(
            model="cyber", messages=[{"role": "user", "content": "hi"}]
        )
    assert denied.value.code == "tier_too_low"
    assert (
        gw.openai("critical")
        .chat.completions.create(model="cyber", messages=[{"role": "user", "content": "hi"}])
        .choices
    )
    ready = httpx.get(f"{gw.base_url}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["policy"] is True


def test_unreachable_opa_fails_closed(gateway_factory: GatewayFactory) -> None:
    """No OPA listening: 503 policy_unavailable, audited as a deny, readyz not ready."""
    gw = gateway_factory.start(policy_engine="opa", opa_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(openai.InternalServerError) as failed:
        gw.openai("critical").chat.completions.create(
            model="general", messages=[{"role": "user", "content": "hi"}]
        )
    assert failed.value.status_code == 503 and failed.value.code == "policy_unavailable"
    row = gw.audit_row(failed.value.response.headers["x-decision-id"])
    assert (row["decision"], row["status"]) == ("deny", 503)
    assert '"policy_unavailable"' in row["reasons"]
    assert httpx.get(f"{gw.base_url}/readyz").status_code == 503
    metrics = httpx.get(f"{gw.base_url}/metrics").text
    assert 'tacgw_policy_failures_total{engine="opa",reason="policy_unavailable"} 1.0' in metrics
