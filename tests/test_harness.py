"""The test harness itself: every service the fixtures promise really answers."""

from __future__ import annotations

import re
import subprocess
import urllib.request
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

from tests.support.services import REPO_ROOT, OpaServer, free_port


def pinned_opa_version() -> str:
    """The OPA version scripts/test pins (single source of truth), without the leading v."""
    script = (REPO_ROOT / "scripts" / "test").read_text()
    match = re.search(r"^readonly OPA_VERSION=v?(\S+)$", script, re.MULTILINE)
    assert match, "scripts/test must pin OPA_VERSION"
    return match.group(1)


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


async def test_postgres_answers_select_1(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+asyncpg://")
    dsn = postgres_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        assert await conn.fetchval("select 1") == 1
        assert await conn.fetchval("select current_database()") == "tacgw_test"
    finally:
        await conn.close()


async def test_redis_answers_ping(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        assert await client.ping() is True
        await client.set("tacgw:harness", "ok", ex=10)
        assert await client.get("tacgw:harness") == b"ok"
    finally:
        await client.aclose()


def test_opa_binary_is_pinned_version(opa_bin: Path) -> None:
    out = subprocess.run(
        [str(opa_bin), "version"], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    assert f"Version: {pinned_opa_version()}" in out.splitlines()


def test_opa_server_is_healthy(opa_server: OpaServer) -> None:
    assert opa_server.url == f"http://{opa_server.host}:{opa_server.port}"
    with urllib.request.urlopen(f"{opa_server.url}/health", timeout=5) as resp:
        assert resp.status == 200
