"""Rate limits: per subject on /v1 (memory or shared Redis), per address on the token endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway.app import create_app
from gateway.demo.upstream import create_upstream_app
from tests.support.gateway import GatewayFactory, RunningGateway
from tests.support.uvicorn_server import serve

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
def dedicated_upstream() -> Iterator[str]:
    """A demo upstream of this test's own, so its request count is this test's."""
    with serve(create_upstream_app("dedicated")) as base:
        yield base


def chat(base_url: str, token: str) -> httpx.Response:
    """One small chat call with plain httpx."""
    return httpx.post(
        f"{base_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {token}"},
        json={"model": "general", "messages": MESSAGES},
    )


def assert_rate_limited(gw: RunningGateway, reply: httpx.Response, limit: int) -> None:
    """A 429 in OpenAI format with Retry-After and RateLimit-* headers, audited as a deny."""
    assert reply.status_code == 429, reply.text
    error = reply.json()["error"]
    assert (error["code"], error["type"]) == ("rate_limited", "rate_limit_error")
    retry_after = int(reply.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert reply.headers["ratelimit-limit"] == str(limit)
    assert reply.headers["ratelimit-remaining"] == "0"
    assert 1 <= int(reply.headers["ratelimit-reset"]) <= 60
    row = gw.audit_row(reply.headers["x-decision-id"])
    assert (row["decision"], row["status"]) == ("deny", 429)
    assert json.loads(row["reasons"]) == ["rate_limited"]
    assert row["subject"] is not None


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_fourth_request_is_429(
    gateway_factory: GatewayFactory, dedicated_upstream: str, redis_url: str, storage: str
) -> None:
    """With 3/minute, three calls pass, the fourth is refused and never reaches the upstream."""
    gw = gateway_factory.start(
        upstream=f"{dedicated_upstream}/v1",
        rate_limit="3/minute",
        rate_limit_storage="memory://" if storage == "memory" else redis_url,
    )
    token = gw.token()
    for _ in range(3):
        assert chat(gw.base_url, token).status_code == 200
    assert_rate_limited(gw, chat(gw.base_url, token), 3)
    assert httpx.get(f"{dedicated_upstream}/_demo/stats").json()["requests"] == 3

    # The SDK maps it to RateLimitError.
    with pytest.raises(openai.RateLimitError) as caught:
        openai.OpenAI(
            base_url=f"{gw.base_url}/v1", api_key=token, max_retries=0
        ).chat.completions.create(model="general", messages=MESSAGES)
    assert caught.value.code == "rate_limited"


def test_limit_is_per_subject(gateway_factory: GatewayFactory) -> None:
    """One caller's exhausted limit does not touch another caller's."""
    gw = gateway_factory.start(rate_limit="2/minute")
    public, verified = gw.token("public"), gw.token("verified")
    assert [chat(gw.base_url, public).status_code for _ in range(3)] == [200, 200, 429]
    assert [chat(gw.base_url, verified).status_code for _ in range(2)] == [200, 200]
    # A fresh token for the same client is the same subject: still limited.
    assert chat(gw.base_url, gw.token("public")).status_code == 429


def test_limit_covers_every_endpoint(gateway_factory: GatewayFactory) -> None:
    """Chat, embeddings and the model list draw on the same per-subject budget."""
    gw = gateway_factory.start(rate_limit="3/minute")
    client = gw.openai("public")
    client.chat.completions.create(model="general", messages=MESSAGES)
    client.embeddings.create(model="general", input="x")
    client.models.list()
    with pytest.raises(openai.RateLimitError) as caught:
        client.models.list()
    row = gw.audit_row(caught.value.response.headers["x-decision-id"])
    assert (row["endpoint"], row["status"], row["decision"]) == ("models", 429, "deny")


def test_redis_limit_is_shared_between_instances(
    gateway_factory: GatewayFactory, redis_url: str
) -> None:
    """Two gateway replicas on one Redis share a subject's budget."""
    gw = gateway_factory.start(rate_limit="3/minute", rate_limit_storage=redis_url)
    # A second replica: same database, signing key, issuer and Redis; its own process state.
    with serve(create_app(gw.settings)) as second:
        token = gw.token()
        assert chat(gw.base_url, token).status_code == 200
        assert chat(second, token).status_code == 200
        assert chat(gw.base_url, token).status_code == 200
        reply = chat(second, token)
        assert_rate_limited(gw, reply, 3)  # both replicas write the same audit table
        assert chat(gw.base_url, token).status_code == 429


def test_memory_limit_is_per_instance(gateway_factory: GatewayFactory) -> None:
    """Memory storage is one process's: a second replica has its own budget."""
    gw = gateway_factory.start(rate_limit="1/minute")
    with serve(create_app(gw.settings)) as second:
        token = gw.token()
        assert chat(gw.base_url, token).status_code == 200
        assert chat(gw.base_url, token).status_code == 429
        assert chat(second, token).status_code == 200


def test_token_endpoint_limit_is_slow_down(gateway_factory: GatewayFactory) -> None:
    """The token endpoint's own limit (2/minute) → 429 `slow_down` in OAuth error format."""
    gw = gateway_factory.start(token_endpoint_rate_limit="2/minute")
    client_id, secret = gw.credentials["public"]

    def ask() -> httpx.Response:
        return httpx.post(
            f"{gw.base_url}/oauth/token",
            auth=(client_id, secret),
            data={"grant_type": "client_credentials"},
        )

    first, second, third = ask(), ask(), ask()
    assert (first.status_code, second.status_code) == (200, 200)
    assert third.status_code == 429
    assert third.json()["error"] == "slow_down"
    assert int(third.headers["retry-after"]) >= 1
    # Wrong secrets are limited the same way: the limit is what stops guessing.
    bad = httpx.post(
        f"{gw.base_url}/oauth/token",
        auth=(client_id, "wrong"),
        data={"grant_type": "client_credentials"},
    )
    assert bad.status_code == 429
    # Tokens already issued keep working: /v1 has its own, per-subject limit.
    assert chat(gw.base_url, first.json()["access_token"]).status_code == 200
