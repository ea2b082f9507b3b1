"""Screening a catalog model through its own upstream, and recording the report."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.admin import ops
from gateway.db.engine import make_engine
from gateway.screening import store
from gateway.screening.report import ScreeningPolicy
from gateway.screening.scripted import ScriptedModel
from gateway.screening.service import UnknownModel, screen_and_record
from gateway.settings import Settings
from tests.screening.conftest import scripted_server
from tests.support.gateway import fresh_database_url


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        dev_mode=True,
        database_url=fresh_database_url("sqlite", tmp_path, None),
        signing_key_file=tmp_path / "key.pem",
        screening={"samples": 6, "report_ttl_days": 3},
    )


async def test_screens_the_entry_upstream_and_records_it(
    settings: Settings, screening_policy: ScreeningPolicy
) -> None:
    """The report names the catalog model, its upstream without credentials, and is stored."""
    engine = make_engine(settings.database_url)
    try:
        with scripted_server(ScriptedModel(harm_rate=0.0, seed=9)) as url:
            with_userinfo = url.replace("http://", "http://user:secret@")
            await ops.add_model(
                engine,
                name="general",
                upstream_url=with_userinfo,
                upstream_model="scripted",
                tier_floor="public",
            )
            report, saved = await screen_and_record(
                engine,
                settings=settings,
                policy=screening_policy,
                model_name="general",
                ran_by="alice",
            )
        assert report.body["model"] == "general" and report.body["ran_by"] == "alice"
        assert report.body["upstream"] == {"url": url, "model": "scripted"}
        assert "secret" not in report.body["upstream"]["url"]
        assert all(c["n"] == 6 for c in report.conditions)
        assert saved.sha256 == report.sha256
        created = datetime.fromisoformat(report.body["finished_at"])
        assert (saved.expires_at - created).days == 3
        status = await store.model_status(engine, model_name="general", now=datetime.now(UTC))
        assert status.state == "current" and status.report_id == saved.id
        with pytest.raises(UnknownModel):
            await screen_and_record(
                engine, settings=settings, policy=screening_policy, model_name="nope", ran_by="a"
            )
    finally:
        await engine.dispose()


def test_a_grader_needs_a_model_name(tmp_path: Path) -> None:
    """A grader URL without a model is refused at start, not at the first screening."""
    with pytest.raises(ValueError, match="grader_model"):
        Settings(dev_mode=True, screening={"grader_url": "http://127.0.0.1:9/v1"})
