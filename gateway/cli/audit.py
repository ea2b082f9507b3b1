"""`audit`: read the audit log from the command line."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import ops
from gateway.cli.context import with_engine
from gateway.cli.output import JsonFlag, emit_rows, iso_utc
from gateway.db.models import AuditEvent

app = typer.Typer(help="The audit log.", no_args_is_help=True)

COLUMNS = ["ts", "decision_id", "decision", "status", "tier", "model", "subject", "reasons"]


@app.command()
def tail(
    n: Annotated[int, typer.Option("-n", "--lines", min=1, help="How many decisions.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """The most recent decisions, oldest first; full decision ids, UTC timestamps."""

    async def work(engine: AsyncEngine) -> None:
        events = reversed(await ops.recent_audit(engine, limit=n))
        emit_rows([_row(ev) for ev in events], columns=COLUMNS, as_json=as_json)

    with_engine(work)


def _row(ev: AuditEvent) -> dict[str, Any]:
    return {
        "ts": iso_utc(ev.ts),
        "decision_id": ev.id,
        "decision": ev.decision,
        "status": ev.status,
        "endpoint": ev.endpoint,
        "tier": ev.tier,
        "model": ev.model,
        "subject": ev.subject,
        "org_id": ev.org_id,
        "client_id": ev.client_id,
        "reasons": json.loads(ev.reasons),
        "policy_version": ev.policy_version,
        "latency_ms": ev.latency_ms,
    }
