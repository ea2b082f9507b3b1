"""Redis stopped mid-test, then restarted: each tier's configured behaviour while it is
down (fail closed: 503 `limits_unavailable`; fail open: admitted, counted in a metric and
logged), and normal limits again once it is back, without restarting the gateway."""

from __future__ import annotations

import logging
import time

import pytest

from tests.limits.support import metric, post_chat
from tests.support.gateway import GatewayFactory
from tests.support.services import StoppableRedis as Redis

WAIT_S = 10.0


def test_outage_per_tier(
    gateway_factory: GatewayFactory, stoppable_redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """`public` fails open, `verified` fails closed (the default), on the same gateway."""
    limits = {"requests_per_minute": 3, "tokens_per_minute": 0, "daily_tokens": 0}
    gw = gateway_factory.start(
        rate_limit_storage=stoppable_redis.url,
        tier_limits={
            "public": {**limits, "in_flight": 2, "on_outage": "open"},
            "verified": {**limits, "in_flight": 2},
        },
    )
    public, verified = gw.token("public"), gw.token("verified")
    assert post_chat(gw.base_url, public).status_code == 200
    assert post_chat(gw.base_url, verified).status_code == 200

    stoppable_redis.stop()
    with caplog.at_level(logging.WARNING, logger="gateway.limits.limiter"):
        admitted = [post_chat(gw.base_url, public) for _ in range(5)]  # over its 3 a minute
    assert [r.status_code for r in admitted] == [200] * 5
    assert "x-ratelimit-remaining-requests" not in admitted[0].headers  # uncounted
    assert metric(gw.base_url, "tacgw_limits_fail_open_total", tier="public") >= 5
    opened = [r for r in caplog.records if "admitting public-tier requests uncounted" in r.message]
    assert len(opened) == 1  # one line, not one per request
    down = post_chat(gw.base_url, verified)
    assert down.status_code == 503
    assert down.json()["error"]["code"] == "limits_unavailable"
    assert gw.audit_row(down.headers["x-decision-id"])["status"] == 503

    stoppable_redis.start()
    deadline = time.monotonic() + WAIT_S
    while (back := post_chat(gw.base_url, verified)).status_code != 200:
        assert time.monotonic() < deadline, back.text
        time.sleep(0.1)
    # Counting again (Redis came back empty): public has 3 a minute once more.
    replies = [post_chat(gw.base_url, public) for _ in range(4)]
    assert [r.status_code for r in replies] == [200, 200, 200, 429]
    assert replies[0].headers["x-ratelimit-remaining-requests"] == "2"
    assert replies[-1].json()["error"]["code"] == "rate_limited"
