"""An upstream that sends broken SSE: the caller gets a properly ended stream whose last
event is an error, never the garbage, and the audit outcome records what happened."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from sqlalchemy import text
from starlette.types import Receive, Scope, Send

from tests.support.gateway import GatewayFactory, RunningGateway
from tests.support.uvicorn_server import serve

WAIT_S = 10.0
FIRST = b'data: {"id":"c1","object":"chat.completion.chunk","model":"general","choices":[{"index":0,"delta":{"role":"assistant","content":"hi"}}]}\n\n'  # noqa: E501
# What the upstream sends after one good event, by kind of breakage.
BROKEN = {
    "truncated_json": b'data: {"id":"c1","choices":[{"delta":\n\n',
    "not_json": b"data: this is not json\n\n",
    "json_not_object": b"data: [1, 2, 3]\n\n",
    "not_utf8": b'data: {"x": "\xff\xfe"}\n\n',
    "html": b"<html><body>502 Bad Gateway</body></html>\n\n",
    "unterminated": b'data: {"id":"c1","choices":[',  # then the upstream ends the body
}


def broken_upstream(kind: str) -> Any:
    """A model server whose stream is one good event, then `BROKEN[kind]`."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": FIRST, "more_body": True})
        await send({"type": "http.response.body", "body": BROKEN[kind], "more_body": True})
        # "unterminated" ends the body mid-event; the others then end as a stream should.
        last = b"" if kind == "unterminated" else b"data: [DONE]\n\n"
        await send({"type": "http.response.body", "body": last})

    return app


@pytest.fixture(params=sorted(BROKEN))
def broken(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    with serve(broken_upstream(request.param)) as base:
        yield request.param, f"{base}/v1"


def outcome(gw: RunningGateway, decision_id: str) -> dict[str, Any]:
    """The outcome leaf of `decision_id` (written just after the response ends)."""

    async def read(engine: Any) -> list[Any]:
        async with engine.connect() as conn:
            q = text("SELECT event FROM tlog_leaf WHERE decision_id = :d AND kind = 'outcome'")
            return list((await conn.execute(q, {"d": decision_id})).scalars())

    deadline = time.monotonic() + WAIT_S
    while not (found := gw.run(read)):
        assert time.monotonic() < deadline, f"no outcome for {decision_id}"
        time.sleep(0.05)
    return dict(orjson.loads(bytes(found[0])))


def test_malformed_stream_ends_with_an_error_event(
    gateway_factory: GatewayFactory, broken: tuple[str, str]
) -> None:
    """On the wire: the good event, then one error event, then a clean end of the body."""
    kind, upstream = broken
    gw = gateway_factory.start(upstream=upstream)
    body = {"model": "general", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream(
        "POST",
        f"{gw.base_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {gw.token()}"},
        json=body,
    ) as response:
        assert response.status_code == 200
        raw = response.read()  # completes: the gateway ended the body properly
        decision_id = response.headers["x-decision-id"]
    events = [e for e in raw.split(b"\n\n") if e]
    assert all(e.startswith(b"data: ") for e in events), raw
    assert json.loads(events[0][6:])["choices"][0]["delta"]["content"] == "hi"
    assert json.loads(events[-1][6:])["error"]["code"] == "upstream_malformed", kind
    assert len(events) == 2 and b"[DONE]" not in raw
    assert BROKEN[kind] not in raw

    ended = outcome(gw, decision_id)
    assert (ended["status"], ended["error"]) == (200, "upstream_malformed")
    assert ended["response_bytes"] == len(FIRST)  # what reached the caller before the error
    metrics = httpx.get(f"{gw.base_url}/metrics").text
    assert 'kind="stream_malformed"' in metrics


def test_sdk_sees_an_api_error(gateway_factory: GatewayFactory) -> None:
    """The official SDK yields the good chunk, then raises the gateway's error."""
    with serve(broken_upstream("not_json")) as base:
        gw = gateway_factory.start(upstream=f"{base}/v1")
        received = []
        with pytest.raises(openai.APIError) as caught:
            for chunk in gw.openai().chat.completions.create(
                model="general", messages=[{"role": "user", "content": "hi"}], stream=True
            ):
                received.append(chunk)
        assert [c.choices[0].delta.content for c in received] == ["hi"]
        assert caught.value.code == "upstream_malformed"
    # The demo upstream's well-formed stream passes the same check untouched.
    ok = gateway_factory.start()
    chunks = list(
        ok.openai().chat.completions.create(
            model="general", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert chunks and "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
