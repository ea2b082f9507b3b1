"""Operations: Prometheus metrics, liveness, readiness, and the per-tier model list."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.gateway import GatewayFactory, RunningGateway
from tests.support.services import OpaServer, free_port

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def samples(gw: RunningGateway, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample called `name` on the gateway's /metrics."""
    reply = httpx.get(f"{gw.base_url}/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    return [
        (dict(s.labels), s.value)
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
        if s.name == name
    ]


def request_count(gw: RunningGateway, **labels: str) -> float:
    """The `tacgw_requests_total` sample whose labels are exactly `labels` (0 if absent)."""
    found = [v for lbl, v in samples(gw, "tacgw_requests_total") if lbl == labels]
    assert len(found) <= 1
    return found[0] if found else 0.0


def test_requests_total_by_endpoint_tier_model_decision_reason(
    gateway_factory: GatewayFactory,
) -> None:
    """Allowed, denied and refused calls each land in their labelled counter."""
    gw = gateway_factory.start()
    client = gw.openai("public")
    for _ in range(2):
        client.chat.completions.create(model="general", messages=MESSAGES)
    client.embeddings.create(model="general", input="x")
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="cyber", messages=MESSAGES)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="caller-chosen-name", messages=MESSAGES)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="general", messages=MESSAGES, extra_body={"demo": {"status": 503}}
        )

    chat = {"endpoint": "chat.completions", "tier": "public"}
    assert request_count(gw, **chat, model="general", decision="allow", reason="allowed") == 2
    assert (
        request_count(
            gw,
            endpoint="embeddings",
            tier="public",
            model="general",
            decision="allow",
            reason="allowed",
        )
        == 1
    )
    assert request_count(gw, **chat, model="cyber", decision="deny", reason="tier_too_low") == 1
    # An unknown model is counted under "none": label values never come from the caller.
    assert (
        request_count(
            gw,
            endpoint="chat.completions",
            tier="none",
            model="none",
            decision="deny",
            reason="model_not_found",
        )
        == 1
    )
    assert (
        request_count(gw, **chat, model="general", decision="allow", reason="upstream_error") == 1
    )
    labels = [lbl for lbl, _ in samples(gw, "tacgw_requests_total")]
    assert all(set(lbl) == {"endpoint", "tier", "model", "decision", "reason"} for lbl in labels)
    assert "caller-chosen-name" not in json.dumps(labels)

    # One counted request per audit row (the token request's included), and the latency
    # histogram saw each of them.
    rows = gw.audit_rows()
    assert sum(v for _, v in samples(gw, "tacgw_requests_total")) == len(rows) == 7
    assert [r["endpoint"] for r in rows].count("oauth.token") == 1
    counts = samples(gw, "tacgw_request_duration_seconds_count")
    assert sum(v for _, v in counts) == 7


def test_metrics_count_unauthenticated_and_rate_limited(gateway_factory: GatewayFactory) -> None:
    """Refusals before routing (401) and at the limits stage (429) are counted too."""
    gw = gateway_factory.start(rate_limit="1/minute")
    httpx.post(f"{gw.base_url}/v1/chat/completions", json={"model": "general"})
    client = gw.openai("verified")
    client.models.list()
    with pytest.raises(openai.RateLimitError):
        client.models.list()
    assert (
        request_count(
            gw,
            endpoint="chat.completions",
            tier="none",
            model="none",
            decision="deny",
            reason="token_missing",
        )
        == 1
    )
    assert (
        request_count(
            gw,
            endpoint="models",
            tier="verified",
            model="none",
            decision="deny",
            reason="rate_limited",
        )
        == 1
    )


def test_each_gateway_has_its_own_metrics(gateway_factory: GatewayFactory) -> None:
    """Two gateways in one process never share counts."""
    first, second = gateway_factory.start(), gateway_factory.start()
    first.openai().chat.completions.create(model="general", messages=MESSAGES)
    labels = {
        "endpoint": "chat.completions",
        "tier": "public",
        "model": "general",
        "decision": "allow",
        "reason": "allowed",
    }
    assert request_count(first, **labels) == 1
    assert request_count(second, **labels) == 0


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_healthz_and_readyz(gateway_factory: GatewayFactory, database: str) -> None:
    """Liveness is 200; readiness is 200 with the database and the policy engine checked."""
    gw = gateway_factory.start(database=database)
    health = httpx.get(f"{gw.base_url}/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = httpx.get(f"{gw.base_url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": True, "policy": True, "limits": True},
    }


def test_readyz_with_real_opa(gateway_factory: GatewayFactory, opa_server: OpaServer) -> None:
    """With the OPA engine, readiness asks the real OPA server, and calls are decided by it."""
    gw = gateway_factory.start(policy_engine="opa", opa_url=opa_server.url)
    ready = httpx.get(f"{gw.base_url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True, "policy": True, "limits": True}
    client = gw.openai("public")
    assert client.chat.completions.create(model="general", messages=MESSAGES).choices
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="cyber", messages=MESSAGES)


def test_readyz_fails_when_opa_is_down(gateway_factory: GatewayFactory) -> None:
    """OPA not answering → readyz 503 with policy false, and calls fail closed with 503."""
    gw = gateway_factory.start(
        policy_engine="opa", opa_url=f"http://127.0.0.1:{free_port()}", policy_timeout_s=0.5
    )
    ready = httpx.get(f"{gw.base_url}/readyz")
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "not_ready",
        "checks": {"database": True, "policy": False, "limits": True},
    }
    # Liveness does not depend on dependencies: the process is alive.
    assert httpx.get(f"{gw.base_url}/healthz").status_code == 200
    with pytest.raises(openai.InternalServerError) as caught:
        gw.openai().chat.completions.create(model="general", messages=MESSAGES)
    assert caught.value.status_code == 503
    assert caught.value.code == "policy_unavailable"
    row = gw.audit_row(caught.value.response.headers["x-decision-id"])
    assert (row["decision"], row["status"]) == ("deny", 503)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
@pytest.mark.parametrize(
    ("tier", "expected"),
    [
        ("public", ["general"]),
        ("verified", ["general", "general-tac"]),
        ("critical", ["cyber", "general", "general-tac"]),
    ],
)
def test_models_lists_what_the_tier_may_use(
    gateway_factory: GatewayFactory, database: str, tier: str, expected: list[str]
) -> None:
    """/v1/models lists exactly the models the caller's tier may call, and is audited."""
    gw = gateway_factory.start(database=database)
    raw = gw.openai(tier).models.with_raw_response.list()
    models = [m.id for m in raw.parse()]
    assert models == expected
    row = gw.audit_row(raw.headers["x-decision-id"])
    assert (row["endpoint"], row["tier"], row["decision"], row["status"]) == (
        "models",
        tier,
        "allow",
        200,
    )


async def test_models_async_sdk(gateway_factory: GatewayFactory) -> None:
    """The async SDK lists models the same way."""
    gw = await asyncio.to_thread(gateway_factory.start)
    client = await asyncio.to_thread(gw.async_openai, "verified")
    assert [m.id async for m in client.models.list()] == ["general", "general-tac"]
    await client.close()


def test_models_requires_a_token(gateway_factory: GatewayFactory) -> None:
    """No token, no model list: 401 in OpenAI format, audited."""
    gw = gateway_factory.start()
    reply = httpx.get(f"{gw.base_url}/v1/models")
    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == "token_missing"
    assert gw.audit_row(reply.headers["x-decision-id"])["endpoint"] == "models"
