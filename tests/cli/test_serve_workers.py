"""`tac-gateway serve --workers N`: several processes on one port, sharing keys and limits."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway.admin import ops
from gateway.db.engine import make_engine
from tests.support.gateway import fresh_database_url
from tests.support.services import free_port

CLI = [sys.executable, "-m", "gateway.cli"]


def test_refuses_workers_with_memory_limits(tmp_path: Path) -> None:
    env = {**os.environ, "TACGW_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}"}
    done = subprocess.run(
        [*CLI, "serve", "--workers", "2", "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "needs shared limits storage" in done.stderr


def test_workers_without_a_key_encryption_key_fail_in_one_line(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    url = fresh_database_url("postgres", tmp_path, postgres_url)
    env = {**os.environ, "TACGW_DATABASE_URL": url, "TACGW_RATE_LIMIT_STORAGE": redis_url}
    env.pop("TACGW_KEY_ENCRYPTION_KEY", None)
    done = subprocess.run(
        [*CLI, "serve", "--workers", "2", "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "key_encryption_key" in done.stderr and "Traceback" not in done.stderr


async def _client(url: str) -> tuple[str, str]:
    engine = make_engine(url)
    try:
        org = await ops.create_org(engine, name="org-workers", status="verified")
        creds = await ops.create_client(engine, org_id=org.id, name="client-workers")
        return creds.client_id, creds.client_secret
    finally:
        await engine.dispose()


def _children(pid: int) -> list[int]:
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(k) for k in kids]


def test_two_workers_share_keys(tmp_path: Path, postgres_url: str, redis_url: str) -> None:
    """Tokens from any worker verify on every worker: keys are made once, before spawning."""
    url = fresh_database_url("postgres", tmp_path, postgres_url)
    client_id, secret = asyncio.run(_client(url))
    port = free_port()
    env = {
        **os.environ,
        "TACGW_DATABASE_URL": url,
        "TACGW_RATE_LIMIT_STORAGE": redis_url,
        "TACGW_RATE_LIMIT": "1000/second",
        "TACGW_TOKEN_ENDPOINT_RATE_LIMIT": "1000/minute",
        "TACGW_ISSUER": f"http://127.0.0.1:{port}",
        "TACGW_KEY_ENCRYPTION_KEY": "test-kek-" + "0123456789abcdef" * 2,
    }
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [*CLI, "serve", "--workers", "2", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                output = (tmp_path / "serve.log").read_text()
                pytest.fail(f"serve --workers 2 did not start:\n{output}")
            time.sleep(0.2)
        assert len(_children(proc.pid)) >= 2  # the supervisor's worker processes
        with httpx.Client(base_url=base, timeout=10) as http:
            tokens = [
                http.post(
                    "/oauth/token",
                    auth=(client_id, secret),
                    data={"grant_type": "client_credentials"},
                ).json()["access_token"]
                for _ in range(6)
            ]
            # New connections each time: the kernel spreads them over both workers.
            for token in tokens:
                auth = {"authorization": f"Bearer {token}"}
                for _ in range(3):
                    with httpx.Client(base_url=base, timeout=10) as fresh:
                        reply = fresh.get("/v1/models", headers=auth)
                    assert reply.status_code == 200, reply.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
