"""Screen a catalog model and record the report: the one path the CLI, the admin API and
the demo share.

The model is screened through its first enabled upstream target by name (its URL and
upstream model name, its extra headers, and its own credential resolved as the catalog
does, else the gateway's `upstream_api_key`), against the thresholds in the policy data
the gateway decides with (`ScreeningPolicy.from_policy_data(bundle.data)`), and the
report is stored linked to the catalog entry. The report names that upstream, and counts
only while it is still one of the model's enabled targets (gateway/screening/store.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.db.models import ModelEntry, ScreeningReportPublic, UpstreamTarget
from gateway.routing import credentials
from gateway.routing.targets import check_headers, check_target_url
from gateway.screening import store
from gateway.screening.report import Report, ScreeningPolicy
from gateway.screening.runner import Endpoint, Progress, RunConfig
from gateway.screening.screen import screen
from gateway.settings import ScreeningSettings, Settings


class UnknownModel(LookupError):
    """The catalog has no model of that name."""


class Unscreenable(Exception):
    """The model has no enabled target, or its target cannot be called (the message says
    why and never contains a secret)."""


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


async def upstream_endpoint(
    engine: AsyncEngine, *, settings: Settings, model_name: str
) -> Endpoint:
    """The endpoint a screening of `model_name` calls: its first enabled target by name.

    Raises UnknownModel, or Unscreenable when there is no target or it could not be called
    (the same checks the catalog makes before it routes to a target).
    """
    async with AsyncSession(engine) as session:
        entry = await session.get(ModelEntry, model_name)
        if entry is None:
            raise UnknownModel(model_name)
        target = (
            await session.exec(
                select(UpstreamTarget)
                .where(UpstreamTarget.model == model_name, col(UpstreamTarget.enabled).is_(True))
                .order_by(col(UpstreamTarget.name))
                .limit(1)
            )
        ).first()
    if target is None:
        raise Unscreenable(f"model {model_name!r} has no enabled upstream target")
    try:
        check_target_url(
            target.url,
            allowed_hosts=settings.upstream.allowed_hosts,
            allowed_schemes=settings.upstream.allowed_schemes,
        )
        extra = orjson.loads(target.headers or "{}")
        if not isinstance(extra, dict):
            raise ValueError("extra headers must be a JSON object")
        headers = check_headers(extra)
        key = (
            credentials.resolve(target.credential)
            if target.credential
            else settings.upstream_api_key.get_secret_value()
        )
    except (ValueError, credentials.CredentialError) as exc:
        raise Unscreenable(f"upstream target {model_name}/{target.name}: {exc}") from None
    return Endpoint(target.url, target.upstream_model, key, headers)


async def screen_and_record(
    engine: AsyncEngine,
    *,
    settings: Settings,
    policy: ScreeningPolicy,
    model_name: str,
    ran_by: str,
    samples: int | None = None,
    progress: Progress | None = None,
    endpoint: Endpoint | None = None,
) -> tuple[Report, ScreeningReportPublic]:
    """Screen and store; `endpoint` when the caller already resolved it (`upstream_endpoint`)."""
    if endpoint is None:
        endpoint = await upstream_endpoint(engine, settings=settings, model_name=model_name)
    report = await screen(
        model=model_name,
        endpoint=endpoint,
        config=run_config(settings.screening, samples=samples),
        policy=policy,
        ran_by=ran_by,
        ttl=timedelta(days=settings.screening.report_ttl_days),
        grader=grader_endpoint(settings.screening),
        progress=progress,
    )
    saved = await store.save_report(engine, model_name=model_name, report=report)
    return report, saved
