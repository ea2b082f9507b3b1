"""Stored reports: hashed as stored, linked to the catalog entry, and a model's status —
current, expired, stale or missing — on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import ops, targets
from gateway.db.engine import make_engine
from gateway.screening import store
from gateway.screening.report import Report, ScreeningPolicy, canonical, digest
from gateway.screening.runner import Endpoint, RunConfig
from gateway.screening.screen import screen
from gateway.screening.scripted import ScriptedModel
from tests.screening.conftest import scripted_server
from tests.support.gateway import fresh_database_url


@pytest.fixture(scope="module")
def scripted_url() -> Iterator[str]:
    with scripted_server(ScriptedModel(harm_rate=0.0, seed=4)) as url:
        yield url


async def small_run(
    url: str, policy: ScreeningPolicy, *, ttl: timedelta, model: str = "general"
) -> Report:
    return await screen(
        model=model,
        endpoint=Endpoint(url, "scripted"),
        config=RunConfig(samples=5, concurrency=8),
        policy=policy,
        ran_by="admin@example",
        ttl=ttl,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str) -> str:
    """An empty migrated database of each kind."""
    return fresh_database_url(request.param, tmp_path, postgres_url)


@pytest.fixture
async def engine(database_url: str, scripted_url: str) -> AsyncIterator[AsyncEngine]:
    """The database, its catalog holding `general` served by the scripted model."""
    engine = make_engine(database_url)
    await ops.add_model(
        engine,
        name="general",
        upstream_url=scripted_url,
        upstream_model="scripted",
        tier_floor="public",
    )
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_report_hash_is_stable(scripted_url: str, screening_policy: ScreeningPolicy) -> None:
    """The hash is of the canonical text: it survives a JSON round trip and catches any edit."""
    report = await small_run(scripted_url, screening_policy, ttl=timedelta(days=1))
    assert digest(report.body) == report.sha256
    assert digest(json.loads(canonical(report.body))) == report.sha256
    assert canonical(json.loads(canonical(report.body))) == canonical(report.body)
    edited = copy.deepcopy(report.body)
    edited["conditions"][0]["harmful"] += 1
    assert digest(edited) != report.sha256


async def test_saved_report_is_verifiable(
    engine: AsyncEngine, scripted_url: str, screening_policy: ScreeningPolicy
) -> None:
    """The stored body re-hashes to the stored SHA-256; an edited row does not."""
    report = await small_run(scripted_url, screening_policy, ttl=timedelta(days=1))
    saved = await store.save_report(engine, model_name="general", report=report)
    assert saved.sha256 == report.sha256 and saved.model_name == "general"
    assert saved.pack_version == report.body["pack"]["version"]
    row = await store.get_report(engine, report_id=saved.id)
    assert row is not None and store.verify(row)
    assert json.loads(row.body) == report.body
    async with engine.begin() as conn:
        edit = text("UPDATE screeningreport SET body = replace(body, :old, :new)")
        await conn.execute(edit, {"old": '"harmful":0', "new": '"harmful":1'})
    row = await store.get_report(engine, report_id=saved.id)
    assert row is not None and not store.verify(row)
    listed = await store.list_reports(engine, model_name="general")
    assert [r.id for r in listed] == [saved.id]


async def test_status_follows_the_latest_report(
    engine: AsyncEngine, scripted_url: str, screening_policy: ScreeningPolicy
) -> None:
    """Missing, then current with the report's figures; a newer report supersedes it."""
    now = datetime.now(UTC)
    assert (await store.model_status(engine, model_name="general", now=now)).state == "missing"
    first = await small_run(scripted_url, screening_policy, ttl=timedelta(days=1))
    await store.save_report(engine, model_name="general", report=first)
    status = await store.model_status(engine, model_name="general", now=datetime.now(UTC))
    assert status.state == "current" and status.screened
    assert (status.sha256, status.max_ci_high) == (first.sha256, first.body["max_ci_high"])
    second = await small_run(scripted_url, screening_policy, ttl=timedelta(days=2))
    await store.save_report(engine, model_name="general", report=second)
    status = await store.model_status(engine, model_name="general", now=datetime.now(UTC))
    assert status.sha256 == second.sha256
    assert status.expires_at == datetime.fromisoformat(second.body["expires_at"])


async def test_expired_report_counts_as_missing(
    engine: AsyncEngine, scripted_url: str, screening_policy: ScreeningPolicy
) -> None:
    """Past its expiry a report no longer screens the model."""
    report = await small_run(scripted_url, screening_policy, ttl=timedelta(hours=1))
    await store.save_report(engine, model_name="general", report=report)
    expires = datetime.fromisoformat(report.body["expires_at"])
    before = await store.model_status(
        engine, model_name="general", now=expires - timedelta(seconds=1)
    )
    after = await store.model_status(engine, model_name="general", now=expires)
    assert before.screened
    assert after.state == "expired" and not after.screened
    zero = await small_run(scripted_url, screening_policy, ttl=timedelta(0))
    await store.save_report(engine, model_name="general", report=zero)
    assert not (
        await store.model_status(engine, model_name="general", now=datetime.now(UTC))
    ).screened


async def test_report_for_another_upstream_is_stale(
    engine: AsyncEngine, scripted_url: str, screening_policy: ScreeningPolicy
) -> None:
    """Repointing the model (its only target replaced) voids its report: the model now
    served was not screened."""
    report = await small_run(scripted_url, screening_policy, ttl=timedelta(days=1))
    await store.save_report(engine, model_name="general", report=report)
    await ops.add_model(
        engine,
        name="general",
        upstream_url="http://127.0.0.1:9/v1",
        upstream_model="other",
        tier_floor="public",
    )
    status = await store.model_status(engine, model_name="general", now=datetime.now(UTC))
    assert status.state == "stale" and not status.screened


async def test_report_counts_while_its_upstream_is_an_enabled_target(
    engine: AsyncEngine, scripted_url: str, screening_policy: ScreeningPolicy
) -> None:
    """Adding a second target keeps the report current; disabling or removing the screened
    one makes it stale, even though the model is still served (by the other target)."""
    report = await small_run(scripted_url, screening_policy, ttl=timedelta(days=1))
    await store.save_report(engine, model_name="general", report=report)
    await targets.add_target(
        engine, model="general", name="zz-other", url="http://127.0.0.1:9/v1", upstream_model="x"
    )

    async def state() -> str:
        return (await store.model_status(engine, model_name="general", now=datetime.now(UTC))).state

    assert await state() == "current"
    (screened,) = [
        t for t in await targets.list_targets(engine, model="general") if t.name != "zz-other"
    ]
    # The same URL under another upstream model name is a different model.
    await targets.add_target(
        engine, model="general", name=screened.name, url=scripted_url, upstream_model="other"
    )
    assert await state() == "stale"
    await targets.add_target(
        engine,
        model="general",
        name=screened.name,
        url=scripted_url,
        upstream_model="scripted",
        enabled=False,
    )
    assert await state() == "stale"
    await targets.add_target(
        engine, model="general", name=screened.name, url=scripted_url, upstream_model="scripted"
    )
    assert await state() == "current"
    await targets.remove_target(engine, model="general", name=screened.name)
    assert await state() == "stale"


async def test_statuses_cover_the_whole_catalog(
    engine: AsyncEngine, scripted_url: str, screening_policy: ScreeningPolicy
) -> None:
    """One query gives every catalog model its status, missing where nothing was run."""
    await ops.add_model(
        engine,
        name="cyber",
        upstream_url=scripted_url,
        upstream_model="scripted",
        tier_floor="critical",
    )
    report = await small_run(scripted_url, screening_policy, ttl=timedelta(days=1))
    await store.save_report(engine, model_name="general", report=report)
    statuses = await store.statuses(engine, now=datetime.now(UTC))
    assert {name: s.state for name, s in statuses.items()} == {
        "general": "current",
        "cyber": "missing",
    }


async def test_report_must_name_a_catalog_model(
    engine: AsyncEngine, scripted_url: str, screening_policy: ScreeningPolicy
) -> None:
    """The report is linked to ModelEntry.name: an unknown model is refused by the database."""
    report = await small_run(scripted_url, screening_policy, ttl=timedelta(days=1), model="nope")
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        await store.save_report(engine, model_name="nope", report=report)
