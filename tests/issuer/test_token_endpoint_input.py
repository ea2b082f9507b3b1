"""The token endpoint refuses oversized, mistyped and ambiguous requests in RFC 6749 form."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.gateway import GatewayFactory, RunningGateway


@pytest.fixture
def gw(gateway_factory: GatewayFactory) -> RunningGateway:
    return gateway_factory.start()


def _token_url(gw: RunningGateway) -> str:
    return f"{gw.base_url}/oauth/token"


def test_oversized_form_is_413(gw: RunningGateway) -> None:
    """A body over 8 KiB is refused before it is read whole (declared length)."""
    client_id, secret = gw.credentials["public"]
    reply = httpx.post(
        _token_url(gw),
        auth=(client_id, secret),
        data={"grant_type": "client_credentials", "pad": "x" * 20_000},
    )
    assert reply.status_code == 413
    assert reply.json()["error"] == "invalid_request"


def test_oversized_chunked_form_is_413(gw: RunningGateway) -> None:
    """The same without Content-Length: counted while it streams in."""
    client_id, secret = gw.credentials["public"]

    def chunks() -> Iterator[bytes]:
        yield b"grant_type=client_credentials&pad="
        for _ in range(40):
            yield b"x" * 1024

    reply = httpx.post(
        _token_url(gw),
        auth=(client_id, secret),
        content=chunks(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert reply.status_code == 413


def test_json_body_is_refused(gw: RunningGateway) -> None:
    """RFC 6749 token requests are urlencoded forms; JSON is a 400 invalid_request."""
    client_id, secret = gw.credentials["public"]
    reply = httpx.post(
        _token_url(gw), auth=(client_id, secret), json={"grant_type": "client_credentials"}
    )
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_request"


def test_repeated_parameter_is_refused(gw: RunningGateway) -> None:
    """A parameter given twice is ambiguous (RFC 6749 §3.2): 400 invalid_request."""
    client_id, secret = gw.credentials["public"]
    reply = httpx.post(
        _token_url(gw),
        auth=(client_id, secret),
        content=b"grant_type=client_credentials&grant_type=password",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_request"


def test_well_formed_request_still_gets_a_token(gw: RunningGateway) -> None:
    """The checks do not get in the way of a normal request."""
    assert gw.token("critical").count(".") == 2
