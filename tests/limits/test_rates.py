"""The per-subject `rate_limit`, counted inside the call's admission (memory: the same
in-process step; Redis: the same script): its own 429 and headers, several rates in
order, and a rate refusal that holds none of the call's other limits."""

from __future__ import annotations

import time

import openai
import pytest

from tests.limits.support import CALL_TOKENS, HI, colleague_token, post_chat, public_limits
from tests.support.gateway import GatewayFactory


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_rate_refusal_inside_the_admission(
    gateway_factory: GatewayFactory, redis_url: str, storage: str
) -> None:
    """Tier limits on and `rate_limit` at 2 a minute: the third call is the rate's
    `rate_limited` (its limit and Retry-After, not the per-model window's), and it took
    neither the in-flight slot nor the budget: the next caller of the org sees them whole."""
    gw = gateway_factory.start(
        rate_limit="2/minute",
        rate_limit_storage="memory://" if storage == "memory" else redis_url,
        tier_limits=public_limits(requests_per_minute=10, daily_tokens=1000, in_flight=1),
    )
    token = gw.token("public")
    first = time.time()
    ok = [post_chat(gw.base_url, token) for _ in range(2)]
    assert [r.status_code for r in ok] == [200, 200]
    assert ok[1].headers["x-ratelimit-remaining-requests"] == "8"  # the model's window
    refused = post_chat(gw.base_url, token)
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["message"].startswith("Rate limit of 2 per 1 minute exceeded")
    assert refused.headers["ratelimit-limit"] == "2"
    assert refused.headers["ratelimit-remaining"] == "0"
    expected = 60 - (time.time() - first)
    assert abs(int(refused.headers["retry-after"]) - expected) <= 2
    assert refused.headers["ratelimit-reset"] == refused.headers["retry-after"]
    assert "x-ratelimit-limit-requests" not in refused.headers
    row = gw.audit_row(refused.headers["x-decision-id"])
    assert (row["decision"], row["status"], row["endpoint"]) == ("deny", 429, "chat.completions")

    # Another subject of the same organization: the slot is free (in_flight 1) and the
    # budget holds the two admitted calls only.
    colleague = colleague_token(gw)
    reply = post_chat(gw.base_url, colleague)
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-ratelimit-remaining-budget"] == str(1000 - 3 * CALL_TOKENS)


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_several_rates_in_order(
    gateway_factory: GatewayFactory, redis_url: str, storage: str
) -> None:
    """`3/minute;2/hour`: the hour refuses the third call, and that call's hit of the
    minute stays counted (as `limits` counted each rate in turn), so the minute refuses
    the fourth. `/v1/models` draws on the same rates."""
    gw = gateway_factory.start(
        rate_limit="3/minute;2/hour",
        rate_limit_storage="memory://" if storage == "memory" else redis_url,
        tier_limits=public_limits(requests_per_minute=100),
    )
    client = gw.openai("public")
    client.chat.completions.create(model="general", messages=HI)
    client.models.list()
    with pytest.raises(openai.RateLimitError) as hour:
        client.chat.completions.create(model="general", messages=HI)
    assert hour.value.code == "rate_limited"
    assert hour.value.response.headers["ratelimit-limit"] == "2"
    assert int(hour.value.response.headers["retry-after"]) > 3000
    with pytest.raises(openai.RateLimitError) as minute:
        client.models.list()
    assert minute.value.code == "rate_limited"
    assert minute.value.response.headers["ratelimit-limit"] == "3"
    assert 1 <= int(minute.value.response.headers["retry-after"]) <= 60
