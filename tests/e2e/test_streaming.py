"""Streaming (SSE) through the real gateway: passed through chunk by chunk, and cancellable."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from tests.support.gateway import GatewayFactory
from tests.support.upstream import stats, wait_for_rows, wait_for_stat

MESSAGES: list[Any] = [{"role": "user", "content": "stream please"}]


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_stream_returns_every_chunk(gateway_factory: GatewayFactory, database: str) -> None:
    """The SDK's stream yields every chunk, usage last, and equals the non-streamed reply."""
    gw = gateway_factory.start(database=database)
    client = gw.openai("public")
    demo = {"demo": {"chunks": 7}}
    whole = client.chat.completions.create(model="general", messages=MESSAGES, extra_body=demo)

    raw = client.chat.completions.with_raw_response.create(
        model="general",
        messages=MESSAGES,
        extra_body=demo,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    # The decision is durable before the response starts, so before any chunk is read.
    row = gw.audit_row(raw.headers["x-decision-id"])
    assert (row["decision"], row["status"], row["endpoint"]) == ("allow", 200, "chat.completions")

    chunks = list(raw.parse())
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) == 7
    assert "".join(pieces) == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage


async def test_async_stream(gateway_factory: GatewayFactory) -> None:
    """The async SDK streams the same way, with slow chunks."""
    gw = await asyncio.to_thread(gateway_factory.start)
    client = await asyncio.to_thread(gw.async_openai, "critical")
    stream = await client.chat.completions.create(
        model="cyber",
        messages=MESSAGES,
        stream=True,
        extra_body={"demo": {"chunks": 4, "delay_ms": 20}},
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == "Demo model cyber says: alpha bravo charlie delta"
    await client.close()


def test_first_chunk_arrives_before_upstream_finishes(
    gateway_factory: GatewayFactory, dedicated_upstream: str
) -> None:
    """Pass-through, not buffering: chunk one is in the caller's hands mid-generation."""
    gw = gateway_factory.start(upstream=f"{dedicated_upstream}/v1")
    client = gw.openai("public")
    before = stats(dedicated_upstream)["completed_streams"]

    stream = client.chat.completions.create(
        model="general",
        messages=MESSAGES,
        stream=True,
        extra_body={"demo": {"chunks": 5, "delay_ms": 300}},
    )
    chunks = iter(stream)
    first = next(c for c in chunks if c.choices and c.choices[0].delta.content)
    assert first.choices[0].delta.content == "Demo model general says: alpha"
    # The upstream is still generating the remaining four pieces.
    assert stats(dedicated_upstream)["completed_streams"] == before

    rest = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(rest) == " bravo charlie delta echo"
    assert wait_for_stat(dedicated_upstream, "completed_streams", before) == before + 1
    assert stats(dedicated_upstream)["cancelled_streams"] == 0


def test_client_disconnect_cancels_upstream(
    gateway_factory: GatewayFactory, dedicated_upstream: str
) -> None:
    """A caller that leaves mid-stream makes the gateway drop the upstream call at once."""
    gw = gateway_factory.start(upstream=f"{dedicated_upstream}/v1")
    before = stats(dedicated_upstream)
    body = {
        "model": "general",
        "messages": MESSAGES,
        "stream": True,
        "demo": {"chunks": 1000, "delay_ms": 50},
    }
    headers = {"authorization": f"Bearer {gw.token()}"}
    with (
        httpx.Client(base_url=gw.base_url, headers=headers) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        decision_id = response.headers["x-decision-id"]
        events = []
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
            if len(events) == 2:  # the role chunk, then the first content chunk
                break
        assert events[1]["choices"][0]["delta"]["content"]
    # Leaving both blocks closed the caller's connection mid-stream.
    assert (
        wait_for_stat(dedicated_upstream, "cancelled_streams", before["cancelled_streams"])
        == before["cancelled_streams"] + 1
    )
    assert stats(dedicated_upstream)["completed_streams"] == before["completed_streams"]
    row = gw.audit_row(decision_id)
    assert (row["decision"], row["status"]) == ("allow", 200)


def test_client_gone_before_upstream_answers_is_audited(
    gateway_factory: GatewayFactory, dedicated_upstream: str
) -> None:
    """A caller that gives up while the upstream is still thinking gets a 499 audit row."""
    gw = gateway_factory.start(upstream=f"{dedicated_upstream}/v1")
    token = gw.token()
    body = {"model": "general", "messages": MESSAGES, "demo": {"delay_ms": 3000}}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{gw.base_url}/v1/chat/completions",
            headers={"authorization": f"Bearer {token}"},
            json=body,
            timeout=httpx.Timeout(5.0, read=0.5),
        )
    (row,) = wait_for_rows(gw, status=499)
    assert (row["decision"], json.loads(row["reasons"])) == ("allow", ["client_closed"])
    assert row["model"] == "general"


def test_sse_framing_is_preserved(gateway_factory: GatewayFactory) -> None:
    """Raw SSE: every event is a `data:` line and the stream ends with `[DONE]`."""
    gw = gateway_factory.start()
    body = {"model": "general", "messages": MESSAGES, "stream": True, "demo": {"chunks": 3}}
    with httpx.stream(
        "POST",
        f"{gw.base_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {gw.token()}"},
        json=body,
    ) as response:
        assert response.headers["cache-control"] == "no-cache"
        data = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    parsed = [json.loads(d) for d in data[:-1]]
    # role, three pieces, finish
    assert len(parsed) == 5
    assert parsed[-1]["choices"][0]["finish_reason"] == "stop"
