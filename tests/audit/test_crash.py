"""Under load, the gateway is killed with SIGKILL and restarted: every response a client
received as 2xx has its decision row and leaf, and the log still verifies.

`tac-gateway serve` runs as a real process on SQLite (synchronous=FULL) and on
PostgreSQL; a few threads send requests until the kill, then the gateway is restarted on
the same database, serves again, and is stopped cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.gateway import fresh_database_url
from tests.support.services import free_port

CLI = [sys.executable, "-m", "gateway.cli"]
BODY = {"model": "general", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
WAIT_S = 30.0


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)


def start(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
        time.sleep(0.2)


@pytest.fixture(params=["sqlite", "postgres"])
def env(
    request: pytest.FixtureRequest, tmp_path: Path, upstream_url: str, postgres_url: str
) -> Iterator[tuple[dict[str, str], int]]:
    port = free_port()
    url = fresh_database_url(request.param, tmp_path, postgres_url)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TACGW_")},
        "TACGW_DEV_MODE": "true",
        "TACGW_DATABASE_URL": url,
        "TACGW_ISSUER": f"http://127.0.0.1:{port}",
        "TACGW_SIGNING_KEY_FILE": str(tmp_path / "key.pem"),
        "TACGW_AUDIT_LOG__KEY_FILE": str(tmp_path / "audit-log-key.pem"),
        "TACGW_AUDIT_LOG__CHECKPOINT_EVERY": "50",
        "TACGW_RATE_LIMIT": "100000/minute",
        # No per-tier request limit (the policy data's is 60 a minute): this is load.
        "TACGW_TIER_LIMITS": '{"public": {"requests_per_minute": 0}}',
    }
    for args in (("org", "create", "acme"),):
        assert cli(env, *args).returncode == 0
    yield env, port


def load(base: str, token: str, stop: threading.Event, ok: list[str]) -> None:
    with httpx.Client(base_url=base, timeout=5) as client:
        while not stop.is_set():
            try:
                reply = client.post(
                    "/v1/chat/completions",
                    json=BODY,
                    headers={"authorization": f"Bearer {token}"},
                )
            except httpx.HTTPError:
                continue  # the kill: connections refused or cut
            if reply.status_code == 200:
                ok.append(reply.headers["x-decision-id"])


def test_sigkill_under_load_loses_no_answered_decision(
    env: tuple[dict[str, str], int], upstream_url: str
) -> None:
    environ, port = env
    creds = json.loads(cli(environ, "client", "create", "acme", "--json").stdout)
    added = cli(environ, "model", "add", "general", "--upstream", upstream_url, "--tier", "public")
    assert added.returncode == 0, added.stderr
    base = f"http://127.0.0.1:{port}"
    proc = start(environ, port)
    token = httpx.post(
        f"{base}/oauth/token",
        auth=(creds["client_id"], creds["client_secret"]),
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]
    answered: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=load, args=(base, token, stop, answered)) for _ in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + WAIT_S
    while len(answered) < 150 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert len(answered) >= 150

    # Restarted on the same database, it serves and appends after what survived.
    proc = start(environ, port)
    for _ in range(20):
        reply = httpx.post(
            f"{base}/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {token}"}
        )
        assert reply.status_code == 200
        answered.append(reply.headers["x-decision-id"])
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)

    rows = cli(environ, "audit", "export", "--format", "csv").stdout.splitlines()[1:]
    logged = {row.split(",")[1] for row in rows}
    missing = set(answered) - logged
    assert not missing, f"{len(missing)} answered decisions have no row"
    verified = cli(environ, "audit", "verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] and report["size"] >= len(answered)
