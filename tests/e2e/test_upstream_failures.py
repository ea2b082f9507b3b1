"""Upstream failures become OpenAI-format errors with the right status, each audited."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.support.gateway import GatewayFactory, RunningGateway
from tests.support.services import free_port
from tests.support.upstream import stats

MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


def only_row(gw: RunningGateway, decision_id: str) -> dict[str, Any]:
    """The single audit row of `decision_id`, with its reasons decoded."""
    row = gw.audit_row(decision_id)
    return {**row, "reasons": json.loads(row["reasons"])}


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_5xx_is_502(gateway_factory: GatewayFactory, database: str, stream: bool) -> None:
    """Upstream 503 → 502 upstream_error, streamed or not; its details are not leaked."""
    gw = gateway_factory.start(database=database)
    with pytest.raises(openai.InternalServerError) as caught:
        gw.openai().chat.completions.create(
            model="general", messages=MESSAGES, stream=stream, extra_body={"demo": {"status": 503}}
        )
    assert caught.value.status_code == 502
    error = caught.value.response.json()["error"]
    assert (error["code"], error["type"]) == ("upstream_error", "api_error")
    assert "demo" not in error["message"]
    row = only_row(gw, caught.value.response.headers["x-decision-id"])
    assert (row["decision"], row["status"], row["reasons"]) == ("allow", 502, ["upstream_error"])


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_4xx_passes_through(gateway_factory: GatewayFactory, stream: bool) -> None:
    """Upstream 400 → the caller gets that 400 and the upstream's own error body."""
    gw = gateway_factory.start()
    with pytest.raises(openai.BadRequestError) as caught:
        gw.openai().chat.completions.create(
            model="general", messages=MESSAGES, stream=stream, extra_body={"demo": {"status": 400}}
        )
    assert caught.value.status_code == 400
    assert caught.value.code == "demo_status"
    row = only_row(gw, caught.value.response.headers["x-decision-id"])
    assert (row["status"], row["reasons"]) == (400, ["upstream_error"])


def test_upstream_not_listening_is_502_unavailable(gateway_factory: GatewayFactory) -> None:
    """Nothing on the upstream's port → 502 upstream_unavailable, chat and embeddings."""
    gw = gateway_factory.start(upstream=f"http://127.0.0.1:{free_port()}/v1")
    client = gw.openai()
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="general", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_unavailable"
    row = only_row(gw, caught.value.response.headers["x-decision-id"])
    assert (row["status"], row["reasons"]) == (502, ["upstream_unavailable"])

    with pytest.raises(openai.InternalServerError) as caught:
        client.embeddings.create(model="general", input="x")
    assert caught.value.code == "upstream_unavailable"
    only_row(gw, caught.value.response.headers["x-decision-id"])


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_slow_upstream_is_504_and_not_retried(
    gateway_factory: GatewayFactory, dedicated_upstream: str, transport: str
) -> None:
    """An upstream slower than read_timeout_s → 504 upstream_timeout, sent to it only once.

    The request reached the model, so a retry could run it twice: retries are for
    failures before anything was sent.
    """
    gw = gateway_factory.start(
        upstream=f"{dedicated_upstream}/v1",
        upstream_settings={"read_timeout_s": 0.5, "transport": transport},
    )
    with pytest.raises(openai.APIStatusError) as caught:
        gw.openai().chat.completions.create(
            model="general", messages=MESSAGES, extra_body={"demo": {"delay_ms": 3000}}
        )
    assert caught.value.status_code == 504
    assert caught.value.code == "upstream_timeout"
    row = only_row(gw, caught.value.response.headers["x-decision-id"])
    assert (row["decision"], row["status"], row["reasons"]) == ("allow", 504, ["upstream_timeout"])
    assert stats(dedicated_upstream)["requests"] == 1


def test_stalled_stream_ends_with_error_event(
    gateway_factory: GatewayFactory, dedicated_upstream: str
) -> None:
    """A stream that stalls past read_timeout_s after its headers ends in an SSE error."""
    gw = gateway_factory.start(
        upstream=f"{dedicated_upstream}/v1", upstream_settings={"read_timeout_s": 0.5}
    )
    raw = gw.openai().chat.completions.with_raw_response.create(
        model="general",
        messages=MESSAGES,
        stream=True,
        extra_body={"demo": {"chunks": 3, "delay_ms": 3000}},
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in raw.parse():
            received.append(chunk)
    assert caught.value.code == "upstream_error"
    assert len(received) == 1  # the role chunk came before the stall
    only_row(gw, raw.headers["x-decision-id"])


def crash_mid_stream(gw: RunningGateway, demo: dict[str, Any]) -> tuple[list[Any], Any, str]:
    """Stream with the demo knobs `demo`; return (chunks received, SDK error, decision id)."""
    raw = gw.openai().chat.completions.with_raw_response.create(
        model="general", messages=MESSAGES, stream=True, extra_body={"demo": demo}
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in raw.parse():
            received.append(chunk)
    return received, caught.value, raw.headers["x-decision-id"]


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_upstream_crash_mid_stream(
    gateway_factory: GatewayFactory, dedicated_upstream: str, database: str
) -> None:
    """The upstream dropping the connection mid-stream → chunks so far, then an SDK error."""
    gw = gateway_factory.start(database=database, upstream=f"{dedicated_upstream}/v1")
    received, error, decision_id = crash_mid_stream(
        gw, {"chunks": 10, "drop_after": 3, "delay_ms": 50}
    )
    assert len(received) == 3
    assert error.code == "upstream_error"
    assert error.body == {
        "message": "The upstream stream ended abruptly.",
        "type": "api_error",
        "code": "upstream_error",
        "param": None,
    }
    assert stats(dedicated_upstream)["dropped_streams"] == 1
    row = only_row(gw, decision_id)
    assert (row["decision"], row["status"]) == ("allow", 200)


@pytest.mark.parametrize(
    "transport",
    [
        pytest.param(
            "aiohttp",
            # Not strict: whether the last chunks arrive in the same read as the drop
            # depends on timing, so the loss shows in most runs, not all.
            marks=pytest.mark.xfail(
                strict=False,
                reason="aiohttp's StreamReader raises a set payload error before handing out "
                "bytes it already buffered, so chunks that arrived together with the drop "
                "are lost",
            ),
        ),
        "httpx",
    ],
)
def test_upstream_crash_keeps_chunks_already_received(
    gateway_factory: GatewayFactory, dedicated_upstream: str, transport: str
) -> None:
    """Chunks the upstream sent right before dying still reach the caller."""
    gw = gateway_factory.start(
        upstream=f"{dedicated_upstream}/v1", upstream_settings={"transport": transport}
    )
    received, error, decision_id = crash_mid_stream(gw, {"chunks": 10, "drop_after": 3})
    assert error.code == "upstream_error"
    only_row(gw, decision_id)
    assert len(received) == 3


def test_mid_stream_crash_raw_sse(gateway_factory: GatewayFactory) -> None:
    """On the wire: the error is a `data:` event, followed by a clean end of the body."""
    gw = gateway_factory.start()
    body = {
        "model": "general",
        "messages": MESSAGES,
        "stream": True,
        "demo": {"chunks": 10, "drop_after": 2, "delay_ms": 50},
    }
    with httpx.stream(
        "POST",
        f"{gw.base_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {gw.token()}"},
        json=body,
    ) as response:
        data = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert len(data) == 3
    assert json.loads(data[-1])["error"]["code"] == "upstream_error"
    assert "[DONE]" not in data


def test_gateway_survives_upstream_failures(
    gateway_factory: GatewayFactory, dedicated_upstream: str
) -> None:
    """After timeouts, drops and errors, the pooled client still serves normal calls."""
    gw = gateway_factory.start(
        upstream=f"{dedicated_upstream}/v1", upstream_settings={"read_timeout_s": 0.5}
    )
    client = gw.openai()
    knobs: list[dict[str, Any]] = [
        {"status": 503},
        {"delay_ms": 2000},
        {"status": 429},
        {"status": 500},
    ]
    for demo in knobs:
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(
                model="general", messages=MESSAGES, extra_body={"demo": demo}
            )
    with pytest.raises(openai.APIError):
        list(
            client.chat.completions.create(
                model="general",
                messages=MESSAGES,
                stream=True,
                extra_body={"demo": {"drop_after": 1}},
            )
        )
    for _ in range(3):
        reply = client.chat.completions.create(model="general", messages=MESSAGES)
        assert reply.choices[0].message.content
    calls = [r for r in gw.audit_rows() if r["endpoint"] != "oauth.token"]
    assert len(calls) == 8
    # Each refused attempt is counted as exactly one row with its own status.
    statuses = sorted(r["status"] for r in calls)
    assert statuses == [200, 200, 200, 200, 429, 502, 502, 504]
