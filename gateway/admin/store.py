"""Shared by the admin operations: the tables, row reads, and one transaction helper that
turns SQLite's "database is locked" (two writers at once) into a 409 like PostgreSQL's
lost compare-and-set, so that callers see one behaviour on both databases.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.db.models import (
    Client,
    Membership,
    ModelEntry,
    Organization,
    TrustGrant,
    VerificationChallenge,
)
from gateway.errors import Conflict, NotFound
from gateway.reasons import Reason

ORG = Organization.__table__  # type: ignore[attr-defined]
GRANT = TrustGrant.__table__  # type: ignore[attr-defined]
MEMBER = Membership.__table__  # type: ignore[attr-defined]
CHALLENGE = VerificationChallenge.__table__  # type: ignore[attr-defined]
CLIENT = Client.__table__  # type: ignore[attr-defined]
MODEL = ModelEntry.__table__  # type: ignore[attr-defined]


@asynccontextmanager
async def write(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    try:
        async with engine.begin() as conn:
            yield conn
    except OperationalError as exc:
        if "database is locked" not in str(exc):
            raise
        # SQLite refuses a write whose read snapshot another writer has moved past.
        raise Conflict(
            Reason.VERSION_CONFLICT,
            "Someone else changed this at the same moment; reload and try again.",
        ) from exc


async def org_row(conn: AsyncConnection, org_id: str) -> dict[str, Any]:
    row = (await conn.execute(select(ORG).where(ORG.c.id == org_id))).mappings().first()
    if row is None:
        raise NotFound(Reason.ORG_NOT_FOUND, f"No organization with id {org_id[:64]!r}.")
    return dict(row)


async def org_row_by_name(conn: AsyncConnection, name: str) -> dict[str, Any]:
    row = (await conn.execute(select(ORG).where(ORG.c.name == name))).mappings().first()
    if row is None:
        raise NotFound(Reason.ORG_NOT_FOUND, f"No organization named {name[:200]!r}.")
    return dict(row)
