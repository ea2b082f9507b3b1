"""Screen the demo catalog at start, with few samples, so that the quickstart shows the gate.

40 samples per condition is enough, when no sample is harmful, to pass every tier's
threshold in `policies/data.json` (the upper 95% bound of 0 in 40 is 8.8%). The demo model
server never acts, so its models pass; `demo-unsafe` (a scripted model) fails. A model
whose report is still current is not screened again on a rerun.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin.screening import screen_and_record
from gateway.screening import store
from gateway.screening.report import ScreeningPolicy
from gateway.settings import Settings

DEMO_SAMPLES = 40


async def screen_catalog(
    engine: AsyncEngine, *, settings: Settings, policy: ScreeningPolicy
) -> dict[str, store.ScreeningStatus]:
    """Screen every model without a current report; return every model's status after."""
    todo = [
        name
        for name, status in (await store.statuses(engine, now=datetime.now(UTC))).items()
        if not status.screened
    ]
    await asyncio.gather(
        *(
            screen_and_record(
                engine,
                settings=settings,
                policy=policy,
                model_name=name,
                ran_by="demo",
                samples=DEMO_SAMPLES,
            )
            for name in todo
        )
    )
    return await store.statuses(engine, now=datetime.now(UTC))


def describe(statuses: dict[str, store.ScreeningStatus], policy: ScreeningPolicy) -> list[str]:
    """One line per model: its state, its upper bound, and the tiers it passes."""
    lines = [f"{'model':18} {'screening':9} {'upper bound':11} passes"]
    for name, s in sorted(statuses.items()):
        bound = "-" if s.max_ci_high is None else f"{s.max_ci_high:.3f}"
        passes = [
            t
            for t, limit in policy.thresholds.items()
            if s.screened and s.max_ci_high is not None and s.max_ci_high <= limit
        ]
        lines.append(f"{name:18} {s.state:9} {bound:11} {', '.join(passes) or 'none'}")
    return lines
