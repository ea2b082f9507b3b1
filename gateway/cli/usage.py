"""`usage`: tokens used per organization, model and UTC day (what replicas have flushed)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import ops
from gateway.cli.context import org_named, with_engine
from gateway.cli.output import JsonFlag, emit_rows
from gateway.db.access import AsyncRequestDb
from gateway.usage.report import daily_usage

app = typer.Typer(help="Token usage per organization, model and day.")

COLUMNS = [
    "day",
    "org",
    "model",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "estimated_requests",
]


@app.callback(invoke_without_command=True)
def show(
    org: Annotated[str | None, typer.Option(help="Only this organization (by name).")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    days: Annotated[int, typer.Option(min=1, help="The last N UTC days, today included.")] = 7,
    as_json: JsonFlag = False,
) -> None:
    """Usage per day, newest first; `estimated_requests` counts calls whose upstream
    reported no usage (their tokens were counted by the gateway)."""
    since = datetime.now(UTC).date() - timedelta(days=days - 1)

    async def work(engine: AsyncEngine) -> None:
        owner = await org_named(engine, org) if org is not None else None
        names = {o.id: o.name for o in await ops.list_orgs(engine)}
        rows = await daily_usage(
            AsyncRequestDb(engine),
            org_id=owner.id if owner else None,
            model=model,
            since=since,
            limit=10_000,
        )
        emit_rows(
            [
                {
                    "day": _iso(r.day),
                    "org": names.get(r.org_id, r.org_id),
                    "org_id": r.org_id,
                    "model": r.model,
                    "requests": r.requests,
                    "prompt_tokens": r.prompt_tokens,
                    "completion_tokens": r.completion_tokens,
                    "total_tokens": r.total_tokens,
                    "estimated_requests": r.estimated_requests,
                }
                for r in rows
            ],
            columns=COLUMNS,
            as_json=as_json,
        )

    with_engine(work)


def _iso(day: date) -> str:
    return day.isoformat()
