"""Chat and embeddings through the real gateway, with the official openai SDK as the client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest

from tests.support.gateway import GatewayFactory, RunningGateway

MESSAGES: list[Any] = [{"role": "user", "content": "hello gateway"}]
DATABASES = ["sqlite", "postgres"]


def reasons(row: dict[str, Any]) -> list[str]:
    """The audit row's reasons, decoded."""
    return list(json.loads(row["reasons"]))


def echoed(gw: RunningGateway, knob: str, tier: str = "public", **create: Any) -> dict[str, Any]:
    """What the upstream received (`echo_headers` or `echo_body`), seen through the gateway."""
    reply = gw.openai(tier).chat.completions.create(
        model="general", messages=MESSAGES, extra_body={"demo": {knob: True}}, **create
    )
    return dict(json.loads(reply.choices[0].message.content or ""))


@pytest.mark.parametrize("database", DATABASES)
def test_sync_chat_and_embeddings(gateway_factory: GatewayFactory, database: str) -> None:
    """Sync SDK: a chat reply and embeddings come back whole, each with its audit row."""
    gw = gateway_factory.start(database=database)
    client = gw.openai("public")

    raw = client.chat.completions.with_raw_response.create(
        model="general", messages=MESSAGES, extra_body={"demo": {"chunks": 3}}
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == "Demo model general says: alpha bravo charlie"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.prompt_tokens == 2
    row = gw.audit_row(raw.headers["x-decision-id"])
    assert (row["endpoint"], row["model"], row["tier"]) == ("chat.completions", "general", "public")
    assert (row["decision"], row["status"], reasons(row)) == ("allow", 200, ["allowed"])
    assert row["subject"] and row["request_hash"] and row["policy_version"] is not None

    raw_emb = client.embeddings.with_raw_response.create(
        model="general", input=["red fox", "blue whale", "red fox"]
    )
    emb = raw_emb.parse()
    vectors = [d.embedding for d in emb.data]
    assert [d.index for d in emb.data] == [0, 1, 2]
    assert all(len(v) == 8 for v in vectors)
    assert vectors[0] == vectors[2] != vectors[1]
    row = gw.audit_row(raw_emb.headers["x-decision-id"])
    assert (row["endpoint"], row["decision"], row["status"]) == ("embeddings", "allow", 200)


@pytest.mark.parametrize("database", DATABASES)
async def test_async_chat_and_embeddings(gateway_factory: GatewayFactory, database: str) -> None:
    """Async SDK: concurrent chats and an embedding, every one audited under its own id."""
    gw = await asyncio.to_thread(gateway_factory.start, database=database)
    client = await asyncio.to_thread(gw.async_openai, "verified")

    raws = await asyncio.gather(
        *(
            client.chat.completions.with_raw_response.create(
                model="general-tac",
                messages=[{"role": "user", "content": f"question {i}"}],
                extra_body={"demo": {"chunks": 2, "delay_ms": 20}},
            )
            for i in range(5)
        )
    )
    contents = {r.parse().choices[0].message.content for r in raws}
    assert contents == {"Demo model general-tac says: alpha bravo"}
    ids = [r.headers["x-decision-id"] for r in raws]
    assert len(set(ids)) == 5
    for decision_id in ids:
        row = await asyncio.to_thread(gw.audit_row, decision_id)
        assert (row["tier"], row["model"], row["status"]) == ("verified", "general-tac", 200)

    emb = await client.embeddings.create(model="general", input="red fox", encoding_format="float")
    assert len(emb.data[0].embedding) == 8
    await client.close()


def test_decision_id_header_is_the_sdk_request_id(gateway_factory: GatewayFactory) -> None:
    """`x-decision-id` equals the SDK's request id, and every call adds exactly one row."""
    gw = gateway_factory.start()
    client = gw.openai("public")
    before = len(gw.audit_rows())
    ids = []
    for _ in range(3):
        raw = client.chat.completions.with_raw_response.create(model="general", messages=MESSAGES)
        assert raw.headers["x-decision-id"] == raw.headers["x-request-id"]
        assert raw.parse()._request_id == raw.headers["x-decision-id"]
        ids.append(raw.headers["x-decision-id"])
    assert len(set(ids)) == 3
    assert sorted(r["id"] for r in gw.audit_rows()[before:]) == sorted(ids)
    for decision_id in ids:
        gw.audit_row(decision_id)


@pytest.mark.parametrize("database", DATABASES)
def test_caller_authorization_never_reaches_upstream(
    gateway_factory: GatewayFactory, database: str
) -> None:
    """Without an upstream key the upstream sees no Authorization at all."""
    gw = gateway_factory.start(database=database)
    client = gw.openai("public")
    token = client.api_key
    raw = client.chat.completions.with_raw_response.create(
        model="general", messages=MESSAGES, extra_body={"demo": {"echo_headers": True}}
    )
    headers = json.loads(raw.parse().choices[0].message.content or "")
    assert "authorization" not in headers
    assert token not in json.dumps(headers)
    # The upstream can correlate its logs with the audit row.
    assert headers["x-request-id"] == raw.headers["x-decision-id"]

    stream = client.chat.completions.create(
        model="general",
        messages=MESSAGES,
        stream=True,
        extra_body={"demo": {"echo_headers": True, "chunks": 5}},
    )
    streamed = json.loads("".join(c.choices[0].delta.content or "" for c in stream))
    assert "authorization" not in streamed
    assert token not in json.dumps(streamed)


def test_upstream_api_key_replaces_caller_token(gateway_factory: GatewayFactory) -> None:
    """With `upstream_api_key` set the upstream sees exactly that bearer, never the caller's."""
    gw = gateway_factory.start(upstream_api_key="sk-upstream-test-123")
    seen = echoed(gw, "echo_headers", tier="critical")
    assert seen["authorization"] == "Bearer sk-upstream-test-123"
    # Even a caller who adds extra credentials cannot make them reach the upstream.
    client = gw.openai("public", default_headers={"x-api-key": "caller-extra", "cookie": "c=1"})
    reply = client.chat.completions.create(
        model="general", messages=MESSAGES, extra_body={"demo": {"echo_headers": True}}
    )
    headers = json.loads(reply.choices[0].message.content or "")
    assert headers["authorization"] == "Bearer sk-upstream-test-123"
    assert not {"x-api-key", "cookie"} & set(headers)


@pytest.mark.parametrize(
    ("tier", "asked", "expected"),
    [
        ("public", 100_000, 4096),
        ("public", 100, 100),
        ("public", None, 4096),
        ("verified", 100_000, 8192),
        ("critical", 100_000, 32768),
    ],
)
def test_max_tokens_obligation_reaches_upstream(
    gateway_factory: GatewayFactory, tier: str, asked: int | None, expected: int
) -> None:
    """The policy's per-tier cap is what the upstream receives, never more than asked."""
    gw = gateway_factory.start()
    create: dict[str, Any] = {} if asked is None else {"max_tokens": asked}
    body = echoed(gw, "echo_body", tier=tier, **create)
    assert body["max_tokens"] == expected
    assert "max_completion_tokens" not in body
    assert body["model"] == "general" and body["messages"] == MESSAGES


def test_max_completion_tokens_is_capped_too(gateway_factory: GatewayFactory) -> None:
    """The newer `max_completion_tokens` field is capped like `max_tokens`."""
    gw = gateway_factory.start()
    body = echoed(gw, "echo_body", max_completion_tokens=50_000)
    assert body["max_completion_tokens"] == 4096
    assert "max_tokens" not in body


@pytest.mark.parametrize("value", ["100000", True, 0, -5, 1.5e9])
def test_token_cap_cannot_be_dodged(gateway_factory: GatewayFactory, value: Any) -> None:
    """A non-integer or non-positive `max_tokens` is a 400 before the upstream sees it."""
    gw = gateway_factory.start()
    reply = httpx.post(
        f"{gw.base_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {gw.token('public')}"},
        json={"model": "general", "messages": MESSAGES, "max_tokens": value},
    )
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "invalid_request"
    row = gw.audit_row(reply.headers["x-decision-id"])
    assert (row["decision"], row["status"]) == ("deny", 400)


def test_null_max_tokens_gets_the_cap(gateway_factory: GatewayFactory) -> None:
    """`max_tokens: null` means "not given": the policy's cap applies."""
    gw = gateway_factory.start()
    reply = httpx.post(
        f"{gw.base_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {gw.token('public')}"},
        json={
            "model": "general",
            "messages": MESSAGES,
            "max_tokens": None,
            "demo": {"echo_body": True},
        },
    )
    assert reply.status_code == 200
    body = json.loads(reply.json()["choices"][0]["message"]["content"])
    assert body["max_tokens"] == 4096


def test_plain_httpx_client_gets_openai_shapes(gateway_factory: GatewayFactory) -> None:
    """Without the SDK: the same JSON, content type and decision headers."""
    gw = gateway_factory.start()
    reply = httpx.post(
        f"{gw.base_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {gw.token()}"},
        json={"model": "general", "messages": MESSAGES},
    )
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json()["object"] == "chat.completion"
    gw.audit_row(reply.headers["x-decision-id"])


def test_denied_by_tier_never_reaches_upstream(gateway_factory: GatewayFactory) -> None:
    """A denied call is refused before forwarding: the SDK sees 403 tier_too_low."""
    gw = gateway_factory.start()
    with pytest.raises(openai.PermissionDeniedError) as denied:
        gw.openai("verified").chat.completions.create(model="cyber", messages=MESSAGES)
    assert denied.value.code == "tier_too_low"
    row = gw.audit_row(denied.value.response.headers["x-decision-id"])
    assert (row["decision"], row["status"], row["tier"]) == ("deny", 403, "verified")
    assert reasons(row) == ["tier_too_low"]
