"""Even at DEBUG, no client secret or access token reaches the logs."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.support.gateway import GatewayFactory


def test_debug_logging_never_writes_credentials(
    gateway_factory: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Token issuance and a call, with every logger at DEBUG: neither secret nor token logged."""
    caplog.set_level(logging.DEBUG)
    gw = gateway_factory.start()
    _, secret = gw.credentials["critical"]
    token = gw.token("critical")
    reply = httpx.post(
        f"{gw.base_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {token}"},
        json={"model": "cyber", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert reply.status_code == 200
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records, "DEBUG logging captured nothing: the test would prove nothing"
    assert secret not in logged
    assert token not in logged and token.split(".")[2] not in logged
