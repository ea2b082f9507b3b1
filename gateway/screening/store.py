"""Screening reports in the database, and a model's screening status; keyword arguments only.

A model's status comes from its latest report alone (a newer run supersedes an older one,
pass or fail). That report counts only while it is unexpired and was made against the
upstream the catalog entry points at now: an expired or stale report is as good as none.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.db.models import ModelEntry, ScreeningReport, ScreeningReportPublic
from gateway.screening.report import Report, canonical
from gateway.screening.runner import public_url

State = Literal["missing", "expired", "stale", "current"]

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


async def statuses(
    engine: AsyncEngine, *, now: datetime, model_names: list[str] | None = None
) -> dict[str, ScreeningStatus]:
    """Each catalog model's status from its latest report; missing when it has none."""
    m = ModelEntry.__table__.c  # type: ignore[attr-defined]
    # The latest report per model, in one query on SQLite and PostgreSQL alike.
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
    query = select(
        m.name,
        m.upstream_url.label("entry_url"),
        m.upstream_model.label("entry_model"),
        ranked.c.id,
        ranked.c.sha256,
        ranked.c.max_ci_high,
        ranked.c.expires_at,
        ranked.c.upstream_url,
        ranked.c.upstream_model,
    ).outerjoin(ranked, (ranked.c.model_name == m.name) & (ranked.c.rank == 1))
    if model_names is not None:
        query = query.where(m.name.in_(model_names))
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {r.name: _status(r, now) for r in rows}


def _status(r: Any, now: datetime) -> ScreeningStatus:
    if r.id is None:
        return ScreeningStatus("missing")
    expires_at = r.expires_at if r.expires_at.tzinfo else r.expires_at.replace(tzinfo=UTC)
    state: State = "current"
    if expires_at <= now:
        state = "expired"
    elif (r.upstream_url, r.upstream_model) != (public_url(r.entry_url), r.entry_model):
        # The catalog entry now points elsewhere: the report screened a different model.
        state = "stale"
    return ScreeningStatus(state, r.id, r.sha256, float(r.max_ci_high), expires_at)
