"""Even at DEBUG, no client secret or access token reaches the logs."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.support.dpop import DpopKey
from tests.support.gateway import GatewayFactory


def test_debug_logging_never_writes_credentials(
    gateway_factory: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Token issuance and a call, with every logger at DEBUG: neither secret, nor token,
    nor DPoP proof logged."""
    caplog.set_level(logging.DEBUG)
    gw = gateway_factory.start()
    _, secret = gw.credentials["critical"]
    key = DpopKey()
    token = gw.token("critical", dpop=key)
    url = f"{gw.base_url}/v1/chat/completions"
    proof = key.proof("POST", url, token=token)
    reply = httpx.post(
        url,
        headers={"authorization": f"DPoP {token}", "dpop": proof},
        json={"model": "cyber", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert reply.status_code == 200
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records, "DEBUG logging captured nothing: the test would prove nothing"
    assert secret not in logged
    assert token not in logged and token.split(".")[2] not in logged
    assert proof.split(".")[2] not in logged
