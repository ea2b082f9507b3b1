"""Screen a catalog model and record the report: the one path the CLI, the admin API and
the demo share.

The model is screened through its own upstream (the catalog entry's URL and upstream
model name, with the gateway's upstream key), against the thresholds in the policy data
the gateway decides with (`ScreeningPolicy.from_policy_data(bundle.data)`), and the
report is stored linked to the catalog entry.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.db.models import ModelEntry, ScreeningReportPublic
from gateway.screening import store
from gateway.screening.report import Report, ScreeningPolicy
from gateway.screening.runner import Endpoint, Progress, RunConfig
from gateway.screening.screen import screen
from gateway.settings import ScreeningSettings, Settings


class UnknownModel(LookupError):
    """The catalog has no model of that name."""


def run_config(settings: ScreeningSettings, *, samples: int | None = None) -> RunConfig:
    config = RunConfig(
        samples=settings.samples,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        concurrency=settings.concurrency,
        retries=settings.retries,
        timeout_s=settings.timeout_s,
        max_turns=settings.max_turns,
        use_tools=settings.use_tools,
    )
    return config if samples is None else replace(config, samples=samples)


def grader_endpoint(settings: ScreeningSettings) -> Endpoint | None:
    if not settings.grader_url:
        return None
    key = settings.grader_api_key.get_secret_value()
    return Endpoint(settings.grader_url, settings.grader_model, key)


async def screen_and_record(
    engine: AsyncEngine,
    *,
    settings: Settings,
    policy: ScreeningPolicy,
    model_name: str,
    ran_by: str,
    samples: int | None = None,
    progress: Progress | None = None,
) -> tuple[Report, ScreeningReportPublic]:
    async with AsyncSession(engine) as session:
        entry = await session.get(ModelEntry, model_name)
    if entry is None:
        raise UnknownModel(model_name)
    report = await screen(
        model=entry.name,
        endpoint=Endpoint(
            entry.upstream_url, entry.upstream_model, settings.upstream_api_key.get_secret_value()
        ),
        config=run_config(settings.screening, samples=samples),
        policy=policy,
        ran_by=ran_by,
        ttl=timedelta(days=settings.screening.report_ttl_days),
        grader=grader_endpoint(settings.screening),
        progress=progress,
    )
    saved = await store.save_report(engine, model_name=entry.name, report=report)
    return report, saved
