"""Redis, the shared rate-limit storage, stopped and started under a running gateway
(tests/limits/test_outage.py covers the per-tier fail-open setting)."""

from __future__ import annotations

import time

import httpx

from tests.faults.load import metric
from tests.support.gateway import GatewayFactory
from tests.support.services import StoppableRedis as Redis

BODY = {"model": "general", "messages": [{"role": "user", "content": "hi"}]}
WAIT_S = 10.0


def test_redis_outage_fails_closed_and_recovers(
    gateway_factory: GatewayFactory, stoppable_redis: Redis
) -> None:
    """Regression: with Redis down, chat and the token endpoint answered 500 and /readyz
    said ready. Now: 503 limits_unavailable (audited), /readyz not ready, and normal
    service once Redis is back, without restarting the gateway."""
    gw = gateway_factory.start(rate_limit_storage=stoppable_redis.url)
    token = gw.token("public")
    headers = {"authorization": f"Bearer {token}"}
    url = f"{gw.base_url}/v1/chat/completions"
    assert httpx.post(url, json=BODY, headers=headers).status_code == 200

    stoppable_redis.stop()
    down = httpx.post(url, json=BODY, headers=headers)
    assert down.status_code == 503, down.text
    assert down.json()["error"]["code"] == "limits_unavailable"
    row = gw.audit_row(down.headers["x-decision-id"])
    assert (row["decision"], row["status"]) == ("deny", 503)
    ready = httpx.get(f"{gw.base_url}/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["limits"] is False
    refusals = metric(
        gw.base_url, "tacgw_requests_total", decision="deny", reason="limits_unavailable"
    )
    assert refusals == 1  # counted under its reason, like every decision
    client_id, secret = gw.credentials["public"]
    token_reply = httpx.post(
        f"{gw.base_url}/oauth/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials"},
    )
    assert token_reply.status_code == 503, token_reply.text
    assert token_reply.json()["error"] == "limits_unavailable"

    stoppable_redis.start()
    deadline = time.monotonic() + WAIT_S
    while (reply := httpx.post(url, json=BODY, headers=headers)).status_code != 200:
        assert time.monotonic() < deadline, reply.text
        time.sleep(0.1)
    assert httpx.get(f"{gw.base_url}/readyz").status_code == 200
    assert gw.token("public")
    assert gw.audit_row(reply.headers["x-decision-id"])["decision"] == "allow"
