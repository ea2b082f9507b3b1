"""Each limit's 429 through the real gateway: its code, a Retry-After from the window
that refused, RateLimit-* headers, the audit row, and the openai SDK's RateLimitError."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import openai
import pytest

from gateway.admin import ops
from tests.limits.support import (
    CALL_TOKENS,
    HI,
    fresh_minute,
    post_chat,
    public_limits,
)
from tests.support.gateway import GatewayFactory, RunningGateway
from tests.support.services import POLICY_DIR


def assert_audited(gw: RunningGateway, reply: httpx.Response, code: str) -> None:
    row = gw.audit_row(reply.headers["x-decision-id"])
    assert (row["decision"], row["status"], json.loads(row["reasons"])) == ("deny", 429, [code])
    assert row["subject"] is not None and row["model"] == "general"


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_requests_per_minute(gateway_factory: GatewayFactory, redis_url: str, storage: str) -> None:
    """3 per minute: the SDK sees RateLimitError `rate_limited`, Retry-After is when the
    oldest of the three leaves the moving minute, and success headers count down."""
    gw = gateway_factory.start(
        rate_limit_storage="memory://" if storage == "memory" else redis_url,
        tier_limits=public_limits(requests_per_minute=3),
    )
    client = gw.openai("public")
    first = time.time()
    remaining = []
    for _ in range(3):
        raw = client.chat.completions.with_raw_response.create(model="general", messages=HI)
        remaining.append(raw.headers["x-ratelimit-remaining-requests"])
        assert raw.headers["ratelimit-limit"] == "3"
    assert remaining == ["2", "1", "0"]
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="general", messages=HI)
    assert (caught.value.code, caught.value.type) == ("rate_limited", "rate_limit_error")
    reply = caught.value.response
    expected = 60 - (time.time() - first)
    assert abs(int(reply.headers["retry-after"]) - expected) <= 2
    assert reply.headers["ratelimit-limit"] == "3"
    assert reply.headers["ratelimit-remaining"] == "0"
    assert reply.headers["ratelimit-reset"] == reply.headers["retry-after"]
    assert_audited(gw, reply, "rate_limited")
    # Per subject and model: another model of the same caller has its own minute.
    verified = gw.openai("verified")
    assert verified.chat.completions.create(model="general", messages=HI).choices


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_tokens_per_minute(gateway_factory: GatewayFactory, redis_url: str, storage: str) -> None:
    """25 tokens a minute, 10 a call: two calls, then `tokens_exhausted` until the minute
    turns (Retry-After), with the remaining tokens in the headers."""
    fresh_minute()
    gw = gateway_factory.start(
        rate_limit_storage="memory://" if storage == "memory" else redis_url,
        tier_limits=public_limits(tokens_per_minute=25),
    )
    token = gw.token("public")
    first, second = post_chat(gw.base_url, token), post_chat(gw.base_url, token)
    assert first.headers["x-ratelimit-remaining-tokens"] == str(25 - CALL_TOKENS)
    assert second.headers["x-ratelimit-remaining-tokens"] == str(25 - 2 * CALL_TOKENS)
    third = post_chat(gw.base_url, token)
    assert third.status_code == 429
    assert third.json()["error"]["code"] == "tokens_exhausted"
    assert third.headers["ratelimit-remaining"] == "5"
    to_next_minute = 60 - time.time() % 60
    assert abs(int(third.headers["retry-after"]) - to_next_minute) <= 2
    assert_audited(gw, third, "tokens_exhausted")
    # 5 tokens are left: a call that reserves no more than that still fits.
    small = post_chat(gw.base_url, token, max_tokens=4, demo={"chunks": 1})
    assert small.status_code == 200, small.text


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_in_flight_counts_open_streams(
    gateway_factory: GatewayFactory, redis_url: str, storage: str
) -> None:
    """One request in flight per organization: while a slow stream is open, the next call
    is `too_many_in_flight`; once the stream ends, the slot is free again."""
    gw = gateway_factory.start(
        rate_limit_storage="memory://" if storage == "memory" else redis_url,
        tier_limits=public_limits(in_flight=1),
    )
    client = gw.openai("public")
    stream = client.chat.completions.create(
        model="general",
        messages=HI,
        stream=True,
        extra_body={"demo": {"chunks": 3, "delay_ms": 200}},
    )
    first = next(iter(stream))  # the stream is open: its slot is held
    assert first.choices
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="general", messages=HI)
    assert caught.value.code == "too_many_in_flight"
    reply = caught.value.response
    assert reply.headers["retry-after"] == "1"
    assert (reply.headers["ratelimit-limit"], reply.headers["ratelimit-remaining"]) == ("1", "0")
    assert_audited(gw, reply, "too_many_in_flight")
    assert [c for c in stream]  # read to the end: the slot is released when it closes
    deadline = time.monotonic() + 5
    while (reply2 := post_chat(gw.base_url, gw.token("public"))).status_code == 429:
        assert time.monotonic() < deadline, reply2.text
        time.sleep(0.05)
    assert reply2.status_code == 200
    # A client that leaves mid-stream releases its slot too.
    cut = client.chat.completions.create(
        model="general",
        messages=HI,
        stream=True,
        extra_body={"demo": {"chunks": 50, "delay_ms": 100}},
    )
    next(iter(cut))
    cut.close()
    deadline = time.monotonic() + 5
    while post_chat(gw.base_url, gw.token("public")).status_code != 200:
        assert time.monotonic() < deadline, "the slot of a stream cut short was not freed"
        time.sleep(0.05)


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_a_refused_request_holds_nothing(
    gateway_factory: GatewayFactory, redis_url: str, storage: str
) -> None:
    """A request refused by its last check (requests per minute) gives back the in-flight
    slot and the budget it had taken: a colleague in the same organization sees neither."""
    gw = gateway_factory.start(
        rate_limit_storage="memory://" if storage == "memory" else redis_url,
        tier_limits=public_limits(in_flight=1, requests_per_minute=1, daily_tokens=100),
    )
    token = gw.token("public")
    assert post_chat(gw.base_url, token).status_code == 200
    refused = post_chat(gw.base_url, token)
    assert refused.json()["error"]["code"] == "rate_limited"
    creds = gw.run(
        lambda engine: ops.create_client(engine, org_id=gw.org_ids["public"], name="colleague")
    )
    colleague = httpx.post(
        f"{gw.base_url}/oauth/token",
        auth=(creds.client_id, creds.client_secret),
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]
    reply = post_chat(gw.base_url, colleague)
    assert reply.status_code == 200, reply.text
    # 100 - the first call's 10 - this call's reservation of 10.
    assert reply.headers["x-ratelimit-remaining-budget"] == str(100 - 2 * CALL_TOKENS)


def test_policy_obligation_tightens_a_model(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    """`tacgw.limits.models` in the policy data: the Rego obligation lowers the tier's
    default for that model only (here 2 requests a minute on `general`)."""
    policies = tmp_path / "policies"
    shutil.copytree(POLICY_DIR, policies)
    data = json.loads((policies / "data.json").read_text())
    data["tacgw"]["limits"]["models"] = {"general": {"requests_per_minute": 2}}
    (policies / "data.json").write_text(json.dumps(data))
    gw = gateway_factory.start(
        policy_dir=policies, tier_limits=public_limits(requests_per_minute=100)
    )
    token = gw.token("public")
    replies = [post_chat(gw.base_url, token) for _ in range(3)]
    assert [r.status_code for r in replies] == [200, 200, 429]
    assert replies[0].headers["x-ratelimit-limit-requests"] == "2"
    # An obligation can only tighten: a model entry above the tier's default changes nothing.
    data["tacgw"]["limits"]["models"] = {"general": {"requests_per_minute": 1000}}
    (policies / "data.json").write_text(json.dumps(data))
    loose = gateway_factory.start(
        policy_dir=policies, tier_limits=public_limits(requests_per_minute=1)
    )
    token = loose.token("public")
    assert [post_chat(loose.base_url, token).status_code for _ in range(2)] == [200, 429]


def test_unknown_tier_in_limits_is_refused_at_start(gateway_factory: GatewayFactory) -> None:
    """A misspelt tier would leave the real one unlimited: the gateway does not start."""
    with pytest.raises(RuntimeError, match="uvicorn did not start"):
        gateway_factory.start(tier_limits={"publik": {"requests_per_minute": 1}})
