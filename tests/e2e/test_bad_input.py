"""Bad input gets a precise 4xx in OpenAI error format and exactly one audit row; never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.support.gateway import GatewayFactory, RunningGateway

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
MAX_BODY = 2048


@pytest.fixture(params=["sqlite", "postgres"])
def gw(request: pytest.FixtureRequest, gateway_factory: GatewayFactory) -> RunningGateway:
    """One gateway with a small body limit, on each database."""
    return gateway_factory.start(database=request.param, max_body_bytes=MAX_BODY)


def post(
    gw: RunningGateway, content: bytes | Iterator[bytes], path: str = "/v1/chat/completions"
) -> httpx.Response:
    """POST raw bytes (an iterator is sent chunked) with a valid public token."""
    return httpx.post(
        f"{gw.base_url}{path}",
        content=content,
        headers={"authorization": f"Bearer {gw.token()}", "content-type": "application/json"},
    )


def assert_refused(gw: RunningGateway, reply: httpx.Response, status: int, code: str) -> None:
    """Status, OpenAI error body, and one matching deny row in the audit log."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    error = reply.json()["error"]
    assert {"message", "type", "code"} <= set(error)
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    row = gw.audit_row(reply.headers["x-decision-id"])
    assert (row["decision"], row["status"]) == ("deny", status)
    assert json.loads(row["reasons"])[0] == code


def test_invalid_json(gw: RunningGateway) -> None:
    """Malformed JSON → 400 invalid_json."""
    reply = post(gw, b'{"model": "general", "messages": [')
    assert_refused(gw, reply, 400, "invalid_json")
    assert reply.json()["error"]["type"] == "invalid_request_error"


def test_json_array_body(gw: RunningGateway) -> None:
    """A JSON array is valid JSON but not a request → 400 invalid_request."""
    assert_refused(gw, post(gw, b'[{"model": "general"}]'), 400, "invalid_request")


@pytest.mark.parametrize(
    "body",
    [
        {"messages": MESSAGES},
        {"model": None, "messages": MESSAGES},
        {"model": "", "messages": MESSAGES},
        {"model": 42, "messages": MESSAGES},
    ],
    ids=["absent", "null", "empty", "number"],
)
def test_missing_model(gw: RunningGateway, body: dict[str, Any]) -> None:
    """No usable model name → 400 invalid_request."""
    assert_refused(gw, post(gw, json.dumps(body).encode()), 400, "invalid_request")


def test_unknown_model(gw: RunningGateway) -> None:
    """A model not in the catalog → 404 model_not_found, also through the SDK."""
    with pytest.raises(openai.NotFoundError) as caught:
        gw.openai("critical").chat.completions.create(model="gpt-nonexistent", messages=MESSAGES)
    assert caught.value.code == "model_not_found"
    assert_refused(gw, caught.value.response, 404, "model_not_found")


def test_body_too_large_with_content_length(gw: RunningGateway) -> None:
    """A declared Content-Length over the limit → 413 body_too_large."""
    body = json.dumps({"model": "general", "messages": MESSAGES, "pad": "x" * MAX_BODY}).encode()
    reply = post(gw, body)
    assert "content-length" in reply.request.headers
    assert_refused(gw, reply, 413, "body_too_large")


def test_body_too_large_chunked(gw: RunningGateway) -> None:
    """A chunked body (no Content-Length) that grows past the limit → 413 body_too_large."""

    def chunks() -> Iterator[bytes]:
        yield b'{"model": "general", "messages": [], "pad": "'
        for _ in range(8):
            yield b"x" * 512
        yield b'"}'

    reply = post(gw, chunks())
    assert reply.request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in reply.request.headers
    assert_refused(gw, reply, 413, "body_too_large")


def test_body_at_the_limit_is_accepted(gw: RunningGateway) -> None:
    """The limit is inclusive: a body of exactly max_body_bytes is forwarded, chunked too."""
    head = json.dumps({"model": "general", "messages": MESSAGES, "pad": ""}).encode()
    body = head[:-2] + b"x" * (MAX_BODY - len(head)) + b'"}'
    assert len(body) == MAX_BODY
    assert post(gw, body).status_code == 200
    assert post(gw, iter([body[:1000], body[1000:]])).status_code == 200


def test_denied_by_tier(gw: RunningGateway) -> None:
    """A public caller asking for a critical model → 403 tier_too_low."""
    body = json.dumps({"model": "cyber", "messages": MESSAGES}).encode()
    reply = post(gw, body)
    assert_refused(gw, reply, 403, "tier_too_low")
    assert reply.json()["error"]["type"] == "permission_error"
    assert gw.audit_row(reply.headers["x-decision-id"])["model"] == "cyber"


def test_missing_token(gw: RunningGateway) -> None:
    """No bearer at all → 401 with a challenge, audited without a subject."""
    reply = httpx.post(
        f"{gw.base_url}/v1/chat/completions", json={"model": "general", "messages": MESSAGES}
    )
    assert_refused(gw, reply, 401, "token_missing")
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert gw.audit_row(reply.headers["x-decision-id"])["subject"] is None


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings"])
def test_get_on_post_route(gw: RunningGateway, path: str) -> None:
    """GET on a POST route → 405 in OpenAI format, with the Allow header."""
    reply = httpx.get(f"{gw.base_url}{path}", headers={"authorization": f"Bearer {gw.token()}"})
    assert reply.status_code == 405
    error = reply.json()["error"]
    assert {"message", "type", "code"} <= set(error)
    assert (error["type"], error["code"]) == ("invalid_request_error", "method_not_allowed")
    assert reply.headers["allow"] == "POST"


def test_unknown_route_is_openai_404(gw: RunningGateway) -> None:
    """A path the gateway does not serve → 404 in OpenAI format."""
    reply = httpx.post(f"{gw.base_url}/v1/unknown", json={})
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/chat/completions", 405, "method_not_allowed"),
        ("DELETE", "/v1/models", 405, "method_not_allowed"),
        ("POST", "/v1/unknown", 404, "not_found"),
        ("GET", "/v1/fine_tuning/jobs", 404, "not_found"),
    ],
)
def test_unmatched_routes_are_audited(
    gw: RunningGateway, method: str, path: str, status: int, code: str
) -> None:
    """Regression: 404 and 405 under /v1 carry a decision id and have their audit row,
    with the caller named when its token is valid."""
    headers = {"authorization": f"Bearer {gw.token()}"}
    reply = httpx.request(method, f"{gw.base_url}{path}", headers=headers)
    assert_refused(gw, reply, status, code)
    if status == 405:
        assert reply.headers["allow"]
    row = gw.audit_row(reply.headers["x-decision-id"])
    assert row["subject"] == gw.credentials["public"][0]
    anonymous = httpx.request(method, f"{gw.base_url}{path}")
    assert_refused(gw, anonymous, status, code)
    assert gw.audit_row(anonymous.headers["x-decision-id"])["subject"] is None


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND"])
def test_a_method_no_route_lists_is_an_openai_405(gw: RunningGateway, method: str) -> None:
    """Regression: /v1's direct dispatch turned the router's 405 for TRACE into a 500."""
    reply = httpx.request(method, f"{gw.base_url}/v1/chat/completions")
    assert reply.status_code == 405, reply.text
    assert reply.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("stream", ['"yes"', "1", "[]", '{"a": 1}'])
def test_non_boolean_stream_is_refused(gw: RunningGateway, stream: str) -> None:
    """Regression: `"stream": "yes"` used to answer 200 with SSE labelled JSON."""
    body = '{"model": "general", "messages": [{"role": "user", "content": "hi"}], "stream": '
    reply = post(gw, (body + stream + "}").encode())
    assert_refused(gw, reply, 400, "invalid_request")
    assert "stream" in reply.json()["error"]["message"]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xff\xfe\x00garbage",
        b"null",
        b'"a string"',
        b"42",
        b"[" * 5000 + b"]" * 5000,
        b'{"model": "general", "messages": "not a list"}',
        b'{"model": "general", "messages": [], "stream": "yes"}',
        b'{"model": "general", "messages": [{"role": 1}], "max_tokens": "many"}',
        b'{"model": "general", "messages": [{"role": "user"}], "max_tokens": -5}',
        b'{"model": ["general"], "messages": []}',
        b'{"model": "general\\u0000", "messages": []}',
    ],
)
def test_odd_bodies_never_500(gw: RunningGateway, content: bytes) -> None:
    """Whatever the body, no 5xx, an OpenAI error when refused, and one audit row.

    Fields the gateway does not own (messages, stream, max_tokens) are the upstream's to
    judge; the lenient demo upstream may accept some of them.
    """
    reply = post(gw, content)
    assert reply.status_code < 500, reply.text
    if reply.status_code >= 400:
        assert {"message", "type", "code"} <= set(reply.json()["error"])
    row = gw.audit_row(reply.headers["x-decision-id"])
    assert row["status"] == reply.status_code


def test_embeddings_bad_input(gw: RunningGateway) -> None:
    """The embeddings route refuses the same way."""
    reply = post(gw, b"{", path="/v1/embeddings")
    assert_refused(gw, reply, 400, "invalid_json")
    assert gw.audit_row(reply.headers["x-decision-id"])["endpoint"] == "embeddings"
