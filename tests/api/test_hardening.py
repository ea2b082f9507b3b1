"""The transport guard (gateway/api/hardening.py): limits on every route, security headers
on every response, and the upstream scheme allow-list."""

from __future__ import annotations

import logging
import secrets
import socket
import time
from typing import Any

import httpx
import pytest

from gateway.admin import ops
from tests.fuzz.conftest import admin_token
from tests.support.gateway import GatewayFactory, RunningGateway

LIMIT = 4096
CHAT = {"model": "general", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream_url: str, postgres_url: str) -> Any:
    factory = GatewayFactory(tmp_path_factory.mktemp("hardening"), upstream_url, postgres_url)
    try:
        yield factory.start(
            max_body_bytes=LIMIT,
            max_headers=40,
            max_header_bytes=8192,
            request_body_timeout_s=0.5,
        )
    finally:
        factory.close()


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _assert_hardened(reply: httpx.Response, *, cache: str = "no-store") -> None:
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["referrer-policy"] == "no-referrer"
    assert reply.headers["cache-control"] == cache
    assert reply.headers["content-security-policy"].startswith("default-src 'none'")
    assert "strict-transport-security" not in reply.headers  # dev mode: plain http is fine


def test_security_headers_on_every_kind_of_response(gw: RunningGateway) -> None:
    """Model answers, refusals, the token endpoint, admin, operations and unknown routes."""
    token = gw.token()
    base = gw.base_url
    replies = [
        httpx.post(f"{base}/v1/chat/completions", json=CHAT, headers=_bearer(token)),
        httpx.post(f"{base}/v1/chat/completions", json=CHAT),  # 401
        httpx.get(f"{base}/v1/nowhere", headers=_bearer(token)),  # 404
        httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials"}),
        httpx.get(f"{base}/admin/orgs", headers=_bearer(token)),  # 403
        httpx.get(f"{base}/healthz"),
        httpx.get(f"{base}/readyz"),
        httpx.get(f"{base}/metrics"),
        httpx.get(f"{base}/openapi.json"),
    ]
    assert [r.status_code for r in replies] == [200, 401, 404, 401, 403, 200, 200, 200, 200]
    for reply in replies:
        _assert_hardened(reply)
    # A route that chose its own caching keeps it.
    _assert_hardened(httpx.get(f"{base}/.well-known/jwks.json"), cache="public, max-age=60")


def test_hsts_outside_dev_mode(gateway_factory: GatewayFactory) -> None:
    """Strict-Transport-Security is sent when dev mode is off."""
    # Outside dev mode the signing keys are sealed: a key-encryption key is required.
    gw = gateway_factory.start(dev_mode=False, key_encryption_key=secrets.token_urlsafe(32))
    reply = httpx.get(f"{gw.base_url}/healthz")
    assert reply.headers["strict-transport-security"].startswith("max-age=31536000")


@pytest.mark.parametrize("chunked", [False, True])
def test_body_limit_on_admin_and_orgs_routes(gw: RunningGateway, chunked: bool) -> None:
    """A body over max_body_bytes is 413 body_too_large on /orgs and /admin, with or
    without a Content-Length; nothing is created."""
    admin = _bearer(admin_token(gw))
    big = b'{"name": "' + b"x" * (LIMIT + 10) + b'"}'
    content: Any = iter([big[:100], big[100:]]) if chunked else big
    for path, headers in (
        ("/orgs", _bearer(gw.token())),
        (f"/admin/orgs/{gw.org_ids['public']}/clients", admin),
    ):
        reply = httpx.post(
            f"{gw.base_url}{path}",
            content=content if not chunked else iter([big[:100], big[100:]]),
            headers={**headers, "content-type": "application/json"},
        )
        assert reply.status_code == 413, (path, reply.text)
        assert reply.json()["error"]["code"] == "body_too_large"
        _assert_hardened(reply)


def test_v1_body_limit_is_still_audited(gw: RunningGateway) -> None:
    """/v1 keeps its own check: the 413 has its audit row."""
    reply = httpx.post(
        f"{gw.base_url}/v1/chat/completions",
        content=b"x" * (LIMIT + 1),
        headers={**_bearer(gw.token()), "content-type": "application/json"},
    )
    assert reply.status_code == 413
    assert gw.audit_row(reply.headers["x-decision-id"])["status"] == 413


def test_too_many_headers(gw: RunningGateway) -> None:
    """More headers than max_headers → 431 headers_too_large, before any route runs."""
    headers = {f"x-filler-{i}": "1" for i in range(50)}
    reply = httpx.get(f"{gw.base_url}/healthz", headers=headers)
    assert reply.status_code == 431
    assert reply.json()["error"]["code"] == "headers_too_large"


def test_headers_too_large(gw: RunningGateway) -> None:
    """Headers over max_header_bytes in total → 431; on the token endpoint in RFC 6749 form."""
    headers = {"x-filler": "y" * 9000}
    reply = httpx.get(f"{gw.base_url}/v1/models", headers=headers)
    assert reply.status_code == 431
    assert reply.json()["error"]["code"] == "headers_too_large"
    token = httpx.post(f"{gw.base_url}/oauth/token", headers=headers, data={"a": "b"})
    assert token.status_code == 431
    assert token.json()["error"] == "invalid_request"


@pytest.mark.parametrize("path", ["/orgs", "/v1/chat/completions"])
def test_slow_body_is_cut_off(gw: RunningGateway, path: str) -> None:
    """A client that announces a body and never sends it gets 408 request_timeout
    (request_body_timeout_s), instead of holding the request open."""
    host, port = gw.base_url.removeprefix("http://").split(":")
    token = gw.token()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model"'.encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer or b"}" not in answer.split(b"\r\n\r\n", 1)[1]:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:300]
    assert b"request_timeout" in body


def test_upstream_scheme_allow_list() -> None:
    """An upstream outside upstream.allowed_schemes is refused like an unknown host."""
    with pytest.raises(ValueError, match="allowed_schemes"):
        ops.check_upstream_url("http://vllm:8000/v1", allowed_schemes=["https"])
    assert ops.check_upstream_url("https://vllm:8000/v1", allowed_schemes=["https"])
    with pytest.raises(ValueError, match="http"):
        ops.check_upstream_url("file:///etc/passwd")


def _leave_mid_body(gw: RunningGateway, request_head: str, partial: bytes) -> None:
    """Announce a 100-byte body, send part of it, and close the connection."""
    host, port = gw.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request_head.encode() + partial)


@pytest.mark.parametrize(
    ("path", "endpoint", "content_type", "partial"),
    [
        ("/v1/chat/completions", "chat.completions", "application/json", b'{"model"'),
        ("/oauth/token", "oauth.token", "application/x-www-form-urlencoded", b"grant_type"),
    ],
)
def test_client_leaving_mid_body_is_audited_not_a_failure(
    gw: RunningGateway,
    caplog: pytest.LogCaptureFixture,
    path: str,
    endpoint: str,
    content_type: str,
    partial: bytes,
) -> None:
    """A client that closes before its body arrived is a 499 `client_closed` in the audit
    log, not an unexpected failure: no 500 and no stack trace in the gateway's log."""
    host = gw.base_url.removeprefix("http://")
    before = len(gw.audit_rows(endpoint=endpoint, status=499))
    _leave_mid_body(
        gw,
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {gw.token()}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: 100\r\n\r\n",
        partial,
    )
    deadline = time.monotonic() + 30
    rows = gw.audit_rows(endpoint=endpoint, status=499)
    while len(rows) == before and time.monotonic() < deadline:
        time.sleep(0.05)
        rows = gw.audit_rows(endpoint=endpoint, status=499)
    assert len(rows) == before + 1, f"no 499 audit row for {endpoint}"
    assert (rows[-1]["decision"], rows[-1]["reasons"]) == ("deny", '["client_closed"]')
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
