"""A full run with every log captured: no secret, token or prompt in any of it.

The gateway runs as its own process with every logger at DEBUG (uvicorn's too). The run
issues tokens, calls a model plainly and streamed with a recognisable prompt, creates and
rotates a client through the admin API (so new client secrets pass through the gateway),
and forwards with an upstream key. Then its stdout and stderr, every audit row, the
auditor API's decisions and the log export are scanned for each secret value.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gateway.admin import clients, ops
from gateway.admin.actor import Actor
from gateway.db.engine import make_engine
from gateway.db.migrate import upgrade
from tests.support.screening import seed_reports
from tests.support.services import end_process, free_port

SERVER = """
import logging, sys, uvicorn
from gateway.app import create_app
from gateway.settings import Settings
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")
uvicorn.run(create_app(Settings()), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="debug", access_log=True)
"""


async def _seed(url: str, upstream: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        await ops.add_model(
            engine,
            name="general",
            upstream_url=upstream,
            upstream_model="general",
            tier_floor="public",
        )
        await seed_reports(engine, upstream=upstream, models=["general"])
        org = await ops.create_org(engine, name="defenders", status="verified")
        defender = await ops.create_client(engine, org_id=org.id, name="defender")
        ops_org = await ops.create_org(engine, name="operators", status="verified")
        admin = await clients.create_client(
            engine, actor=Actor.cli(), org_id=ops_org.id, name="ops", roles=["admin"]
        )
        return {"org": org.id, "defender": defender, "admin": admin}
    finally:
        await engine.dispose()


@pytest.fixture
def gateway_process(tmp_path: Path, dedicated_upstream: str) -> Iterator[dict[str, Any]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
    upgrade(url)
    seeded = asyncio.run(_seed(url, f"{dedicated_upstream}/v1"))
    port = free_port()
    upstream_key = f"sk-upstream-{uuid.uuid4().hex}"
    env = {
        **os.environ,
        "TACGW_DEV_MODE": "true",
        "TACGW_DATABASE_URL": url,
        "TACGW_SIGNING_KEY_FILE": str(tmp_path / "signing.pem"),
        "TACGW_AUDIT_LOG__KEY_FILE": str(tmp_path / "audit.pem"),
        "TACGW_ISSUER": f"http://127.0.0.1:{port}",
        "TACGW_UPSTREAM_API_KEY": upstream_key,
        "TACGW_CATALOG_TTL_S": "0",
    }
    out = (tmp_path / "stdout").open("wb")
    err = (tmp_path / "stderr").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)],
        env=env,
        stdout=out,
        stderr=err,
        stdin=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.1)
        yield {**seeded, "base": base, "url": url, "upstream_key": upstream_key, "tmp": tmp_path}
    finally:
        end_process(proc)
        out.close()
        err.close()


def _token(base: str, client_id: str, secret: str) -> str:
    reply = httpx.post(
        f"{base}/oauth/token", auth=(client_id, secret), data={"grant_type": "client_credentials"}
    )
    reply.raise_for_status()
    return str(reply.json()["access_token"])


def _audit_rows(url: str) -> str:
    async def read() -> str:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                rows = (await conn.execute(text("SELECT * FROM auditevent"))).all()
                leaves = (await conn.execute(text("SELECT * FROM tlog_leaf"))).all()
            return "\n".join(repr(tuple(r)) for r in [*rows, *leaves])
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_no_secret_in_logs_audit_or_exports(gateway_process: dict[str, Any]) -> None:
    """Client secrets (seeded, created and rotated over the API), access tokens, the
    upstream key and the prompt appear in no log line, audit row, leaf or export."""
    gp = gateway_process
    base = gp["base"]
    defender, admin = gp["defender"], gp["admin"]
    user_token = _token(base, defender.client_id, defender.client_secret)
    admin_token = _token(base, admin.client_id, admin.client_secret)
    prompt = f"canary-prompt-{uuid.uuid4().hex}"
    bearer = {"authorization": f"Bearer {user_token}"}
    chat = {"model": "general", "messages": [{"role": "user", "content": prompt}]}

    plain = httpx.post(f"{base}/v1/chat/completions", json=chat, headers=bearer)
    assert plain.status_code == 200, plain.text
    with httpx.stream(
        "POST", f"{base}/v1/chat/completions", json={**chat, "stream": True}, headers=bearer
    ) as streamed:
        assert streamed.status_code == 200
        assert "[DONE]" in streamed.read().decode()
    denied = httpx.post(
        f"{base}/v1/chat/completions", json=chat, headers={"authorization": f"Bearer {user_token}x"}
    )
    assert denied.status_code == 401

    admin_h = {"authorization": f"Bearer {admin_token}"}
    made = httpx.post(
        f"{base}/admin/orgs/{gp['org']}/clients", json={"name": "second"}, headers=admin_h
    )
    assert made.status_code in (200, 201), made.text
    new_secret = made.json()["client_secret"]
    rotated = httpx.post(f"{base}/admin/clients/{made.json()['client_id']}/rotate", headers=admin_h)
    assert rotated.status_code == 200, rotated.text
    rotated_secret = rotated.json()["client_secret"]
    third_token = _token(base, made.json()["client_id"], rotated_secret)

    decisions = httpx.get(f"{base}/audit/decisions?limit=1000", headers=admin_h)
    export = httpx.get(f"{base}/audit/export?format=jsonl", headers=admin_h)
    csv = httpx.get(f"{base}/audit/export?format=csv", headers=admin_h)
    assert decisions.status_code == export.status_code == csv.status_code == 200

    logs = (gp["tmp"] / "stdout").read_text() + (gp["tmp"] / "stderr").read_text()
    assert "DEBUG" in logs, "nothing logged at DEBUG: the scan would prove nothing"
    # The access log saw the admin calls: the scan covers the requests that carried secrets.
    assert f"/admin/clients/{made.json()['client_id']}/rotate" in logs
    haystacks = {
        "process logs": logs,
        "audit rows and leaves": _audit_rows(gp["url"]),
        "auditor API decisions": decisions.text,
        "JSONL export": export.text,
        "CSV export": csv.text,
    }
    secrets = {
        "defender secret": defender.client_secret,
        "admin secret": admin.client_secret,
        "created secret": new_secret,
        "rotated secret": rotated_secret,
        "upstream key": gp["upstream_key"],
        "prompt": prompt,
    }
    for name, token in (("user", user_token), ("admin", admin_token), ("third", third_token)):
        secrets[f"{name} token"] = token
        secrets[f"{name} token signature"] = token.rsplit(".", 1)[1]
    leaks = [
        f"{secret} in {where}"
        for where, hay in haystacks.items()
        for secret, value in secrets.items()
        if value in hay
    ]
    assert not leaks, leaks
