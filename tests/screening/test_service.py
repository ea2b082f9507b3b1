"""Screening a catalog model through its first enabled upstream target, with that target's
credential, and recording the report."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import ops, targets
from gateway.admin.screening import UnknownModel, Unscreenable, screen_and_record
from gateway.db.engine import make_engine
from gateway.screening import store
from gateway.screening.report import ScreeningPolicy, canonical
from gateway.screening.scripted import ScriptedModel
from gateway.settings import Settings
from tests.screening.conftest import scripted_server
from tests.support.gateway import fresh_database_url

KEY = "sk-target-only"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        dev_mode=True,
        database_url=fresh_database_url("sqlite", tmp_path, None),
        signing_key_file=tmp_path / "key.pem",
        screening={"samples": 6, "report_ttl_days": 3},
        upstream_api_key="sk-global",
    )


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(settings.database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_screens_the_first_target_with_its_credential_and_records_it(
    engine: AsyncEngine,
    settings: Settings,
    screening_policy: ScreeningPolicy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first enabled target by name is screened with its own key (the server refuses any
    other); the report names the catalog model and that upstream, and is stored current."""
    monkeypatch.setenv("TACGW_TEST_SCREEN_KEY", KEY)
    with scripted_server(ScriptedModel(harm_rate=0.0, seed=9), api_key=KEY) as url:
        await ops.add_model(engine, name="general", tier_floor="public")
        await targets.add_target(
            engine, model="general", name="b-unreachable", url="http://127.0.0.1:9/v1"
        )
        await targets.add_target(
            engine,
            model="general",
            name="a-keyed",
            url=url,
            upstream_model="scripted",
            credential="env:TACGW_TEST_SCREEN_KEY",
            headers={"x-team": "screening"},
        )
        report, saved = await screen_and_record(
            engine, settings=settings, policy=screening_policy, model_name="general", ran_by="alice"
        )
    assert report.body["model"] == "general" and report.body["ran_by"] == "alice"
    assert report.body["upstream"] == {"url": url, "model": "scripted"}
    # Every sample was answered: a missing or wrong key would have made them api_error.
    assert all(c["n"] == 6 and c["n_valid"] == 6 for c in report.conditions)
    assert KEY not in saved.model_dump_json() and KEY not in canonical(report.body)
    assert saved.sha256 == report.sha256
    created = datetime.fromisoformat(report.body["finished_at"])
    assert (saved.expires_at - created).days == 3
    status = await store.model_status(engine, model_name="general", now=datetime.now(UTC))
    assert status.state == "current" and status.report_id == saved.id


async def test_a_target_without_credential_gets_the_global_key(
    engine: AsyncEngine, settings: Settings, screening_policy: ScreeningPolicy
) -> None:
    """As routing does: no credential of its own, the gateway's `upstream_api_key`."""
    with scripted_server(ScriptedModel(harm_rate=0.0, seed=9), api_key="sk-global") as url:
        await ops.add_model(
            engine, name="general", tier_floor="public", upstream_url=url, upstream_model="s"
        )
        report, _ = await screen_and_record(
            engine, settings=settings, policy=screening_policy, model_name="general", ran_by="a"
        )
    assert all(c["n_valid"] == 6 for c in report.conditions)


async def test_refused_before_any_call(
    engine: AsyncEngine,
    settings: Settings,
    screening_policy: ScreeningPolicy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Unknown model; a model without an enabled target; a target whose key is unreadable
    (never called without it): each refused with a message that holds no secret."""
    monkeypatch.delenv("TACGW_TEST_SCREEN_KEY", raising=False)

    async def run(name: str) -> None:
        await screen_and_record(
            engine, settings=settings, policy=screening_policy, model_name=name, ran_by="a"
        )

    with pytest.raises(UnknownModel):
        await run("nope")
    await ops.add_model(engine, name="empty", tier_floor="public")
    with pytest.raises(Unscreenable, match="no enabled upstream target"):
        await run("empty")
    await targets.add_target(
        engine, model="empty", name="off", url="http://127.0.0.1:9/v1", enabled=False
    )
    with pytest.raises(Unscreenable, match="no enabled upstream target"):
        await run("empty")
    await targets.add_target(
        engine,
        model="empty",
        name="keyless",
        url="http://127.0.0.1:9/v1",
        credential="env:TACGW_TEST_SCREEN_KEY",
    )
    with pytest.raises(Unscreenable, match="TACGW_TEST_SCREEN_KEY is not set"):
        await run("empty")
    assert await store.list_reports(engine) == []


def test_a_grader_needs_a_model_name(tmp_path: Path) -> None:
    """A grader URL without a model is refused at start, not at the first screening."""
    with pytest.raises(ValueError, match="grader_model"):
        Settings(dev_mode=True, screening={"grader_url": "http://127.0.0.1:9/v1"})
