"""Screening reports in the database, and a model's screening status; keyword arguments only.

A model's status comes from its latest report alone (a newer run supersedes an older one,
pass or fail). That report counts only while it is unexpired and was made against the
upstream that is still one of the model's enabled targets (same URL and upstream model
name): an expired or stale report is as good as none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Subquery, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.db.models import ModelEntry, ScreeningReport, ScreeningReportPublic, UpstreamTarget
from gateway.screening.report import Report, canonical
from gateway.screening.runner import public_url

State = Literal["missing", "expired", "stale", "current"]
STATES: tuple[State, ...] = ("missing", "expired", "stale", "current")

_T = ScreeningReport.__table__.c  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ScreeningStatus:
    state: State
    report_id: str | None = None
    sha256: str | None = None
    max_ci_high: float | None = None
    expires_at: datetime | None = None

    @property
    def screened(self) -> bool:
        """A current report exists (whether it passes a tier is the policy's call)."""
        return self.state == "current"

    def policy_input(self) -> dict[str, object]:
        """`input.model.screening`: the state, and the figure thresholds compare with."""
        return {"state": self.state, "max_ci_high": self.max_ci_high}


async def save_report(
    engine: AsyncEngine, *, model_name: str, report: Report
) -> ScreeningReportPublic:
    body = report.body
    text = canonical(body)
    # The hash is of exactly the stored text, so that an auditor can re-hash the column.
    if hashlib.sha256(text.encode()).hexdigest() != report.sha256:
        raise ValueError("report hash does not match its body")
    row = ScreeningReport(
        model_name=model_name,
        ran_by=body["ran_by"],
        upstream_url=body["upstream"]["url"],
        upstream_model=body["upstream"]["model"],
        pack_version=body["pack"]["version"],
        pack_sha256=body["pack"]["sha256"],
        samples_per_condition=body["config"]["samples"],
        max_ci_high=body["max_ci_high"],
        sha256=report.sha256,
        created_at=datetime.fromisoformat(body["finished_at"]),
        expires_at=datetime.fromisoformat(body["expires_at"]),
        body=text,
    )
    async with AsyncSession(engine, expire_on_commit=False) as session:
        session.add(row)
        await session.commit()
    return ScreeningReportPublic.model_validate(row, from_attributes=True)


async def get_report(engine: AsyncEngine, *, report_id: str) -> ScreeningReport | None:
    async with AsyncSession(engine, expire_on_commit=False) as session:
        return await session.get(ScreeningReport, report_id)


async def list_reports(
    engine: AsyncEngine, *, model_name: str | None = None, limit: int = 20
) -> list[ScreeningReportPublic]:
    query = select(ScreeningReport).order_by(_T.created_at.desc()).limit(limit)
    if model_name is not None:
        query = query.where(_T.model_name == model_name)
    async with AsyncSession(engine) as session:
        rows = (await session.exec(query)).scalars().all()  # type: ignore[call-overload]
        return [ScreeningReportPublic.model_validate(r, from_attributes=True) for r in rows]


def verify(row: ScreeningReport) -> bool:
    """The stored body still hashes to the stored SHA-256."""
    return hashlib.sha256(row.body.encode()).hexdigest() == row.sha256


async def model_status(engine: AsyncEngine, *, model_name: str, now: datetime) -> ScreeningStatus:
    return (await statuses(engine, now=now, model_names=[model_name])).get(
        model_name, ScreeningStatus("missing")
    )


Upstream = tuple[str, str]  # (public URL, upstream model name): what a report screened


@dataclass(frozen=True, slots=True)
class LatestReport:
    """A model's latest report as the catalog keeps it; what it is worth depends on the time."""

    report_id: str
    sha256: str
    max_ci_high: float
    expires_at: datetime
    # Made against an upstream that is still one of the model's enabled targets.
    same_upstream: bool

    def status(self, now: datetime) -> ScreeningStatus:
        state: State = "current"
        if self.expires_at <= now:
            state = "expired"
        elif not self.same_upstream:
            # No enabled target is the upstream it screened: it screened a different model.
            state = "stale"
        return ScreeningStatus(
            state, self.report_id, self.sha256, self.max_ci_high, self.expires_at
        )


def status_of(latest: LatestReport | None, now: datetime) -> ScreeningStatus:
    return ScreeningStatus("missing") if latest is None else latest.status(now)


def upstream_of(url: str, upstream_model: str) -> Upstream:
    """How a target is compared with the upstream a report names (the URL as reports keep it)."""
    return (public_url(url), upstream_model)


def latest_reports() -> Subquery:
    """Each model's latest report (one row per screened model), as a subquery to join.

    One query on SQLite and PostgreSQL alike (a window function ranks each model's reports).
    """
    ranked = select(
        _T.model_name,
        _T.id,
        _T.sha256,
        _T.max_ci_high,
        _T.expires_at,
        _T.upstream_url,
        _T.upstream_model,
        func.row_number()
        .over(partition_by=_T.model_name, order_by=(_T.created_at.desc(), _T.id.desc()))
        .label("rank"),
    ).subquery()
    return (
        select(
            ranked.c.model_name,
            ranked.c.id.label("report_id"),
            ranked.c.sha256.label("report_sha256"),
            ranked.c.max_ci_high.label("report_max_ci_high"),
            ranked.c.expires_at.label("report_expires_at"),
            ranked.c.upstream_url.label("report_upstream_url"),
            ranked.c.upstream_model.label("report_upstream_model"),
        )
        .where(ranked.c.rank == 1)
        .subquery("latest_report")
    )


def latest_of(row: Any, *, upstreams: Collection[Upstream]) -> LatestReport | None:
    """The latest report in a row joined with `latest_reports()`, judged against the model's
    enabled targets now (`upstreams`, each from `upstream_of`)."""
    if row.report_id is None:
        return None
    expires = row.report_expires_at
    return LatestReport(
        report_id=row.report_id,
        sha256=row.report_sha256,
        max_ci_high=float(row.report_max_ci_high),
        # The column type gives aware UTC datetimes; a raw driver row may not.
        expires_at=expires if expires.tzinfo else expires.replace(tzinfo=UTC),
        same_upstream=(row.report_upstream_url, row.report_upstream_model) in upstreams,
    )


async def statuses(
    engine: AsyncEngine, *, now: datetime, model_names: list[str] | None = None
) -> dict[str, ScreeningStatus]:
    """Each catalog model's status from its latest report; missing when it has none."""
    m = ModelEntry.__table__.c  # type: ignore[attr-defined]
    t = UpstreamTarget.__table__.c  # type: ignore[attr-defined]
    latest = latest_reports()
    models = select(m.name, latest).outerjoin(latest, latest.c.model_name == m.name)
    targets = select(t.model, t.url, t.upstream_model).where(t.enabled.is_(True))
    if model_names is not None:
        models = models.where(m.name.in_(model_names))
        targets = targets.where(t.model.in_(model_names))
    async with engine.connect() as conn:
        rows = (await conn.execute(models)).all()
        enabled: dict[str, set[Upstream]] = {}
        for r in (await conn.execute(targets)).all():
            enabled.setdefault(r.model, set()).add(upstream_of(r.url, r.upstream_model))
    return {
        r.name: status_of(latest_of(r, upstreams=enabled.get(r.name, set())), now) for r in rows
    }
