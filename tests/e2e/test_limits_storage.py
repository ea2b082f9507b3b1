"""Redis, the shared rate-limit storage, going away and coming back."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.gateway import GatewayFactory
from tests.support.services import free_port

BODY = {"model": "general", "messages": [{"role": "user", "content": "hi"}]}
WAIT_S = 10.0


class Redis:
    """A redis-server of this test's own, on loopback, that can be stopped and restarted."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.dir = directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=WAIT_S)
            self.proc = None


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    server = Redis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_redis_outage_fails_closed_and_recovers(
    gateway_factory: GatewayFactory, redis: Redis
) -> None:
    """Regression: with Redis down, chat and the token endpoint answered 500 and /readyz
    said ready. Now: 503 limits_unavailable (audited), /readyz not ready, and normal
    service once Redis is back, without restarting the gateway."""
    gw = gateway_factory.start(rate_limit_storage=redis.url)
    token = gw.token("public")
    headers = {"authorization": f"Bearer {token}"}
    url = f"{gw.base_url}/v1/chat/completions"
    assert httpx.post(url, json=BODY, headers=headers).status_code == 200

    redis.stop()
    down = httpx.post(url, json=BODY, headers=headers)
    assert down.status_code == 503, down.text
    assert down.json()["error"]["code"] == "limits_unavailable"
    row = gw.audit_row(down.headers["x-decision-id"])
    assert (row["decision"], row["status"]) == ("deny", 503)
    ready = httpx.get(f"{gw.base_url}/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["limits"] is False
    client_id, secret = gw.credentials["public"]
    token_reply = httpx.post(
        f"{gw.base_url}/oauth/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials"},
    )
    assert token_reply.status_code == 503, token_reply.text
    assert token_reply.json()["error"] == "limits_unavailable"

    redis.start()
    deadline = time.monotonic() + WAIT_S
    while (reply := httpx.post(url, json=BODY, headers=headers)).status_code != 200:
        assert time.monotonic() < deadline, reply.text
        time.sleep(0.1)
    assert httpx.get(f"{gw.base_url}/readyz").status_code == 200
    assert gw.token("public")
