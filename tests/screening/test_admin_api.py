"""`POST /admin/models/{name}/screenings` and `GET /admin/screenings/{run_id}` through a
real gateway: admins start a run in the background, admins and auditors follow it, the
report it stores gates the model; and shutdown cancels a run still going."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin import clients, ops
from gateway.admin.actor import Actor
from gateway.admin.screening_runs import ScreeningRuns
from gateway.db.engine import make_engine
from gateway.screening import store
from gateway.screening.scripted import ScriptedModel
from gateway.settings import Settings
from tests.screening.conftest import scripted_server
from tests.support.gateway import GatewayFactory, RunningGateway, fresh_database_url
from tests.support.uvicorn_server import serve


@pytest.fixture(scope="module")
def scripted_url() -> Iterator[str]:
    with scripted_server(ScriptedModel(harm_rate=0.0, seed=5)) as url:
        yield url


def staff(gw: RunningGateway, roles: list[str]) -> dict[str, str]:
    """Authorization headers of a client of a verified operators' org holding `roles`."""

    async def make(engine: Any) -> Any:
        org = await ops.find_org(engine, name="operators") or await ops.create_org(
            engine, name="operators", status="verified"
        )
        return await clients.create_client(
            engine, actor=Actor.cli(), org_id=org.id, name="-".join(roles), roles=roles
        )

    issued = gw.run(make)
    reply = httpx.post(
        f"{gw.base_url}/oauth/token",
        auth=(issued.client_id, issued.client_secret),
        data={"grant_type": "client_credentials"},
    )
    assert reply.status_code == 200, reply.text
    return {"authorization": f"Bearer {reply.json()['access_token']}"}


def code(reply: httpx.Response) -> tuple[int, str]:
    return reply.status_code, reply.json()["error"]["code"]


def test_admin_starts_a_screening_and_auditor_follows_it(
    gateway_factory: GatewayFactory, scripted_url: str
) -> None:
    gw = gateway_factory.start(screening={"samples": 4, "concurrency": 4})

    async def catalog(engine: Any) -> None:
        await ops.add_model(
            engine,
            name="scripted",
            tier_floor="critical",
            upstream_url=scripted_url,
            upstream_model="scripted",
        )
        await ops.add_model(engine, name="no-target", tier_floor="public")

    gw.run(catalog)
    admin, auditor = staff(gw, ["admin"]), staff(gw, ["auditor"])
    base = f"{gw.base_url}/admin"

    # Before: critical callers are refused the unscreened model.
    chat = {"model": "scripted", "messages": [{"role": "user", "content": "hi"}]}
    critical = gw.caller("critical")
    before = critical.post(f"{gw.base_url}/v1/chat/completions", json=chat)
    assert code(before) == (403, "model_not_screened")

    assert code(httpx.post(f"{base}/models/scripted/screenings", headers=auditor)) == (
        403,
        "auditor_read_only",
    )
    assert code(httpx.post(f"{base}/models/nope/screenings", headers=admin)) == (
        404,
        "model_not_found",
    )
    assert code(httpx.post(f"{base}/models/no-target/screenings", headers=admin)) == (
        409,
        "model_unscreenable",
    )
    started = httpx.post(f"{base}/models/scripted/screenings", json={"samples": 3}, headers=admin)
    assert started.status_code == 202, started.text
    run = started.json()
    assert run["model"] == "scripted" and run["state"] in ("running", "done")

    # Followed by the auditor until it ends (a wait, not a timing assertion).
    deadline = time.monotonic() + 120
    while run["state"] == "running":
        assert time.monotonic() < deadline, run
        time.sleep(0.2)
        reply = httpx.get(f"{base}/screenings/{run['run_id']}", headers=auditor)
        assert reply.status_code == 200, reply.text
        run = reply.json()
    assert run["state"] == "done", run
    assert run["done"] == run["total"] == 3 * 6 and run["report_id"]
    assert run["error"] is None and run["finished_at"] is not None
    assert code(httpx.get(f"{base}/screenings/unknown", headers=admin)) == (
        404,
        "screening_run_not_found",
    )
    defender = {"authorization": f"Bearer {gw.token('public')}"}
    assert httpx.get(f"{base}/screenings/{run['run_id']}", headers=defender).status_code == 403

    async def stored(engine: Any) -> tuple[Any, Any]:
        row = await store.get_report(engine, report_id=run["report_id"])
        status = await store.model_status(engine, model_name="scripted", now=datetime.now(UTC))
        return row, status

    row, status = gw.run(stored)
    assert row.samples_per_condition == 3 and row.ran_by.startswith("admin:")
    assert status.state == "current" and status.report_id == run["report_id"]
    # The start is audited with the run it began; the auditor's attempt as a refusal.
    events = gw.audit_rows(endpoint="admin.model.screen")
    (started_event,) = [e for e in events if e["decision"] == "allow"]
    assert run["run_id"] in started_event["detail"]
    assert [e["subject"] for e in events if e["decision"] == "deny"] != []

    # After: 3 harmless samples per condition bound the rate at 0.56, over every threshold,
    # so the gate now names the failed screening rather than a missing one.
    after = critical.post(f"{gw.base_url}/v1/chat/completions", json=chat)
    assert code(after) == (403, "model_failed_screening")


def _hanging_app() -> Starlette:
    """An upstream that never answers until its caller goes away."""

    async def chat(request: Request) -> Response:
        await request.body()
        await request.receive()  # after the body, the next message is the disconnect
        return Response(status_code=499)

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


async def test_shutdown_cancels_a_run_and_stores_nothing(tmp_path: Path) -> None:
    settings = Settings(
        dev_mode=True,
        database_url=fresh_database_url("sqlite", tmp_path, None),
        signing_key_file=tmp_path / "key.pem",
        screening={"samples": 2, "retries": 0},
    )
    engine = make_engine(settings.database_url)
    try:
        with serve(_hanging_app()) as base:
            await ops.add_model(engine, name="slow", tier_floor="public", upstream_url=f"{base}/v1")
            runs = ScreeningRuns(engine, settings)
            run = await runs.start(model_name="slow", ran_by="tests")
            assert run.state == "running"
            await runs.close()
        assert run.state == "cancelled" and run.report_id is None
        assert await store.list_reports(engine) == []
    finally:
        await engine.dispose()
