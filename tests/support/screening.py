"""Real screening reports for the test gateways' catalog, made once per session.

A gateway whose catalog points at the session's demo upstream gets, for each model, the
report of a real screening of that upstream (40 samples per condition: enough for every
tier's threshold when no sample is harmful, and the demo upstream never acts). The reports
are cached per (upstream, model), since screening is the slow part, and stored into each
new gateway's database, so that verified and critical callers are served as in production.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.screening import store
from gateway.screening.report import Report, ScreeningPolicy
from gateway.screening.runner import Endpoint, RunConfig
from gateway.screening.screen import screen
from tests.support.services import POLICY_DIR

SAMPLES = 40
_reports: dict[tuple[str, str], Report] = {}


async def seed_reports(engine: AsyncEngine, *, upstream: str, models: list[str]) -> None:
    """Store a real, passing-or-not report for each model, screening it on first use."""
    missing = [m for m in models if (upstream, m) not in _reports]
    if missing:
        policy = ScreeningPolicy.from_policy_data(
            json.loads((POLICY_DIR / "data.json").read_text())
        )
        reports = await asyncio.gather(
            *(
                screen(
                    model=m,
                    endpoint=Endpoint(upstream, m),
                    config=RunConfig(samples=SAMPLES, concurrency=16),
                    policy=policy,
                    ran_by="tests/support",
                    ttl=timedelta(days=1),
                )
                for m in missing
            )
        )
        _reports.update({(upstream, m): r for m, r in zip(missing, reports, strict=True)})
    for m in models:
        await store.save_report(engine, model_name=m, report=_reports[upstream, m])
