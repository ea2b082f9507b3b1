"""The demo upstream, served by a real uvicorn and driven with the real openai SDK."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway.demo.upstream import create_upstream_app
from tests.support.services import free_port
from tests.support.uvicorn_server import serve

MODEL = "demo-small"
MESSAGES: list[Any] = [{"role": "user", "content": "hello there demo"}]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve(create_upstream_app(MODEL)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> openai.OpenAI:
    # No retries: a forced 503 must surface at once, not after the SDK's backoff.
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0)


@pytest.fixture
def aclient(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0)


def stats(base_url: str) -> dict[str, Any]:
    return httpx.get(f"{base_url}/_demo/stats").json()


def wait_for_stat(base_url: str, key: str, above: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while (value := stats(base_url)[key]) <= above:
        assert time.monotonic() < deadline, f"{key} stayed at {value}"
        time.sleep(0.02)
    return value


def test_non_streaming(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, extra_body={"demo": {"chunks": 3}}
    )
    assert reply.object == "chat.completion"
    assert reply.model == MODEL
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert choice.message.content == f"Demo model {MODEL} says: alpha bravo charlie"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == 3
    assert reply.usage.completion_tokens == 7
    assert reply.usage.total_tokens == 10


def test_streaming_matches_non_streaming(client: openai.OpenAI, base_url: str) -> None:
    demo = {"demo": {"chunks": 6}}
    whole = client.chat.completions.create(model=MODEL, messages=MESSAGES, extra_body=demo)
    before = stats(base_url)["completed_streams"]

    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        extra_body=demo,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) == 6
    assert "".join(pieces) == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert {c.id for c in chunks} == {chunks[0].id}
    assert wait_for_stat(base_url, "completed_streams", before) == before + 1


async def test_async_streaming_with_delay(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        stream=True,
        extra_body={"demo": {"chunks": 4, "delay_ms": 20}},
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == f"Demo model {MODEL} says: alpha bravo charlie delta"


async def test_delay_non_streaming_completes(aclient: openai.AsyncOpenAI) -> None:
    reply = await aclient.chat.completions.create(
        model=MODEL, messages=MESSAGES, extra_body={"demo": {"delay_ms": 50}}
    )
    assert reply.choices[0].message.content


def test_embeddings(client: openai.OpenAI) -> None:
    # The SDK asks for base64 by default and decodes it; ask for floats too.
    b64 = client.embeddings.create(model=MODEL, input=["red fox", "blue whale", "red fox"])
    flt = client.embeddings.create(model=MODEL, input="red fox", encoding_format="float")
    vectors = [d.embedding for d in b64.data]
    assert [d.index for d in b64.data] == [0, 1, 2]
    assert all(len(v) == 8 for v in vectors)
    assert all(math.isclose(math.hypot(*v), 1.0, rel_tol=1e-5) for v in vectors)
    assert vectors[0] == vectors[2] != vectors[1]
    assert flt.data[0].embedding == pytest.approx(vectors[0], rel=1e-6)
    assert b64.usage.prompt_tokens == 6


def test_forced_status(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_body={"demo": {"status": 503}}
        )
    assert caught.value.status_code == 503
    error = caught.value.response.json()["error"]
    assert error["type"] == "server_error" and error["code"] == "demo_status"


def test_drop_after_breaks_the_stream(client: openai.OpenAI, base_url: str) -> None:
    before = stats(base_url)["dropped_streams"]
    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        stream=True,
        extra_body={"demo": {"chunks": 10, "drop_after": 3}},
    )
    received = []
    with pytest.raises(openai.APIConnectionError):  # the SDK wraps the truncated body
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 3
    assert wait_for_stat(base_url, "dropped_streams", before) == before + 1


def test_echo_headers(base_url: str) -> None:
    client = openai.OpenAI(
        base_url=f"{base_url}/v1", api_key="caller-secret", default_headers={"X-Trace": "t-1"}
    )
    reply = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, extra_body={"demo": {"echo_headers": True}}
    )
    headers = json.loads(reply.choices[0].message.content or "")
    assert headers["authorization"] == "Bearer caller-secret"
    assert headers["x-trace"] == "t-1"
    assert stats(base_url)["last_headers"]["x-trace"] == "t-1"

    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        stream=True,
        extra_body={"demo": {"echo_headers": True, "chunks": 7}},
    )
    streamed = json.loads("".join(c.choices[0].delta.content or "" for c in stream))
    assert streamed["x-trace"] == "t-1"


def test_echo_body(client: openai.OpenAI) -> None:
    """`echo_body` replies with the JSON body the server received, whole or streamed."""
    demo = {"echo_body": True, "chunks": 4}
    reply = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=77, extra_body={"demo": demo}
    )
    body = json.loads(reply.choices[0].message.content or "")
    assert body == {"model": MODEL, "messages": MESSAGES, "max_tokens": 77, "demo": demo}

    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, extra_body={"demo": demo}
    )
    streamed = json.loads("".join(c.choices[0].delta.content or "" for c in stream))
    assert streamed["stream"] is True and streamed["messages"] == MESSAGES

    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            extra_body={"demo": {"echo_body": True, "echo_headers": True}},
        )


def test_client_leaving_counts_a_cancelled_stream(base_url: str) -> None:
    before = stats(base_url)["cancelled_streams"]
    body = {
        "model": MODEL,
        "messages": MESSAGES,
        "stream": True,
        "demo": {"chunks": 200, "delay_ms": 20},
    }
    with (
        httpx.Client(base_url=base_url) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        events: list[str] = []
        for line in lines:
            if line.startswith("data: "):
                events.append(line)
            if len(events) == 3:
                break
    # Leaving both blocks closed the connection mid-stream.
    assert wait_for_stat(base_url, "cancelled_streams", before) == before + 1


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "invalid_json"),
        (json.dumps({"model": MODEL}).encode(), "missing_messages"),
        (json.dumps({"messages": MESSAGES}).encode(), "missing_model"),
        (
            json.dumps({"model": MODEL, "messages": MESSAGES, "demo": {"chunkz": 2}}).encode(),
            "invalid_request",
        ),
        (
            json.dumps({"model": MODEL, "messages": MESSAGES, "demo": {"chunks": 0}}).encode(),
            "invalid_request",
        ),
    ],
)
def test_bad_requests(base_url: str, content: bytes, code: str) -> None:
    response = httpx.post(
        f"{base_url}/v1/chat/completions",
        content=content,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == code
    assert error["message"]


def test_models_health_and_stats(client: openai.OpenAI, base_url: str) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]
    assert httpx.get(f"{base_url}/healthz").status_code == 200
    counters = stats(base_url)
    assert counters["requests"] > 0
    assert set(counters) >= {"requests", "completed_streams", "cancelled_streams", "last_headers"}


def test_module_entry_point() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.demo.upstream", "--port", str(port), "--name", "m1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                models = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        assert [m["id"] for m in models["data"]] == ["m1"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
